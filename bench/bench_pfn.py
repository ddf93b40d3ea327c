"""Building blocks for a PFN benchmark (a function library; not run by ``run_bench.py`` yet).

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

__all__ = ["dense_flops", "pfn_flops_per_jet", "plain_padded_pfn"]


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
