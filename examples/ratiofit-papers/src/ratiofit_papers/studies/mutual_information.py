"""Study ``mutual_information``: I(X; Y) between a Gaussian feature and a binary label from
the MLC loss of a classifier, scanned over the separation ε (ensembles.md Sec. II E,
Sec. III D, Fig. 9).

For each ε, ``events_per_class`` events are made for N(+ε, 1) (y = 1) and N(−ε, 1)
(y = 0) as x = ε(2y − 1) + z, with z the first feature of the spec's ``noise`` sample
(a standard normal ``gaussian`` sample; the same noise serves every ε, so the scan is
smooth in ε). A per-event classifier (architecture ``mlp``) on the two inputs (x, y) learns to
separate the pairs as drawn, p(x, y) (label 1), from the same x with the labels permuted
at random, p(x)p(y) (label 0). Its MLC loss on fresh events, −L = ⟨ℓ⟩_{p(x,y)} + 1 −
⟨e^ℓ⟩_{p(x)p(y)}, estimates I(X; Y) (Eq. 30 = the KL divergence of Eq. 9). Because y is
discrete, the p(x)p(y) average is taken exactly over y: every held-out x is scored with
both labels, each weighted ½.

The analytic value: with a balanced label, I(X; Y) equals the Jensen–Shannon divergence
between N(+ε, 1) and N(−ε, 1), computed by quadrature. The same network also gives the
class-conditional log-ratio ℓ(x, 1) − ℓ(x, 0) = log p(x|y=1)/p(x|y=0), from which the
Table I losses give JS, triangular, squared-Hellinger and KL divergences between the two
Gaussians (:mod:`ratiofit_papers.ensembles.divergences`), compared with their exact values.
The exact per-event ratio evaluated on the same held-out events shows how much of the
deviation is statistical.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.special import log_expit

from ratiofit.errors import DataError
from ratiofit.events import EventSet
from ratiofit.hookspecs import hookimpl
from ratiofit.options import Option, resolve_options
from ratiofit.parameters import ParameterSet
from ratiofit.training import train_reweighter
from ratiofit_papers.ensembles.divergences import (
    divergences_from_losses,
    gaussian_pair_divergences,
    mutual_information_mlc,
)
from ratiofit_papers.ensembles.studytools import (
    TRAINING_OPTION,
    check_training,
    invalid_option,
    plot_lines,
    training_spec,
)


class MutualInformation:
    """MI scan over the Gaussian separation ε with the MLC loss (ensembles.md Fig. 9)."""

    name = "mutual_information"
    options: Mapping[str, Option] = {
        "noise": Option(kind="str", required=True,
                        doc="sample of N(0, 1) noise (first feature), ≥ 2·(events_per_class + "
                        "evaluation_events) events"),
        "epsilons": Option(kind="float_list", default=[0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0],
                           minimum=0.0, doc="half-separations ε of N(±ε, 1)"),
        "events_per_class": Option(kind="int", default=100_000, minimum=10,
                                   doc="training events per label value (paper: 10^5)"),
        "evaluation_events": Option(kind="int", default=2_000_000, minimum=10,
                                    doc="held-out events per label value for the loss value"),
        "network": Option(kind="mapping", default={"hidden": [64, 64], "activation": "relu"},
                          doc="mlp options (paper: two hidden ReLU layers)"),
        "loss": Option(kind="str", default="mlc",
                       doc="training loss (any ratio loss; the estimate is the MLC loss "
                       "value of the learned ratio)"),
        "training": TRAINING_OPTION,
        "threshold": Option(kind="float", default=1e-3, minimum=0.0,
                            doc="MI (nats) above which the 5 % agreement is required"),
    }

    def check(self, *, options: Mapping[str, Any], samples: Mapping[str, Any],
              parameters: Any) -> None:
        """Validate ε values and training settings."""
        if not options["epsilons"]:
            raise invalid_option("epsilons", "give at least one ε")
        if any(e <= 0 for e in options["epsilons"]):
            raise invalid_option("epsilons", "every ε must be positive")
        if options["noise"] not in samples:
            raise invalid_option("noise", f"unknown sample {options['noise']!r}")
        needed = 2 * (options["events_per_class"] + options["evaluation_events"])
        n_events = getattr(samples[options["noise"]], "n_events", needed)
        if n_events < needed:
            raise invalid_option("noise", f"sample {options['noise']!r} has {n_events} events, "
                                 f"need 2·(events_per_class + evaluation_events) = {needed}")
        check_training(options["training"])

    def run(self, *, context: Any, options: Mapping[str, Any]) -> Mapping[str, Any]:
        """Train one classifier per ε, estimate MI and divergences, compare, plot."""
        arch = context.registry.get("architecture", "mlp")
        arch_options = resolve_options(arch.options, dict(options["network"]), where="mlp")
        loss = context.registry.get("loss", options["loss"])
        n_train, n_eval = int(options["events_per_class"]), int(options["evaluation_events"])
        noise = context.sample(options["noise"]).features[:, 0]
        if len(noise) < 2 * (n_train + n_eval):
            raise DataError(f"noise sample has {len(noise)} events, need {2 * (n_train + n_eval)}")
        rows = []
        for index, epsilon in enumerate(options["epsilons"]):
            rng = context.rng("epsilon", index)
            x, y = self._draw(epsilon, noise[: 2 * n_train])
            joint = EventSet(features=np.stack([x, y], axis=1), feature_names=("x", "y"))
            product = EventSet(features=np.stack([x, rng.permutation(y)], axis=1),
                               feature_names=("x", "y"))
            rw = train_reweighter(
                reference=product, target=joint, parameters=ParameterSet([]),
                architecture=arch, architecture_options=arch_options, loss=loss,
                training=training_spec(options["training"], n_examples=4 * n_train),
                seed=int(rng.integers(2**31)))
            x_eval, y_eval = self._draw(epsilon, noise[2 * n_train: 2 * (n_train + n_eval)])
            lw = {label: rw.log_ratio(features=np.stack([x_eval, np.full_like(x_eval, label)],
                                                        axis=1)) for label in (0.0, 1.0)}
            joint_lw = np.where(y_eval == 1.0, lw[1.0], lw[0.0])
            product_lw = np.concatenate([lw[0.0], lw[1.0]])
            estimate = mutual_information_mlc(joint_log_ratio=joint_lw,
                                              product_log_ratio=product_lw)
            # Exact ratio p(x, y)/(p(x)p(y)) = 2 σ(±2εx) on the same events.
            sign = 2.0 * y_eval - 1.0
            exact_joint = np.log(2.0) + log_expit(2 * epsilon * sign * x_eval)
            exact_product = np.concatenate([np.log(2.0) + log_expit(-2 * epsilon * x_eval),
                                            np.log(2.0) + log_expit(2 * epsilon * x_eval)])
            exact = mutual_information_mlc(joint_log_ratio=exact_joint,
                                           product_log_ratio=exact_product)
            analytic = gaussian_pair_divergences(mean_difference=2 * epsilon)
            conditional = lw[1.0] - lw[0.0]
            learned_div = divergences_from_losses(target_log_ratio=conditional[y_eval == 1],
                                                  reference_log_ratio=conditional[y_eval == 0])
            mi = analytic["jensen_shannon"]
            rows.append({
                "epsilon": float(epsilon), "analytic": mi, "estimate": estimate["value"],
                "statistical_error": estimate["error"],
                "relative_deviation": (estimate["value"] - mi) / mi,
                "exact_ratio_estimate": exact["value"],
                "above_threshold": mi > options["threshold"],
                "within_5_percent": abs(estimate["value"] - mi) <= 0.05 * mi,
                "divergences": {k: {"estimate": v["value"], "error": v["error"],
                                    "analytic": analytic[k]} for k, v in learned_div.items()},
                "epochs_run": rw.metadata["epochs_run"]})
        result = {"rows": rows, "threshold": float(options["threshold"]),
                  "all_above_threshold_within_5_percent": all(
                      r["within_5_percent"] for r in rows if r["above_threshold"])}
        eps = np.array([r["epsilon"] for r in rows])
        plot_lines(context.outdir / "mutual_information.png",
                   lines={"analytic (JS of N(±ε, 1))": (eps, [r["analytic"] for r in rows]),
                          "MLC estimate": (eps, [r["estimate"] for r in rows])},
                   xlabel="ε", ylabel="I(X; Y) [nats]")
        return result

    @staticmethod
    def _draw(epsilon: float, noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """First half of ``noise`` → N(+ε, 1) events with y = 1, second half → N(−ε, 1), y = 0."""
        y = np.repeat([1.0, 0.0], len(noise) // 2)
        return epsilon * (2 * y - 1) + noise[: len(y)], y


@hookimpl
def ratiofit_studies() -> list[Any]:
    return [MutualInformation()]
