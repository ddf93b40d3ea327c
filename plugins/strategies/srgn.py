"""Strategy ``srgn``: fit θ at detector level with one simulated sample (srgn.md Sec. II).

The frozen generator-level reweighter w(x_G, θ) (problem.reweighter) turns the one
two-level simulation (problem.reference, ``gen_``/``sim_`` columns of one EventSet) into
a simulation at any θ. For each candidate θ a classifier g is trained to separate the
data (label 1) from the reference weighted by w(x_G, θ) (label 0) on simulation-level
features only (srgn.md Eq. 4), and θ̂ minimises g's AUC (srgn.md Eq. 5), computed with
the weights on a held-out split that g never saw.

Choices (options):

- ``optimizer``: ``powell`` (scipy Powell within the parameter ranges, srgn.md Fig. 5
  settings: xtol = ftol = 1e-4, at most 100 iterations), ``grid`` (a scan; the best
  point), ``smoothed`` (a coarse scan, then a fine scan around its minimum and a fit of a
  smooth bowl, parabola or hyperbola, whose vertex is θ̂ and whose covariance gives the
  error). Scan points are independent jobs run through an executor (``local`` or
  ``dask``).
- ``initialisation``: ``reinit`` (default) resets g to the same initial weights at every θ;
  ``warm`` continues from the previous θ (sequential, faster, possibly biased).
  ``rebuild: true`` is the paper's procedure: a fresh model built, compiled and trained
  from scratch with :func:`ratiofit.training.train_reweighter` at every θ.
- ``objective``: ``auc`` (srgn.md Eq. 5) or ``loss`` (srgn.md App. B, Eq. B1: θ̂ maximises
  the trained classifier's held-out weighted loss).
- ``level``: ``sim`` (the SRGN fit) or ``gen`` (the same fit on generator-level features,
  srgn.md Fig. 5's generator curve; the data must then carry ``gen_`` columns).
- ``cross_fit``: the AUC of one g is computed on the held-out split only, so θ̂ carries
  the statistics of those events alone (``bench/bench_srgn.py`` shows the fit tracking
  the ideal value of the held-out events). With ``cross_fit: true`` a second g is trained
  on the held-out split and measured on the training split, and the objective is the
  mean of the two AUCs: every event enters, at twice the training cost per point.

Event weights: the data's and the reference's weight every loss term, the AUC pairs
(:func:`ratiofit.auc.weighted_auc`) and g's input standardisation (weighted moments,
:mod:`ratiofit.weights`); the reference at θ carries w₀·w(x_G, θ). Negative weights (NLO)
are taken with their sign: the loss and the AUC are linear in each sample's weights, so
their expectations are those of the densities the signed samples represent; each split's
total weight at θ must be positive (one-line error otherwise).

The same split, initial weights and batch order are used at every θ (common random
numbers), so the AUC landscape is a smooth function of θ rather than noise from point to
point. Every evaluated (θ, AUC) is kept in ``FitResult.trace`` and the scanned points in
``FitResult.landscape``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ratiofit.auc import weighted_auc
from ratiofit.errors import DataError, PluginError
from ratiofit.events import EventSet
from ratiofit.execution import Executor, Job, LocalExecutor
from ratiofit.fitting import FitProblem, FitResult
from ratiofit.hookspecs import hookimpl
from ratiofit.options import Option
from ratiofit.parameters import ParameterSet
from ratiofit.plugin_api import InputSignature
from ratiofit.seeding import derive_seed
from ratiofit.weights import check_weights, kish_ess, weighted_standardisation

__all__ = ["SRGN", "evaluate_point", "held_out_split", "split_rng", "weighted_auc"]


# ---------------------------------------------------------------------------------------
# One θ point: train g, evaluate on the held-out split
# ---------------------------------------------------------------------------------------
class _FieldError(ValueError):
    """A ValueError naming the option it is about (the spec validator points at it)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class PointSetup:
    """Everything that stays the same from one θ point to the next (picklable).

    Arrays are float32 simulation-level (or generator-level) features of the classifier g;
    ``*_train`` events train g (the last ``validation`` part of the fixed ``order`` drives
    early stopping), ``*_held`` events only measure the AUC.
    """

    key: str
    data_train: np.ndarray
    data_held: np.ndarray
    reference_train: np.ndarray
    reference_held: np.ndarray
    data_train_weights: np.ndarray
    data_held_weights: np.ndarray
    order: np.ndarray
    n_validation: int
    signature: dict[str, Any]
    architecture: str
    architecture_options: dict[str, Any]
    loss: str
    epochs: int
    batch_size: int
    learning_rate: float
    patience: int
    seed: int
    rebuild: bool
    #: With ``cross_fit``: the same set-up with the two splits' roles exchanged.
    swapped: PointSetup | None = None


