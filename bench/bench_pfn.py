"""PFN training benchmark: ratiofit's particle path against a plain padded Keras PFN.

:func:`plain_padded_pfn`
    The ``pfn`` plugin's layers as a plain Keras functional model on inputs padded to one
    global maximum multiplicity: built-in layers only (``RepeatVector`` to give every
    particle slot θ, ``Multiply`` by the mask and a ``Dot`` over the particle axis for the
    sum), no custom layers, no per-batch padding. It is the reference a benchmark compares
    the plugin's model against: same layer widths and names, same parameter count.
:func:`pfn_flops_per_jet`
    The usual arithmetic estimate of training FLOPs per jet from the layer sizes: each
    dense layer costs 2·in·out FLOPs per row forward (multiply and add; biases and
    activations neglected), Φ runs once per particle and F once per jet, and the backward
    pass costs about twice the forward one (gradients with respect to both the inputs and
    the weights). Pass the mean multiplicity for a model that only touches real particles,
    or the padded one (batch or global maximum) for a model that computes on padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

__all__ = ["bench_pfn_training", "cpu_peak_fp32_flops", "dense_flops", "pfn_flops_per_jet",
           "plain_padded_pfn"]


def plain_padded_pfn(k: int, p: int, phi: Sequence[int], f: Sequence[int], *, m_max: int,
                     d: int = 0, theta_injection: str = "particle", activation: str = "swish",
                     output_activation: str = "linear") -> Any:
    """A PFN from built-in Keras layers only, on inputs padded to ``m_max`` particles.

    Parameters
    ----------
    k, p, d
        Particle fields, θ components and flat features (``p`` or ``d`` may be 0).
    phi, f
        Widths of Φ (the last is the latent dimension) and of F's hidden layers.
    m_max
        Fixed (global maximum) number of particle slots.
    theta_injection
        ``particle`` (θ appended to every particle) or ``latent`` (to the particle sum).
    activation, output_activation
        Hidden and output activations.

    Returns
    -------
    keras.Model
        Inputs ``particles`` ``[n, m_max, k]``, ``mask`` ``[n, m_max]`` and, when
        ``p``/``d`` > 0, ``theta`` ``[n, p]`` and ``features`` ``[n, d]``; output ``[n, 1]``.
        The standardisations are identity ``Normalization`` layers (for the same graph).
    """
    import keras

    if theta_injection not in ("particle", "latent"):
        raise ValueError(f"theta_injection must be 'particle' or 'latent', got "
                         f"{theta_injection!r}")
    if not phi:
        raise ValueError("phi needs at least one layer")

    def identity(n: int, name: str) -> Any:
        return keras.layers.Normalization(mean=[0.0] * n, variance=[1.0] * n, name=name)

    particles = keras.Input(shape=(m_max, k), name="particles")
    mask = keras.Input(shape=(m_max,), name="mask")
    inputs: dict[str, Any] = {"particles": particles, "mask": mask}
    h = identity(k, "standardise_particles")(particles)
    t = None
    if p:
        theta = keras.Input(shape=(p,), name="theta")
        inputs["theta"] = theta
        t = identity(p, "standardise_theta")(theta)
        if theta_injection == "particle":
            t_each = keras.layers.RepeatVector(m_max, name="theta_per_particle")(t)
            h = keras.layers.Concatenate(name="particles_theta")([h, t_each])
    for i, width in enumerate(phi):
        h = keras.layers.Dense(width, activation=activation, name=f"phi_{i}")(h)
    weights = keras.layers.Reshape((m_max, 1), name="mask_column")(mask)
    z = keras.layers.Dot(axes=1, name="particle_sum")([weights, h])  # [n, 1, latent]
    z = keras.layers.Flatten(name="latent")(z)
    extra = []
    if d:
        features = keras.Input(shape=(d,), name="features")
        inputs["features"] = features
        extra.append(identity(d, "standardise_features")(features))
    if t is not None and theta_injection == "latent":
        extra.append(t)
    if extra:
        z = keras.layers.Concatenate(name="latent_inputs")([z, *extra])
    for i, width in enumerate(f):
        z = keras.layers.Dense(width, activation=activation, name=f"f_{i}")(z)
    out = keras.layers.Dense(1, activation=output_activation, name="output")(z)
    return keras.Model(inputs=inputs, outputs=out, name="plain_padded_pfn")


def dense_flops(widths: Sequence[int]) -> float:
    """Forward FLOPs of a dense stack ``widths[0] → widths[1] → …`` for one row: Σ 2·in·out."""
    return float(sum(2 * a * b for a, b in pairwise(widths)))


def pfn_flops_per_jet(k: int, p: int, phi: Sequence[int], f: Sequence[int], *,
                      multiplicity: float, d: int = 0, theta_injection: str = "particle",
                      backward_factor: float = 2.0) -> dict[str, float]:
    """Estimated training FLOPs per jet (forward + backward) of a PFN.

    Parameters
    ----------
    k, p, d
        Particle fields, θ components and flat features.
    phi, f
        Widths of Φ and of F's hidden layers (the output layer has one unit).
    multiplicity
        Particles Φ runs on per jet: the mean number of real particles, or the padded
        length when padding is computed too.
    theta_injection
        ``particle`` (Φ's input is k + p wide) or ``latent`` (F's input gains p).
    backward_factor
        Backward cost relative to forward (≈ 2: input and weight gradients).

    Returns
    -------
    dict
        ``phi_forward`` (per jet, all particles), ``f_forward``, ``forward``,
        ``backward`` and ``total`` FLOPs per jet.
    """
    if theta_injection not in ("particle", "latent"):
        raise ValueError(f"theta_injection must be 'particle' or 'latent', got "
                         f"{theta_injection!r}")
    phi_in = k + (p if theta_injection == "particle" else 0)
    f_in = phi[-1] + d + (p if theta_injection == "latent" else 0)
    phi_forward = multiplicity * dense_flops([phi_in, *phi])
    f_forward = dense_flops([f_in, *f, 1])
    forward = phi_forward + f_forward
    backward = backward_factor * forward
    return {"phi_forward": phi_forward, "f_forward": f_forward, "forward": forward,
            "backward": backward, "total": forward + backward}


def cpu_peak_fp32_flops() -> dict[str, Any]:
    """Rough fp32 peak of this machine's CPUs: cores × clock × FLOPs per cycle.

    FLOPs per cycle per core: 32 with AVX2+FMA (two 256-bit FMA units × 8 floats × 2),
    64 with AVX-512 FMA, else 8. The clock is the nominal one from /proc/cpuinfo.
    """
    import os

    mhz, flags = None, ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("cpu MHz") and mhz is None:
                    mhz = float(line.split(":")[1])
                elif line.startswith("flags") and not flags:
                    flags = line
    except OSError:
        pass
    per_cycle = 64 if " avx512f" in flags else 32 if (" avx2" in flags and " fma" in flags) \
        else 8
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    ghz = (mhz or 2000.0) / 1000
    return {"cores": cores, "ghz": ghz, "flops_per_cycle_per_core": per_cycle,
            "peak_flops": float((cores or 1) * ghz * 1e9 * per_cycle)}


def bench_pfn_training(*, reference: Any, target: Any, parameters: Any,
                       particle_fields: Sequence[str], phi: Sequence[int] = (100, 100, 128),
                       f: Sequence[int] = (100, 100, 100), epochs: int = 3,
                       batch_size: int = 256, seed: int = 1) -> dict[str, Any]:
    """Jets/s of ratiofit's PFN training (per-batch padding, bucketing) against a plain Keras
    PFN padded to the global maximum multiplicity, same layers, data, batch size and
    optimizer, in this process. The first epoch (tracing) is excluded from both.
    """
    import time

    import keras
    import numpy as np

    from ratiofit.registry import get_registry
    from ratiofit.spec import TrainingSpec
    from ratiofit.training import prepare_training_data, train_reweighter

    class Timer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []
            self.t = 0.0

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.seconds.append(time.perf_counter() - self.t)

    reg = get_registry()
    options = {"phi": list(phi), "f": list(f), "activation": "swish",
               "theta_injection": "particle", "latent_norm": "none", "theta_input": True}
    training = TrainingSpec(epochs=epochs, batch_size=batch_size, patience=epochs + 1,
                            checkpoint=False, restore_best=False, validation_fraction=0.1)
    timer = Timer()
    rw = train_reweighter(reference=reference, target=target, parameters=parameters,
                          architecture=reg.get("architecture", "pfn"),
                          architecture_options=options, loss=reg.get("loss", "bce"),
                          training=training, seed=seed, extra_callbacks=[timer],
                          features=(), particles=tuple(particle_fields))
    n_train = int(rw.metadata["n_train"])
    ours = n_train * (len(timer.seconds) - 1) / sum(timer.seconds[1:])

    # The plain reference: the same split, every jet padded to the global maximum.
    data = prepare_training_data(reference=reference, target=target, parameters=parameters,
                                 validation_fraction=0.1, class_balance=True,
                                 rng=np.random.default_rng(seed), features=(),
                                 particles=tuple(particle_fields))
    assert data.particles is not None and data.train_index is not None
    counts = np.diff(data.particles.row_splits.numpy())
    m_max = int(counts.max())
    dense = data.particles.to_tensor(shape=[None, m_max, len(particle_fields)]).numpy()
    mask = (np.arange(m_max)[None, :] < counts[:, None]).astype(np.float32)
    tr, va = data.train_index, data.validation_index
    theta = data.flat_all["theta"]
    model = plain_padded_pfn(len(particle_fields), theta.shape[1], phi, f, m_max=m_max,
                             output_activation="sigmoid")
    steps = int(np.ceil(len(tr) / batch_size)) * epochs
    model.compile(optimizer=keras.optimizers.Adam(
        keras.optimizers.schedules.CosineDecay(training.learning_rate, steps)),
        loss=reg.get("loss", "bce").keras_loss())
    plain_timer = Timer()
    assert data.y_all is not None and data.w_all is not None
    model.fit({"particles": dense[tr], "mask": mask[tr], "theta": theta[tr]}, data.y_all[tr],
              sample_weight=data.w_all[tr], batch_size=batch_size, epochs=epochs, verbose=0,
              shuffle=True, callbacks=[plain_timer],
              validation_data=({"particles": dense[va], "mask": mask[va], "theta": theta[va]},
                               data.y_all[va], data.w_all[va]))
    plain = len(tr) * (len(plain_timer.seconds) - 1) / sum(plain_timer.seconds[1:])
    k, p = len(particle_fields), theta.shape[1]
    mean_m = float(counts.mean())
    flops = pfn_flops_per_jet(k, p, phi, f, multiplicity=mean_m)["total"]
    peak = cpu_peak_fp32_flops()
    return {
        "n_train_jets": n_train, "epochs": epochs, "batch_size": batch_size,
        "mean_multiplicity": mean_m, "global_max_multiplicity": m_max,
        "ratiofit_jets_per_second": ours, "plain_padded_jets_per_second": plain,
        "ratio": ours / plain, "goal": 2.5,
        "epoch_seconds_ratiofit": timer.seconds, "epoch_seconds_plain": plain_timer.seconds,
        "useful_flops_per_jet": flops,
        "useful_flops_per_second": flops * ours,
        "cpu": peak,
        "fraction_of_fp32_peak": flops * ours / peak["peak_flops"],
        "note": "useful FLOPs count real particles only (2·in·out per dense layer per row, "
                "backward = 2× forward); the plain model also computes on its padding",
    }
