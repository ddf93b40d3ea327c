"""Loss ``ncr``: the neural conditional reweighting loss (ncr.md Eq. 13–15).

Conditional reweighting learns w(x|x') = q(x|x')/p(x|x') between a reference p (label 0)
and a target q (label 1), with x the detector-level (reco) and x' the particle-level
(truth) features. ncr.md Eq. 13 is realised as in the text below ncr.md Eq. 15: ordinary
binary cross-entropy on triples (x, x', y') of dimension N + 2M, made by
:func:`ncr_pairs` without Python loops:

- label 0 (reference): (x, x') a reference event, y' the truth of a target event drawn
  by a seeded permutation, so the triples follow p(x, x') q(y');
- label 1 (target): (y, y') a target event, x' the truth of a reference event drawn by a
  seeded permutation, so the triples follow p(x') q(y, y').

Slot order of a triple is always (reco, reference-slot truth x', target-slot truth y').
With equal class weights the BCE optimum has logit
log[q(x, y') p(x') / (p(x, x') q(y'))] (ncr.md Eq. 14, in ratiofit's label convention:
ncr.md's f is the probability of the *reference* class, here the network's sigmoid is
the target class's), so at y' = x' the logit is log q(x|x')/p(x|x') (ncr.md Eq. 12, 15).
:meth:`NCRLoss.log_ratio` is therefore the identity on the logit; the caller evaluates
the network at y' = x' (:func:`diagonal_triples`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ratiofit.errors import DataError
from ratiofit.hookspecs import hookimpl
from ratiofit.plugins.losses.bce import BCE

#: Feature-name prefixes of the three slots of a triple (see :func:`triple_names`).
RECO_PREFIX = "sim_"
REFERENCE_TRUTH_PREFIX = "gen_"
TARGET_TRUTH_PREFIX = "paired_gen_"


def triple_names(*, reco: tuple[str, ...], truth: tuple[str, ...]) -> tuple[str, ...]:
    """Feature names of a triple: ``sim_<reco>``, ``gen_<truth>``, ``paired_gen_<truth>``.

    The architecture ``ncr_trunk`` finds the three slots by these prefixes.
    """
    return (tuple(RECO_PREFIX + n for n in reco) + tuple(REFERENCE_TRUTH_PREFIX + n for n in truth)
            + tuple(TARGET_TRUTH_PREFIX + n for n in truth))


def _pick(n_rows: int, n_from: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``n_rows`` partners among ``n_from`` rows: a permutation (cycled if more
    rows than partners are needed), so every partner is used as evenly as possible."""
    reps = -(-n_rows // n_from)
    return np.concatenate([rng.permutation(n_from) for _ in range(reps)])[:n_rows]


def ncr_pairs(*, reference_reco: np.ndarray, reference_truth: np.ndarray,
              target_reco: np.ndarray, target_truth: np.ndarray, rng: np.random.Generator
              ) -> tuple[np.ndarray, np.ndarray]:
    """Triples and labels realising the NCR loss (ncr.md Eq. 13, text below Eq. 15).

    Parameters
    ----------
    reference_reco, reference_truth
        ``[n_ref, N]`` and ``[n_ref, M]``: reference events (x, x') ~ p (label 0).
    target_reco, target_truth
        ``[n_tgt, N]`` and ``[n_tgt, M]``: target events (y, y') ~ q (label 1).
    rng
        Draws the partners (a permutation of the other sample's truth).

    Returns
    -------
    triples, labels
        ``[n_ref + n_tgt, N + 2M]`` rows (reco, x', y') and ``[n_ref + n_tgt]`` labels,
        reference rows first.
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in
              (reference_reco, reference_truth, target_reco, target_truth)]
    arrays = [a[:, None] if a.ndim == 1 else a for a in arrays]
    ref_reco, ref_truth, tgt_reco, tgt_truth = arrays
    if len(ref_reco) != len(ref_truth) or len(tgt_reco) != len(tgt_truth):
        raise DataError("ncr: reco and truth arrays of one sample differ in length")
    if ref_truth.shape[1] != tgt_truth.shape[1] or ref_reco.shape[1] != tgt_reco.shape[1]:
        raise DataError("ncr: reference and target have different feature dimensions")
    if len(ref_reco) == 0 or len(tgt_reco) == 0:
        raise DataError("ncr: reference and target must both have events")
    for a in arrays:
        if not np.all(np.isfinite(a)):
            raise DataError("ncr: inputs contain NaN/inf; ratiofit refuses non-finite inputs")
    partner_of_reference = _pick(len(ref_reco), len(tgt_truth), rng)
    partner_of_target = _pick(len(tgt_reco), len(ref_truth), rng)
    reference_rows = np.concatenate(
        [ref_reco, ref_truth, tgt_truth[partner_of_reference]], axis=1)
    target_rows = np.concatenate(
        [tgt_reco, ref_truth[partner_of_target], tgt_truth], axis=1)
    labels = np.concatenate([np.zeros(len(ref_reco)), np.ones(len(tgt_reco))])
    return np.concatenate([reference_rows, target_rows]), labels


def diagonal_triples(*, reco: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Triples (x, x', x') at which the network's logit is log w (ncr.md Eq. 15)."""
    reco = np.asarray(reco, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    reco = reco[:, None] if reco.ndim == 1 else reco
    truth = truth[:, None] if truth.ndim == 1 else truth
    return np.concatenate([reco, truth, truth], axis=1)


class NCRLoss(BCE):
    """BCE on NCR triples; the logit at y' = x' is log q(x|x')/p(x|x') (ncr.md Eq. 15).

    The loss and the logit-to-log-w map are those of ``bce``; what makes it NCR is the
    pairing (:func:`ncr_pairs`) and evaluation on :func:`diagonal_triples`.
    """

    name = "ncr"


@hookimpl
def ratiofit_losses() -> list[Any]:
    return [NCRLoss()]
