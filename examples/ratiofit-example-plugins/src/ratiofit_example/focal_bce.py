r"""Loss ``focal_bce``: the binary focal loss (Lin et al. 2017) on a logit output.

With s = σ(z) the network's class-1 probability and γ the focusing parameter, the
per-example losses are (label 1 = target, label 0 = reference)

.. math::

    \ell_1(s) = -(1 - s)^\gamma \log s, \qquad \ell_0(s) = -s^\gamma \log(1 - s).

Unlike cross-entropy, the focal loss is *not* minimised at s = p_T/(p_T + p_R), so the
logit is not log w. The expected loss at x, p_T(x) ℓ₁(s) + p_R(x) ℓ₀(s), is stationary
where r = p_T/p_R = −ℓ₀′(s)/ℓ₁′(s), which in terms of the logit z is

.. math::

    \log w(z) = (\gamma + 1)\,z + \log\bigl(1 + \gamma\,q(z)\bigr)
                - \log\bigl(1 + \gamma\,q(-z)\bigr), \qquad
    q(z) = \operatorname{softplus}(z)\,e^{-z}.

It is strictly increasing in z (so every ratio is reached exactly once), equals z for
γ = 0 (cross-entropy), and is evaluated without overflow for any z: for z < 0,
q(z) = log1p(u)/u with u = eᶻ (→ 1 as z → −∞).
"""

from __future__ import annotations

from typing import Any

from ratiofit.hookspecs import hookimpl

__all__ = ["FocalBCE", "focal_log_ratio", "ratiofit_losses"]

GAMMA = 2.0


def _q(z: Any) -> Any:
    """softplus(z)·e^{−z}, finite (and with finite gradients) for every z."""
    from keras import ops

    positive = ops.softplus(z) * ops.exp(-ops.maximum(z, 0.0))
    u = ops.exp(ops.clip(z, -30.0, 0.0))
    negative = ops.log1p(u) / u
    return ops.where(z >= 0, positive, negative)


def focal_log_ratio(z: Any, gamma: float = GAMMA) -> Any:
    """log w at the optimum of the focal loss with focusing ``gamma``, from the logit ``z``.

    Parameters
    ----------
    z
        Network output (logits), any shape; numpy arrays or Keras tensors.
    gamma
        Focusing parameter γ ≥ 0.

    Returns
    -------
    Any
        log p_T/p_R with the shape of ``z`` (a Keras tensor).
    """
    from keras import ops

    z = ops.convert_to_tensor(z, dtype="float32")
    return ((gamma + 1.0) * z + ops.log1p(gamma * _q(z))
            - ops.log1p(gamma * _q(-z)))


class FocalBCE:
    """Binary focal cross-entropy (γ = 2) with its exact output → log w map."""

    name = "focal_bce"
    output_activation = "linear"
    gamma = GAMMA

    def keras_loss(self) -> Any:
        """Keras' ``BinaryFocalCrossentropy`` on logits, without class balancing."""
        import keras

        return keras.losses.BinaryFocalCrossentropy(gamma=self.gamma, from_logits=True)

    def log_ratio(self, output: Any) -> Any:
        """Map the logit ``[n, 1]`` to log w ``[n, 1]`` (see the module docstring)."""
        return focal_log_ratio(output, self.gamma)


@hookimpl
def ratiofit_losses() -> list[Any]:
    """The losses of this module."""
    return [FocalBCE()]