class _Classifier:
    """g built once; reset to its initial weights (and a fresh optimizer state) per θ.

    Training runs one compiled TensorFlow function per epoch (all batches inside), so a
    small g on a few 10⁵ events spends its time on arithmetic, not on per-batch Python
    overhead; early stopping keeps the weights of the best validation epoch.
    """

    def __init__(self, setup: PointSetup) -> None:
        import keras
        import tensorflow as tf

        from ratiofit.registry import get_registry

        registry = get_registry()
        self.loss = registry.get("loss", setup.loss)
        arch = registry.get("architecture", setup.architecture)
        keras.utils.set_random_seed(setup.seed)
        self.model = arch.build(signature=InputSignature.from_dict(setup.signature),
                                output_activation=self.loss.output_activation,
                                options=setup.architecture_options)
        self.optimizer = keras.optimizers.Adam(learning_rate=setup.learning_rate)
        self.optimizer.build(self.model.trainable_variables)
        self.initial_weights = self.model.get_weights()
        self.initial_optimizer = [np.array(v) for v in self.optimizer.variables]
        keras_loss = self.loss.keras_loss()
        model, optimizer, batch = self.model, self.optimizer, setup.batch_size

        @tf.function(reduce_retracing=True)
        def train_epoch(x: Any, y: Any, w: Any, perm: Any) -> Any:
            n = tf.shape(perm)[0]
            steps = (n + batch - 1) // batch
            total = tf.constant(0.0)
            for i in tf.range(steps):
                idx = perm[i * batch:tf.minimum((i + 1) * batch, n)]
                xb, yb, wb = tf.gather(x, idx), tf.gather(y, idx), tf.gather(w, idx)
                with tf.GradientTape() as tape:
                    out = model({"features": xb}, training=True)
                    value = keras_loss(yb, out, sample_weight=wb)
                grads = tape.gradient(value, model.trainable_variables)
                optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
                total += value
            return total / tf.cast(steps, tf.float32)

        @tf.function(reduce_retracing=True)
        def mean_loss(x: Any, y: Any, w: Any) -> Any:
            out = model({"features": x}, training=False)
            return keras_loss(y, out, sample_weight=w)

        self._train_epoch, self._mean_loss = train_epoch, mean_loss

    def _reset_optimizer(self) -> None:
        for var, value in zip(self.optimizer.variables, self.initial_optimizer, strict=True):
            var.assign(value)

    def train(self, *, x: np.ndarray, y: np.ndarray, w: np.ndarray, x_val: np.ndarray,
              y_val: np.ndarray, w_val: np.ndarray, setup: PointSetup, warm: bool) -> int:
        """Train (from the initial weights unless ``warm``) with early stopping on the
        validation loss; the batch order depends only on the setup's seed."""
        import tensorflow as tf

        if not warm:
            self.model.set_weights(self.initial_weights)
        self._reset_optimizer()  # a warm start keeps the weights, not Adam's moments
        rng = np.random.default_rng(setup.seed)
        tx, ty, tw = (tf.constant(a.astype(np.float32)) for a in (x, y[:, None], w))
        vx, vy, vw = (tf.constant(a.astype(np.float32)) for a in (x_val, y_val[:, None], w_val))
        best, best_weights, wait, epochs = np.inf, self.model.get_weights(), 0, 0
        for _ in range(setup.epochs):
            perm = tf.constant(rng.permutation(len(x)).astype(np.int32))
            self._train_epoch(tx, ty, tw, perm)
            epochs += 1
            val = float(self._mean_loss(vx, vy, vw))
            if not np.isfinite(val):
                raise DataError("srgn: the classifier's validation loss is not finite "
                                "(learning rate too large?)")
            if val < best:
                best, best_weights, wait = val, self.model.get_weights(), 0
            else:
                wait += 1
                if wait >= setup.patience:
                    break
        self.model.set_weights(best_weights)
        return epochs

    def log_ratio(self, x: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        out = self.model({"features": tf.constant(x.astype(np.float32))}, training=False)
        return np.asarray(self.loss.log_ratio(np.asarray(out))).reshape(-1)


_CLASSIFIERS: dict[str, _Classifier] = {}


def _classifier(setup: PointSetup) -> _Classifier:
    """The process's g for this setup (each worker process builds its own once)."""
    if setup.key not in _CLASSIFIERS:
        if len(_CLASSIFIERS) >= 2:
            _CLASSIFIERS.pop(next(iter(_CLASSIFIERS)))
        _CLASSIFIERS[setup.key] = _Classifier(setup)
    return _CLASSIFIERS[setup.key]


def split_rng(seed: int) -> np.random.Generator:
    """The random stream of a fit's splits (then its batch order), from the fit seed."""
    return np.random.default_rng(derive_seed(seed, "srgn-split"))


def held_out_split(rng: np.random.Generator, *, n_data: int, n_reference: int,
                   fraction: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Indices (data train, data held-out, reference train, reference held-out).

    The AUC is computed on the held-out events only, so the fitted θ carries their
    statistics: ``bench/bench_srgn.py`` compares fits with the ideal value on exactly
    these events.
    """
    d_perm = rng.permutation(n_data)
    r_perm = rng.permutation(n_reference)
    nd_held, nr_held = round(fraction * n_data), round(fraction * n_reference)
    return d_perm[nd_held:], d_perm[:nd_held], r_perm[nr_held:], r_perm[:nr_held]


def _balanced(reference_weights: np.ndarray, data_weights: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """Both classes scaled to the same total weight, mean weight 1 overall."""
    total = (len(reference_weights) + len(data_weights)) / 2
    return (reference_weights * (total / reference_weights.sum()),
            data_weights * (total / data_weights.sum()))


def _heldout_loss(*, log_ratio_data: np.ndarray, log_ratio_reference: np.ndarray,
                  data_weights: np.ndarray, reference_weights: np.ndarray) -> float:
    """Weighted mean BCE of g = σ(log w) on the held-out split, classes balanced
    (the inner maximum of srgn.md Eq. B1 up to sign)."""
    w_r, w_d = _balanced(reference_weights, data_weights)
    bce_d = np.logaddexp(0.0, -log_ratio_data)       # −log g on data (label 1)
    bce_r = np.logaddexp(0.0, log_ratio_reference)   # −log(1 − g) on reference (label 0)
    return float((np.dot(w_d, bce_d) + np.dot(w_r, bce_r)) / (w_d.sum() + w_r.sum()))


def evaluate_point(*, setup: PointSetup, reference_log_weights: np.ndarray,
                   theta: dict[str, float], warm: bool = False,
                   reference_weights: np.ndarray | None = None) -> dict[str, Any]:
    """Train g at one θ and measure it on the held-out split (srgn.md Eqs. 4–5).

    ``reference_log_weights`` is log w(x_G, θ) for the training then the held-out
    reference events (computed by the caller from the frozen reweighter), with log w₀ of
    non-negative event weights added; signed event weights w₀ come as
    ``reference_weights`` instead (same order) and multiply exp(log w). Returns the
    held-out weighted AUC, the held-out weighted loss, epochs run and seconds. With a
    ``swapped`` set-up (option ``cross_fit``) a second g is trained on the held-out split
    and measured on the training split, and AUC and loss are the means of the two folds,
    so that every event's statistics enter the objective.
    """
    t0 = time.perf_counter()
    weights = np.exp(reference_log_weights)
    if not np.all(np.isfinite(weights)):
        bad = int(np.count_nonzero(~np.isfinite(weights)))
        raise DataError(f"srgn: the reweighter gives {bad} non-finite weight(s) at θ = {theta}")
    if reference_weights is not None:
        weights = weights * reference_weights
    n_rt = len(setup.reference_train)
    for part, w_part in (("training", weights[:n_rt]), ("held-out", weights[n_rt:])):
        check_weights(w_part, what=f"srgn: the reference's {part} split reweighted to "
                      f"θ = {theta}")
    auc, loss, epochs = _evaluate_fold(setup, weights, warm=warm)
    out: dict[str, Any] = {"theta": dict(theta), "auc": auc, "loss": loss, "epochs": epochs}
    if setup.swapped is not None:
        auc_2, loss_2, epochs_2 = _evaluate_fold(
            setup.swapped, np.concatenate([weights[n_rt:], weights[:n_rt]]), warm=warm)
        out.update(auc=(auc + auc_2) / 2, loss=(loss + loss_2) / 2, epochs=epochs + epochs_2,
                   fold_aucs=[auc, auc_2])
    out["seconds"] = time.perf_counter() - t0
    return out


def _evaluate_fold(setup: PointSetup, weights: np.ndarray, *, warm: bool
                   ) -> tuple[float, float, int]:
    """Train g on the set-up's training split; (AUC, loss) on its held-out split, epochs."""
    n_rt = len(setup.reference_train)
    w_rt, w_rh = weights[:n_rt], weights[n_rt:]
    w_r, w_d = _balanced(w_rt, setup.data_train_weights)
    x = np.concatenate([setup.reference_train, setup.data_train])[setup.order]
    y = np.concatenate([np.zeros(n_rt, np.float32),
                        np.ones(len(setup.data_train), np.float32)])[setup.order]
    w = np.concatenate([w_r, w_d]).astype(np.float32)[setup.order]
    nv = setup.n_validation
    if setup.rebuild:
        lr_data, lr_ref, epochs = _rebuild_and_train(setup, w_rt)
    else:
        g = _classifier(setup)
        epochs = g.train(x=x[nv:], y=y[nv:], w=w[nv:], x_val=x[:nv], y_val=y[:nv],
                         w_val=w[:nv], setup=setup, warm=warm)
        lr_data, lr_ref = g.log_ratio(setup.data_held), g.log_ratio(setup.reference_held)
    auc = weighted_auc(target_scores=lr_data, reference_scores=lr_ref,
                       target_weights=setup.data_held_weights, reference_weights=w_rh)
    loss = _heldout_loss(log_ratio_data=lr_data, log_ratio_reference=lr_ref,
                         data_weights=setup.data_held_weights, reference_weights=w_rh)
    return auc, loss, int(epochs)


def _rebuild_and_train(setup: PointSetup, reference_train_weights: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, int]:
    """The paper's procedure: a fresh model built, compiled and trained from scratch with
    :func:`ratiofit.training.train_reweighter` (validation split and early stopping there)."""
    from ratiofit.registry import get_registry
    from ratiofit.spec import TrainingSpec
    from ratiofit.training import train_reweighter

    registry = get_registry()
    names = tuple(InputSignature.from_dict(setup.signature).feature_names)
    reference = EventSet(features=setup.reference_train, feature_names=names,
                         weights=reference_train_weights)
    data = EventSet(features=setup.data_train, feature_names=names,
                    weights=setup.data_train_weights)
    training = TrainingSpec(epochs=setup.epochs, batch_size=setup.batch_size,
                            learning_rate=setup.learning_rate, schedule="constant",
                            validation_fraction=setup.n_validation / len(setup.order),
                            patience=setup.patience, class_balance=True, checkpoint=False)
    g = train_reweighter(reference=reference, target=data, parameters=ParameterSet([]),
                         architecture=registry.get("architecture", setup.architecture),
                         architecture_options=setup.architecture_options,
                         loss=registry.get("loss", setup.loss), training=training,
                         seed=setup.seed)
    lr_data = g.log_ratio(features=setup.data_held)
    lr_ref = g.log_ratio(features=setup.reference_held)
    return lr_data, lr_ref, int(g.metadata.get("epochs_run", setup.epochs))


# ---------------------------------------------------------------------------------------
# Smooth bowls for the smoothed scan
# ---------------------------------------------------------------------------------------
def _quadratic_design(z: np.ndarray) -> np.ndarray:
    p = z.shape[1]
    cols = [np.ones(len(z))] + [z[:, i] for i in range(p)]
    cols += [z[:, i] * z[:, j] for i in range(p) for j in range(i, p)]
    return np.stack(cols, axis=1)


def _vertex_of_quadratic(coef: np.ndarray, p: int) -> np.ndarray:
    b = coef[1:1 + p]
    a = np.zeros((p, p))
    k = 1 + p
    for i in range(p):
        for j in range(i, p):
            if i == j:
                a[i, i] = 2 * coef[k]
            else:
                a[i, j] = a[j, i] = coef[k]
            k += 1
    return np.asarray(np.linalg.solve(a, -b))


def fit_bowl(*, points: np.ndarray, values: np.ndarray, shape: str
             ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Fit a smooth bowl to objective ``values`` at ``points`` ``[m, p]``; return its
    minimum position, the covariance of that position and a description.

    ``parabola``: a full quadratic in θ (least squares), vertex −A⁻¹b/2.
    ``hyperbola``: b + √(c² + (θ−θ̂)ᵀ A (θ−θ̂)) with A = LLᵀ, a bowl that is a parabola
    near its floor and a cone (the |Δθ| rise of an AUC, srgn.md Fig. 5) away from it.
    The covariance is s²(JᵀJ)⁻¹ with s² the residual variance (parabola: propagated to the
    vertex with a numerical Jacobian), i.e. the scatter of the points about the bowl. The
    hyperbola's ``info["cone"]`` is A in θ units: the objective rises as √(Δθᵀ A Δθ) away
    from the floor.
    """
    from scipy.optimize import least_squares

    pts = np.asarray(points, dtype=np.float64)
    vals = np.asarray(values, dtype=np.float64)
    m, p = pts.shape
    centre = pts.mean(axis=0)
    scale = np.where(np.ptp(pts, axis=0) > 0, np.ptp(pts, axis=0) / 2, 1.0)
    z = (pts - centre) / scale
    design = _quadratic_design(z)
    n_coef = design.shape[1]
    if m <= n_coef:
        raise DataError(f"srgn: {m} scan points cannot fix a {p}-D bowl ({n_coef} coefficients);"
                        " raise option refine_points")
    coef, *_ = np.linalg.lstsq(design, vals, rcond=None)
    resid = vals - design @ coef
    dof = m - n_coef
    s2 = float(resid @ resid / dof)
    cov_coef = s2 * np.linalg.pinv(design.T @ design)
    try:
        vertex_z = _vertex_of_quadratic(coef, p)
    except np.linalg.LinAlgError:
        vertex_z = z[int(np.argmin(vals))]
    info: dict[str, Any] = {"shape": shape, "n_points": int(m)}
    if shape == "parabola":
        jac = np.zeros((p, n_coef))
        for k in range(n_coef):
            step = 1e-6 * max(1.0, abs(coef[k]))
            shifted = coef.copy()
            shifted[k] += step
            jac[:, k] = (_vertex_of_quadratic(shifted, p) - vertex_z) / step
        cov_z = jac @ cov_coef @ jac.T
        info.update(residual_rms=float(np.sqrt(s2)),
                    curvature_positive=bool(np.all(np.linalg.eigvalsh(
                        _vertex_hessian(coef, p)) > 0)))
        return centre + scale * vertex_z, cov_z * np.outer(scale, scale), info
    # hyperbola: parameters (θ̂ [p], b, log c, L lower-triangular [p(p+1)/2])
    tril = np.tril_indices(p)
    start_l = np.eye(p)[tril] * max(float(np.ptp(vals)), 1e-6)
    if not np.all(np.isfinite(vertex_z)) or np.any(np.abs(vertex_z) > 1.5):
        vertex_z = z[int(np.argmin(vals))]
    x0 = np.concatenate([vertex_z, [float(vals.min()) - 0.01 * (np.ptp(vals) + 1e-9)],
                         [np.log(0.01 * (np.ptp(vals) + 1e-9))], start_l])

    if m <= len(x0):
        raise DataError(f"srgn: {m} scan points cannot fix a {p}-D hyperbola ({len(x0)} "
                        "parameters); raise option refine_points")

    def model(q: np.ndarray) -> np.ndarray:
        t = q[:p]
        low = np.zeros((p, p))
        low[tril] = q[p + 2:]
        d = (z - t) @ low
        return np.asarray(q[p] + np.sqrt(np.exp(2 * q[p + 1]) + np.sum(d * d, axis=1)))

    sol = least_squares(lambda q: model(q) - vals, x0, method="lm", max_nfev=20000)
    resid = sol.fun
    dof = m - len(x0)
    s2 = float(resid @ resid / dof)
    cov_q = s2 * np.linalg.pinv(sol.jac.T @ sol.jac)
    low = np.zeros((p, p))
    low[tril] = sol.x[p + 2:]
    # The cone far from the floor: rise √(Δθᵀ C Δθ), C in θ units (the slopes of the arms).
    cone = (low @ low.T) / np.outer(scale, scale)
    info.update(residual_rms=float(np.sqrt(s2)), converged=bool(sol.success),
                floor=float(sol.x[p]), rounding=float(np.exp(sol.x[p + 1])),
                cone=cone.tolist())
    return centre + scale * sol.x[:p], cov_q[:p, :p] * np.outer(scale, scale), info


def _vertex_hessian(coef: np.ndarray, p: int) -> np.ndarray:
    a = np.zeros((p, p))
    k = 1 + p
    for i in range(p):
        for j in range(i, p):
            a[i, j] = a[j, i] = coef[k] * (2 if i == j else 1)
            k += 1
    return a


# ---------------------------------------------------------------------------------------
# The strategy
# ---------------------------------------------------------------------------------------
class SRGN:
    """SRGN fit of θ: held-out AUC of a weighted simulation-level classifier (srgn.md Eq. 5)."""

    name = "srgn"
    options: Mapping[str, Option] = {
        "level": Option(kind="str", default="sim", choices=["sim", "gen", "both"],
                        doc="features g sees: sim (the SRGN fit), gen (generator-level fit) "
                        "or both (sim is the result, gen in extra['generator_level'])"),
        "features": Option(kind="str_list", default=[],
                           doc="names (without level prefix) g sees; empty: every feature of "
                           "the level present in both data and reference"),
        "generator_features": Option(kind="str_list", default=[],
                                     doc="generator-level features the reweighter must read "
                                     "(empty: no check)"),
        "objective": Option(kind="str", default="auc", choices=["auc", "loss"],
                            doc="auc: minimise held-out AUC (Eq. 5); loss: maximise held-out "
                            "weighted loss (App. B)"),
        "optimizer": Option(kind="str", default="smoothed",
                            choices=["smoothed", "grid", "powell"],
                            doc="smoothed scan (bowl fit), plain grid, or scipy Powell"),
        "shape": Option(kind="str", default="hyperbola", choices=["hyperbola", "parabola"],
                        doc="bowl fitted by the smoothed scan"),
        "grid_points": Option(kind="int", default=5, minimum=2,
                              doc="coarse scan points per parameter"),
        "grid_range": Option(kind="mapping", default={},
                             doc="per parameter [low, high] of the coarse scan (default: range)"),
        "refine_points": Option(kind="int", default=9, minimum=0,
                                doc="fine scan points per parameter (smoothed; 0: none)"),
        "refine_half_width": Option(kind="float", default=1.0, minimum=0.1,
                                    doc="fine scan half-width in coarse steps"),
        "refine_rounds": Option(kind="int", default=2, minimum=1,
                               doc="fine scans, each centred on the previous bowl's vertex"),
        "refine_shrink": Option(kind="float", default=0.5, minimum=0.05, maximum=1.0,
                                doc="half-width factor from one fine scan to the next"),
        "powell_xtol": Option(kind="float", default=1e-4, minimum=0.0,
                              doc="Powell relative tolerance in θ (srgn.md Fig. 5)"),
        "powell_ftol": Option(kind="float", default=1e-4, minimum=0.0,
                              doc="Powell relative tolerance in the objective (srgn.md Fig. 5)"),
        "powell_maxiter": Option(kind="int", default=100, minimum=1,
                                 doc="Powell iterations at most (srgn.md Fig. 5)"),
        "architecture": Option(kind="str", default="mlp", doc="architecture of g (registry)"),
        "architecture_options": Option(kind="mapping",
                                       default={"hidden": [64, 64], "activation": "relu"},
                                       doc="options of g's architecture (srgn.md used 2×128 "
                                       "ReLU; the smaller default is faster, see "
                                       "bench/bench_srgn.py)"),
        "loss": Option(kind="str", default="bce", doc="loss of g (registry)"),
        "epochs": Option(kind="int", default=20, minimum=1, doc="epochs of g at most"),
        "patience": Option(kind="int", default=3, minimum=1, doc="early-stopping patience"),
        "batch_size": Option(kind="int", default=4096, minimum=1, doc="batch size of g"),
        "learning_rate": Option(kind="float", default=2e-3, minimum=0.0,
                                doc="Adam learning rate of g"),
        "cross_fit": Option(kind="bool", default=False,
                            doc="also train g on the held-out split and measure it on the "
                            "training split; the objective is the mean of the two folds, so all "
                            "events' statistics enter θ̂ (twice the training per point)"),
        "held_out_fraction": Option(kind="float", default=0.5, minimum=0.05, maximum=0.95,
                                    doc="fraction of data and reference kept for the AUC only"),
        "validation_fraction": Option(kind="float", default=0.2, minimum=0.01, maximum=0.9,
                                      doc="fraction of the training split for early stopping"),
        "initialisation": Option(kind="str", default="reinit", choices=["reinit", "warm"],
                                 doc="reinit: same initial weights at every θ; warm: continue "
                                 "from the previous θ (sequential)"),
        "rebuild": Option(kind="bool", default=False,
                          doc="paper procedure: build, compile and train a fresh g per θ"),
        "executor": Option(kind="str", default="local", choices=["local", "dask"],
                           doc="where scan points run (dask: a LocalCluster of workers)"),
        "workers": Option(kind="int", default=2, minimum=1, doc="dask workers"),
    }

    def check(self, *, options: Mapping[str, Any], samples: Mapping[str, Any],
              parameters: ParameterSet) -> None:
        """At validation: g's architecture and loss exist and ``architecture_options`` are
        valid for that architecture (they were checked only when g was first built, after
        the reweighter's training)."""
        from ratiofit.options import OptionError, resolve_options
        from ratiofit.registry import get_registry

        reg = get_registry()
        for kind, key in (("architecture", "architecture"), ("loss", "loss")):
            try:
                impl = reg.get(kind, options[key])
            except PluginError as exc:
                raise _FieldError(key, str(exc)) from None
        arch = reg.get("architecture", options["architecture"])
        try:
            resolve_options(arch.options, options["architecture_options"],
                            where="architecture_options")
        except OptionError as exc:
            raise _FieldError("architecture_options",
                              f"{exc.field}: {exc.message} (architecture "
                              f"'{options['architecture']}')") from None
        del impl

    # -- set-up ---------------------------------------------------------------------------
    def _check_inputs(self, problem: FitProblem, options: Mapping[str, Any]
                      ) -> tuple[EventSet, list[str]]:
        """Validate the problem; return the reweighter's view of the reference and g's
        feature names (with level prefix)."""
        rw = problem.reweighter
        if problem.reference is None:
            raise DataError("strategy 'srgn' needs the two-level simulation as fit.reference")
        level = options["level"]
        for role, events in (("data", problem.data), ("reference", problem.reference)):
            if level not in events.levels:
                raise DataError(f"srgn: fit.{role} has no '{level}' features (needs "
                                f"'{level}_*' columns; has {list(events.feature_names)})")
        if "gen" not in problem.reference.levels:
            raise DataError("srgn: fit.reference has no 'gen' features: the reweighter "
                            "needs the generator level of the simulation")
        missing = [n for n in problem.parameters.names if n not in rw.theta_names]
        if missing:
            raise DataError(f"srgn: the reweighter is not parameterised in {missing} "
                            f"(it has {rw.theta_names})")
        read = list(rw.signature.feature_names)
        sim_read = [n for n in read if n.startswith("sim_")]
        if sim_read:
            raise DataError(f"srgn: the reweighter reads simulation-level feature(s) {sim_read}"
                            "; SRGN reweights at generator level (reweighter.inputs.features: "
                            "[gen_...])")
        if rw.signature.particle_names and problem.reference.particles is None:
            raise DataError("srgn: the reweighter reads particles but fit.reference has none")
        wanted = list(options["generator_features"])
        bare = [n[4:] if n.startswith("gen_") else n for n in read]
        if wanted and sorted(bare) != sorted(w[4:] if w.startswith("gen_") else w
                                             for w in wanted):
            raise DataError(f"srgn: the reweighter reads generator features {read}, the fit "
                            f"asks for {wanted} (option generator_features)")
        gen_view = problem.reference
        if read and not all(n in gen_view.feature_names for n in read):
            gen_view = problem.reference.level("gen")  # unprefixed names: the gen level
            absent = [n for n in read if n not in gen_view.feature_names]
            if absent:
                raise DataError(f"srgn: the reweighter reads {absent}, which fit.reference's "
                                f"generator level lacks (has {list(gen_view.feature_names)})")
        data_lv, ref_lv = problem.data.level(level), problem.reference.level(level)
        chosen = list(options["features"]) or [n for n in ref_lv.feature_names
                                                 if n in data_lv.feature_names]
        for role, lv in (("data", data_lv), ("reference", ref_lv)):
            absent = [n for n in chosen if n not in lv.feature_names]
            if absent:
                raise DataError(f"srgn: option features: fit.{role} has no {level}-level "
                                f"feature(s) {absent} (has {list(lv.feature_names)})")
        if not chosen:
            raise DataError(f"srgn: data and reference share no {level}-level feature")
        return gen_view, [f"{level}_{n}" for n in chosen]

    def _setup(self, problem: FitProblem, options: Mapping[str, Any]
               ) -> tuple[PointSetup, EventSet]:
        gen_view, names = self._check_inputs(problem, options)
        assert problem.reference is not None
        registry_check(options)
        rng = split_rng(problem.seed)
        d_train, d_held, r_train, r_held = held_out_split(
            rng, n_data=len(problem.data), n_reference=len(problem.reference),
            fraction=options["held_out_fraction"])
        if min(len(d_train), len(d_held), len(r_train), len(r_held)) < 2:
            raise DataError("srgn: too few events for the training and held-out splits")
        x_d = problem.data.feature_columns(names)
        x_r = problem.reference.feature_columns(names)
        w_d = problem.data.event_weights
        for part, rows in (("training", d_train), ("held-out", d_held)):
            check_weights(w_d[rows], what=f"srgn: the data's {part} split")
        n_train = len(d_train) + len(r_train)
        order = rng.permutation(n_train)
        n_val = max(1, round(options["validation_fraction"] * n_train))
        fit_rows = np.concatenate([x_r[r_train], x_d[d_train]])[order][n_val:]
        # g's inputs standardised with the events' own weights, each sample's scaled to a
        # mean of 1 (None, numpy's unweighted moments, where neither sample is weighted)
        fit_weights = None
        if problem.data.weights is not None or problem.reference.weights is not None:
            w_r = problem.reference.event_weights
            fit_weights = np.concatenate([w_r[r_train] * (len(w_r) / w_r.sum()),
                                          w_d[d_train] * (len(w_d) / w_d.sum())]
                                         )[order][n_val:]
        mean, std = weighted_standardisation(fit_rows, fit_weights,
                                             what="srgn: the training split of g")
        signature = InputSignature(feature_names=tuple(names), feature_mean=tuple(mean.tolist()),
                                   feature_std=tuple(std.tolist()), theta_names=(),
                                   theta_centre=(), theta_half_width=())
        seed = derive_seed(problem.seed, "srgn-classifier")
        f32 = np.float32
        digest = hashlib.sha256()
        for arr in (x_d, x_r, w_d, order):
            digest.update(np.ascontiguousarray(arr).tobytes())
        digest.update(repr(sorted((k, str(v)) for k, v in options.items())).encode())
        digest.update(str(seed).encode())
        setup = PointSetup(
            key=digest.hexdigest()[:20],
            data_train=x_d[d_train].astype(f32), data_held=x_d[d_held].astype(f32),
            reference_train=x_r[r_train].astype(f32), reference_held=x_r[r_held].astype(f32),
            data_train_weights=w_d[d_train], data_held_weights=w_d[d_held], order=order,
            n_validation=n_val, signature=signature.to_dict(),
            architecture=options["architecture"],
            architecture_options=dict(options["architecture_options"]), loss=options["loss"],
            epochs=options["epochs"], batch_size=options["batch_size"],
            learning_rate=options["learning_rate"], patience=options["patience"], seed=seed,
            rebuild=options["rebuild"])
        if options["cross_fit"]:
            # The second fold: g trained on the held-out split (its own batch order and
            # validation part), measured on the training split; same standardisation.
            n_held = len(d_held) + len(r_held)
            setup = replace(setup, swapped=replace(
                setup, key=setup.key + "-swapped",
                data_train=setup.data_held, data_held=setup.data_train,
                reference_train=setup.reference_held, reference_held=setup.reference_train,
                data_train_weights=setup.data_held_weights,
                data_held_weights=setup.data_train_weights, order=rng.permutation(n_held),
                n_validation=max(1, round(options["validation_fraction"] * n_held))))
        ordered = gen_view.take(np.concatenate([r_train, r_held]))
        return setup, ordered

    # -- evaluation ---------------------------------------------------------------------
    def _log_weights(self, problem: FitProblem, reference: EventSet,
                     values: Sequence[float] | np.ndarray
                     ) -> np.ndarray:
        """log w(x_G, θ), plus log w₀ where the reference's event weights are all ≥ 0
        (signed ones go to :func:`evaluate_point` as ``reference_weights``:
        :meth:`_signed_weights`)."""
        lw = problem.reweighter.log_ratio(features=reference, theta=problem.theta(values))
        if self._signed_weights(reference) is not None:
            return lw
        with np.errstate(divide="ignore"):  # a zero weight: log 0 = −inf, exp → 0
            return lw + np.log(reference.event_weights)

    @staticmethod
    def _signed_weights(reference: EventSet) -> np.ndarray | None:
        """The reference's event weights where some are negative, else ``None``."""
        w = reference.weights
        return w if w is not None and bool(np.any(w < 0)) else None

    def _objective(self, record: Mapping[str, Any], options: Mapping[str, Any]) -> float:
        return float(record["auc"]) if options["objective"] == "auc" else -float(record["loss"])

    def _executor(self, options: Mapping[str, Any]) -> Executor:
        if options["executor"] == "dask":
            from ratiofit.execution import DaskExecutor

            return DaskExecutor(workers=options["workers"], threads_per_worker=1)
        return LocalExecutor()

    def _scan(self, problem: FitProblem, setup: PointSetup, reference: EventSet,
              points: np.ndarray, *, stage: str, options: Mapping[str, Any],
              executor: Executor) -> list[dict[str, Any]]:
        names = problem.parameters.names
        warm = options["initialisation"] == "warm"
        signed = self._signed_weights(reference)
        if warm:  # sequential by construction: each point starts from the previous one
            out = []
            for k, row in enumerate(points):
                out.append(evaluate_point(
                    setup=setup, reference_log_weights=self._log_weights(problem, reference,
                                                                         row),
                    theta=problem.theta(row), warm=k > 0, reference_weights=signed))
        else:
            jobs = [Job(name=f"srgn-{stage}-{k}", function=evaluate_point,
                        kwargs={"setup": setup, "theta": problem.theta(row),
                                "reference_log_weights": self._log_weights(problem, reference,
                                                                           row),
                                "reference_weights": signed})
                    for k, row in enumerate(points)]
            out = executor.run(jobs)
        for rec, row in zip(out, points, strict=True):
            rec["stage"] = stage
            rec["values"] = dict(zip(names, (float(v) for v in row), strict=True))
            rec["objective"] = self._objective(rec, options)
        return out

    @staticmethod
    def _grid(axes: Sequence[np.ndarray]) -> np.ndarray:
        mesh = np.meshgrid(*axes, indexing="ij")
        return np.stack([g.ravel() for g in mesh], axis=1)

    # -- the fit ----------------------------------------------------------------------------
    def fit(self, *, problem: FitProblem, options: Mapping[str, Any]) -> FitResult:
        """Fit θ (srgn.md Eq. 5); see the module docstring for the options.

        ``level: both`` fits at simulation level (the result) and at generator level
        (``extra["generator_level"]``: values, errors, trace), srgn.md Fig. 5 and Table I.
        """
        if options["level"] == "both":
            sim = self._fit_level(problem=problem, options={**options, "level": "sim"})
            gen = self._fit_level(problem=problem, options={**options, "level": "gen"})
            sim.extra["generator_level"] = {
                "values": gen.values, "errors": gen.errors, "valid": gen.valid,
                "n_evaluations": gen.n_evaluations, "trace": gen.trace,
                "landscape": gen.landscape, "extra": gen.extra}
            sim.extra["level"] = "both"
            return sim
        return self._fit_level(problem=problem, options=options)

    def _fit_level(self, *, problem: FitProblem, options: Mapping[str, Any]) -> FitResult:
        t0 = time.perf_counter()
        setup, reference = self._setup(problem, options)
        params = problem.parameters
        names = params.names
        executor = self._executor(options)
        records: list[dict[str, Any]] = []
        extra: dict[str, Any] = {"objective": options["objective"], "level": options["level"],
                                 "optimizer": options["optimizer"],
                                 "initialisation": options["initialisation"],
                                 "rebuild": options["rebuild"],
                                 "cross_fit": options["cross_fit"],
                                 "features": list(setup.signature["feature_names"]),
                                 "n_held_out": {"data": len(setup.data_held),
                                                "reference": len(setup.reference_held)}}
        try:
            if options["optimizer"] == "powell":
                values, cov, valid = self._powell(problem, setup, reference, options, records,
                                                  extra)
            else:
                values, cov, valid = self._scans(problem, setup, reference, options, records,
                                                 executor, extra)
        finally:
            close = getattr(executor, "close", None)
            if callable(close):
                close()
        best = min(records, key=lambda r: r["objective"])
        errors = {n: float(np.sqrt(cov[i, i])) if np.isfinite(cov[i, i]) and cov[i, i] >= 0
                  else float("nan") for i, n in enumerate(names)}
        trace = [{"theta": r["values"], "objective": r["objective"], "auc": r["auc"],
                  "loss": r["loss"], "epochs": r["epochs"], "seconds": r["seconds"],
                  "stage": r["stage"]} for r in records]
        extra.update(wall_seconds=time.perf_counter() - t0,
                     seconds_per_point=float(np.mean([r["seconds"] for r in records])),
                     epochs_total=int(sum(r["epochs"] for r in records)),
                     best_point={"values": best["values"], "auc": best["auc"]})
        at_limit = [p.name for p in params
                    if min(values[p.name] - p.low, p.high - values[p.name])
                    < 0.05 * (p.high - p.low)]
        if at_limit:
            extra["at_limit"] = at_limit
        return FitResult(strategy=self.name, names=names, values=values, errors=errors,
                         covariance=cov.tolist(), objective_min=float(best["objective"]),
                         valid=valid, n_evaluations=len(records), trace=trace,
                         landscape=_landscape(records, names, options), extra=extra)

    def _powell(self, problem: FitProblem, setup: PointSetup, reference: EventSet,
                options: Mapping[str, Any], records: list[dict[str, Any]],
                extra: dict[str, Any]) -> tuple[dict[str, float], np.ndarray, bool]:
        """scipy Powell within the ranges (srgn.md Fig. 5: xtol = ftol = 1e-4, ≤ 100
        iterations); no error estimate (the ensemble spread is the uncertainty)."""
        from scipy.optimize import minimize

        names = problem.parameters.names
        warm = options["initialisation"] == "warm"
        signed = self._signed_weights(reference)

        def objective(v: np.ndarray) -> float:
            rec = evaluate_point(setup=setup, theta=problem.theta(v),
                                 reference_log_weights=self._log_weights(problem, reference, v),
                                 warm=warm and bool(records), reference_weights=signed)
            rec["stage"] = "powell"
            rec["values"] = dict(zip(names, (float(x) for x in v), strict=True))
            rec["objective"] = self._objective(rec, options)
            records.append(rec)
            return float(rec["objective"])

        res = minimize(objective, np.asarray(problem.start_values(), dtype=np.float64),
                       method="Powell",
                       bounds=[(p.low, p.high) for p in problem.parameters],
                       options={"xtol": options["powell_xtol"], "ftol": options["powell_ftol"],
                                "maxiter": options["powell_maxiter"]})
        extra["powell"] = {"success": bool(res.success), "message": str(res.message),
                           "nfev": int(res.nfev), "nit": int(res.nit)}
        p = len(names)
        values = {n: float(v) for n, v in zip(names, np.atleast_1d(res.x), strict=True)}
        extra["error_method"] = "none (Powell gives no error; use the ensemble spread)"
        return values, np.full((p, p), np.nan), bool(res.success)

    def _scans(self, problem: FitProblem, setup: PointSetup, reference: EventSet,
               options: Mapping[str, Any], records: list[dict[str, Any]], executor: Executor,
               extra: dict[str, Any]) -> tuple[dict[str, float], np.ndarray, bool]:
        params = problem.parameters
        names = params.names
        ranges = dict(options["grid_range"])
        unknown = [k for k in ranges if k not in names]
        if unknown:
            raise DataError(f"srgn: option grid_range names {unknown}, not fitted parameters "
                            f"{names}")
        axes = []
        for p in params:
            lo, hi = ranges.get(p.name, (p.low, p.high))
            if not (p.low <= lo < hi <= p.high):
                raise DataError(f"srgn: option grid_range.{p.name} = [{lo}, {hi}] must lie "
                                f"within the range [{p.low}, {p.high}]")
            axes.append(np.linspace(lo, hi, options["grid_points"]))
        coarse = self._scan(problem, setup, reference, self._grid(axes), stage="coarse",
                            options=options, executor=executor)
        records += coarse
        best = min(coarse, key=lambda r: r["objective"])
        p_count = len(names)
        if options["optimizer"] == "grid" or options["refine_points"] == 0:
            steps = np.array([a[1] - a[0] for a in axes])
            extra["error_method"] = "grid step / sqrt(12)"
            return (dict(best["values"]), np.diag((steps / np.sqrt(12)) ** 2),
                    True)
        centre = dict(best["values"])
        half = {p.name: options["refine_half_width"] * (a[1] - a[0])
                for p, a in zip(params, axes, strict=True)}
        rounds = options["refine_rounds"]
        for round_ in range(rounds):
            fine_axes = [np.linspace(max(p.low, centre[p.name] - half[p.name]),
                                     min(p.high, centre[p.name] + half[p.name]),
                                     options["refine_points"]) for p in params]
            fine = self._scan(problem, setup, reference, self._grid(fine_axes),
                              stage=f"fine-{round_ + 1}", options=options, executor=executor)
            records += fine
            pts = np.array([[r["values"][n] for n in names] for r in fine])
            vals = np.array([r["objective"] for r in fine])
            vertex, cov, info = fit_bowl(points=pts, values=vals, shape=options["shape"])
            lo = np.array([a[0] for a in fine_axes])
            hi = np.array([a[-1] for a in fine_axes])
            inside = bool(np.all(np.isfinite(vertex)) and np.all(vertex >= lo)
                          and np.all(vertex <= hi))
            fine_best = min(fine, key=lambda r: r["objective"])
            # The next round zooms in on the vertex (or the best point of an unreliable bowl).
            centre = {n: float(v) for n, v in zip(names, vertex, strict=True)} if inside \
                else dict(fine_best["values"])
            half = {n: h * options["refine_shrink"] for n, h in half.items()}
        info["vertex_inside_fine_scan"] = inside
        info["rounds"] = rounds
        extra["bowl"] = info
        if not inside:  # an unreliable bowl: report the best scanned point, flag it
            extra["error_method"] = "none (bowl vertex outside the fine scan)"
            return dict(fine_best["values"]), np.full((p_count, p_count), np.nan), False
        extra["bowl_fit_errors"] = {n: float(np.sqrt(max(cov[i, i], 0.0)))
                                    for i, n in enumerate(names)}
        if "cone" in info and options["objective"] == "auc":
            cov = self._statistical_covariance(problem, setup, reference, vertex,
                                               np.asarray(info["cone"]), extra)
        else:
            extra["error_method"] = f"{options['shape']} fit to the last fine scan " \
                "(residual scatter of the points about the bowl)"
        return ({n: float(v) for n, v in zip(names, vertex, strict=True)}, np.asarray(cov),
                True)

    def _statistical_covariance(self, problem: FitProblem, setup: PointSetup,
                                reference: EventSet, vertex: np.ndarray, cone: np.ndarray,
                                extra: dict[str, Any]) -> np.ndarray:
        """σ²_AUC A⁻¹: the θ region where the AUC rises by its own statistical noise.

        Near θ̂ the held-out AUC is ½ + √(Δθᵀ A Δθ) (the hyperbola's cone) plus noise of
        variance (1/n_data + 1/n_reference)/12 (the Mann–Whitney variance under equal
        distributions, with Kish effective numbers of the weighted events it is measured
        on: the held-out split, or both with ``cross_fit``). The scan's own residual
        scatter (``bowl_fit_errors``) is far smaller: with common random numbers the whole
        landscape moves with the events, not point by point.
        """
        kish = kish_ess
        log_w = self._log_weights(problem, reference, vertex)
        w_ref = np.exp(log_w - log_w.max())
        signed = self._signed_weights(reference)
        if signed is not None:
            w_ref = w_ref * signed
        n_rt = len(setup.reference_train)
        both = setup.swapped is not None
        w_data = np.concatenate([setup.data_train_weights, setup.data_held_weights]) if both \
            else setup.data_held_weights
        n_data, n_ref = kish(w_data), kish(w_ref if both else w_ref[n_rt:])
        var_auc = (1.0 / n_data + 1.0 / n_ref) / 12.0
        extra["error_method"] = ("statistical: AUC noise (1/n_data + 1/n_reference)/12 "
                                 "over the hyperbola's cone (Kish effective numbers)")
        extra["auc_noise"] = {"sigma": float(np.sqrt(var_auc)), "n_data_effective": n_data,
                              "n_reference_effective": n_ref}
        try:
            return var_auc * np.linalg.inv(cone)
        except np.linalg.LinAlgError:
            return np.full(cone.shape, np.nan)


def registry_check(options: Mapping[str, Any]) -> None:
    """Fail early, naming the option, when g's architecture or loss is not registered."""
    from ratiofit.registry import get_registry

    registry = get_registry()
    for kind, key in (("architecture", "architecture"), ("loss", "loss")):
        try:
            registry.get(kind, options[key])
        except PluginError as exc:
            raise PluginError(f"srgn: option {key}: {exc}") from None


def _landscape(records: Sequence[Mapping[str, Any]], names: list[str],
               options: Mapping[str, Any]) -> dict[str, Any]:
    """Plot data: 1-D every evaluated point sorted by θ; 2-D the coarse grid."""
    quantity = "held-out AUC" if options["objective"] == "auc" else "−held-out weighted loss"
    if len(names) == 1:
        pts = sorted({r["values"][names[0]]: r["objective"] for r in records}.items())
        return {"names": names, "axes": [[p[0] for p in pts]], "values": [p[1] for p in pts],
                "quantity": quantity}
    if len(names) == 2:
        coarse = [r for r in records if r["stage"] == "coarse"]
        if coarse:
            xs = sorted({r["values"][names[0]] for r in coarse})
            ys = sorted({r["values"][names[1]] for r in coarse})
            grid = np.full((len(xs), len(ys)), np.nan)
            for r in coarse:
                grid[xs.index(r["values"][names[0]]), ys.index(r["values"][names[1]])] = \
                    r["objective"]
            return {"names": names, "axes": [xs, ys], "values": grid.tolist(),
                    "quantity": quantity,
                    "points": [{"values": r["values"], "objective": r["objective"]}
                               for r in records]}
    return {"names": names, "axes": [], "values": [], "quantity": quantity,
            "points": [{"values": r["values"], "objective": r["objective"]} for r in records]}


@hookimpl
def ratiofit_strategies() -> list[Any]:
    return [SRGN()]
