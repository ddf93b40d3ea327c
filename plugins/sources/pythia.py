"""Source ``pythia``: e+e- → Z → hadrons with PYTHIA 8, clustered into jets (DCTR's sample).

Each example is one **jet**: PYTHIA generates e+e- → γ*/Z → q q̄ (q = d, u, s, c, b) at
``ecm`` (default 91.188 GeV) with its default Monash tune (``Tune:ee = 7``); the visible
final-state particles (everything but neutrinos) are clustered with FastJet's e+e-
generalised-kt algorithm (``ee_genkt_algorithm``, radius ``jet_r`` = 0.8, exponent
``jet_p`` = −1, i.e. the anti-kt ordering, energy-recombination scheme), and the
``n_jets`` = 2 most **energetic** jets of every event are kept (energy, not pT: at an e+e-
collider the beam axis has no special role for the hard process). So a sample of
``n_events`` examples needs ⌈n_events / n_jets⌉ e+e- events; an odd remainder drops the
trailing jets of the last event. An event with fewer than ``n_jets`` jets is discarded
and replaced by the next generated event (rare: all particles within 0.8 rad of one axis).

Per jet the source returns

- ``particles``: the constituents, ordered by decreasing pT, with ``pt``, ``eta``,
  ``phi`` (relative to the beam axis, float32), ``pid`` (PDG id, int32) and the
  preprocessed fields of :func:`ratiofit.plugins.jets.preprocessing.preprocess_jets`
  (``z``, ``deta``, ``dphi`` and the PID encoding chosen by ``pid_encoding``);
- ``features``: ``jet_e``, ``jet_pt``, ``jet_eta``, ``jet_phi`` and the observables of
  :func:`ratiofit.plugins.jets.observables.jet_observables` (:data:`OBSERVABLE_NAMES`).

**Parameters.** ``parameters`` maps ratiofit parameter names to PYTHIA parameters, e.g.
``{alpha_s: "TimeShower:alphaSvalue", a_lund: "StringZ:aLund"}``; each is fixed or varied
as the sample's ``theta`` says. PYTHIA must be re-initialised for every new value
(≈ 0.1 s, about three quarters of it in the set-up of the Higgs bosons' widths,
``ResonanceH::initConstants``, which ``isResonance = off`` for them does not skip), so θ
is varied per **block** of ``block_size`` e+e- events: block *b* uses the
θ drawn for its first example for all of its examples, and the returned EventSet reports
those values (``ratiofit.sampling.make_sample`` then uses them). The blocks' θ values are
therefore still independent uniform draws, only fewer of them: a sample of
10⁶ jets with the default ``block_size`` = 2000 has 250 distinct θ values, enough for a
network to interpolate smoothly in θ, at a re-initialisation cost of about 0.1 s per
0.3 s of PYTHIA's own generation time (≈ 6500 events/s for a bare ``next()`` loop on
one core of the development machine); raise it for speed at the price of fewer θ values,
lower it for small samples (the specs use 500–1000).

**Hadronization variations: exact per-jet weights.** ``variations`` declares a grid of
other values for parameters that ``parameters`` maps to one of the PYTHIA parameters
in :data:`FRAG_VARIATIONS` (``StringZ:aLund``, ``bLund``, ``rFactC``, ``rFactB``,
``StringPT:sigma``; ``StringFlav:probQQtoQ``, ``probStoUD``, ``probSQtoQQ``,
``probQQ1toQQ0``), e.g. with ``parameters: {a_lund: "StringZ:aLund", prob_s_ud:
"StringFlav:probStoUD"}``::

    variations: {a_lund: [0.6, 0.8], prob_s_ud: [0.25]}

The grid is every combination of each parameter's listed values *or its own value*,
but the one that changes nothing (:func:`variation_grid`): here five points,
``prob_s_ud=0.25``, ``a_lund=0.6``, ``a_lund=0.6,prob_s_ud=0.25``, ``a_lund=0.8`` and
``a_lund=0.8,prob_s_ud=0.25``. PYTHIA's hadronization variations
(``VariationFrag:List``, the manual's "Hadronization Variations": every string break's
z, pT and flavour choice reweighted) give every generated e+e- event, for every grid
point θ_k, the ratio

    w_k = P(event | θ_k) / P(event | θ_gen)

of the probabilities of its fragmentation history, θ_gen the θ of its block and θ_k
that θ with the point's values put in. Each jet records its event's weights, as the
columns of the EventSet's ``alt_weights`` (:class:`ratiofit.events.AltWeights`; a
column's θ names only the parameters the point moves). A jet x is a function of its
event, so **E[w_k | x] = p(x|θ_k) / p(x|θ_gen)**: averaged over the histories that
give the same jet, the weight is the marginal ratio a reweighter learns, which makes
the weights an exact, per-jet ground truth for closure and a training target. w_k
itself is the *joint* ratio (the event's whole history enters), noisier than the
marginal one; its mean over jets is 1, with a standard error from the per-*event*
weights (an event's two jets share one). Far from θ_gen the weights grow heavy-tailed
and the effective sample size falls (PYTHIA does not warn; measured on 4000 events at
Monash, a_lund 0.68 → 0.6 keeps 96 % of it, → 1.0 only 6 %). A grid value equal to a
block's own value gives weights of exactly 1.

*Per block, the nominal is the block's θ.* PYTHIA weights relative to the values it
was initialised with, and a block has one θ, so a variation of a parameter the sample
also varies is well defined and allowed: each jet's weight moves it from its block's
value to the grid value (the pairs (θ_gen, θ_k) a joint-ratio training loss wants);
the weights of a nominal sample (θ fixed) are ratios to the nominal.

*Checks and caveats.* Refused in :meth:`Pythia.check`: a parameter PYTHIA's
variations cannot weight (e.g. ``TimeShower:alphaSvalue``: the shower has no such
weights here), values outside PYTHIA's limits for the parameter, a value listed twice,
more than 1000 grid points, a ``VariationFrag:List`` in ``settings``, and flavour
parameters (``StringFlav:*``) without ``StringFlav:popcornRate = 0`` in ``settings``:
with popcorn baryon production (Monash's default) PYTHIA 8.317's flavour weights do not
average to 1 (measured on 24 000 events: prob_s_ud 0.217 → 0.25 gives 0.978 ± 0.002,
``probQQ1toQQ0`` 0.0275 → 0.03 gives 1.068 ± 0.001), and PYTHIA's own flavour examples
(main263, main264) switch popcorn off; with it off, and for the kinematic parameters
with Monash's popcorn on, every mean was consistent with 1 on 300 000 events (pulls
≤ 1.4; a_lund 0.5–0.75 and prob_s_ud 0.2–0.3 within 0.1 %). The variations
change no event (the same seed gives the same events with and without them); they cost
generation time (≈ 20 % with 1–10 grid points, about half the speed with 50, on two
shared cores). The weights are those of generated events; a discarded event with fewer
than ``n_jets`` jets would make their mean P(kept | θ_k) / P(kept | θ_gen), but none of
20 000 events was discarded with ``jet_r`` = 0.8 and ``n_jets`` = 2.

**Seeds and parallelism.** One base seed is drawn from the ``rng`` passed in; block *b*
gets the PYTHIA seed derived from (base seed, b) (``Random:setSeed = on``), so the same
``rng`` state gives identical events whatever ``processes`` is. Blocks run in
``processes`` spawned worker processes (:class:`ratiofit.execution.ProcessExecutor`, a process pool
with the ``spawn`` start method: PYTHIA holds no state across blocks and nothing relies on
fork), with a progress bar on stderr when it is a terminal. Each process reads PYTHIA's
XML databases once, into a template it never initialises or changes, and gives every
block a copy of it (``Pythia(settings, particleData)``: the same events as a freshly
constructed instance, ≈ 5 ms instead of ≈ 0.1 s). As with any spawned pool, a
script that calls the source with ``processes`` > 1 needs the ``if __name__ ==
"__main__":`` guard.

**Settings.** The process settings (:data:`PROCESS_SETTINGS`, then ``Beams:eCM``) are
read first, then the ``settings`` strings (which may change them, e.g. ``23:onIfAny``),
then the block's θ values, then the seed.

**Cache.** With ``cache: true`` every block's jets (constituents, jet kinematics and
variation weights, before preprocessing and observables, which are recomputed) are
stored as parquet under
``$RATIOFIT_CACHE/pythia`` (default ``~/.cache/ratiofit/pythia``), named by a hash of
everything that determines them: the PYTHIA settings including θ, the block's seed and
size, the jet definition, and the pythia8mc and fastjet versions. Files are written to
a temporary name and renamed into place, so a crash never leaves half a file; a rerun of
the same spec reads the blocks back (logged as a cache hit).

**Checks.** :meth:`Pythia.check` runs when a spec is validated, before anything is
generated: every PYTHIA name in ``parameters`` must be a PYTHIA parameter (a ``parm``),
the sample's θ range must lie within the limits PYTHIA declares for it, every
``settings`` string must be accepted by PYTHIA (``Random:`` settings are reserved for the
source's seeding, ``VariationFrag:List`` for ``variations``), and ``variations`` must be
a grid PYTHIA weights exactly (above).
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import itertools
import json
import logging
import math
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ratiofit.hookspecs import hookimpl
from ratiofit.options import Option, resolve_options
from ratiofit.plugins.jets.preprocessing import PID_ENCODINGS, preprocess_jets

__all__ = ["FRAG_VARIATIONS", "JET_NAMES", "OBSERVABLE_NAMES", "PROCESS_SETTINGS", "Pythia",
           "PythiaCheckError", "plan_blocks", "variation_grid"]

log = logging.getLogger(__name__)

#: PYTHIA settings of the process (the beam energy comes from the ``ecm`` option).
PROCESS_SETTINGS: tuple[str, ...] = (
    "Beams:idA = 11",
    "Beams:idB = -11",
    "PDF:lepton = off",
    "WeakSingleBoson:ffbar2gmZ = on",
    "23:onMode = off",
    "23:onIfAny = 1 2 3 4 5",
    "Tune:ee = 7",  # Monash, PYTHIA's default: stated so the sample does not depend on it
)
# No banner, no init or event listings, no "event N" counter: workers run silently.
_QUIET_SETTINGS: tuple[str, ...] = (
    "Print:quiet = on",
    "Init:showProcesses = off",
    "Init:showChangedSettings = off",
    "Init:showChangedParticleData = off",
    "Next:numberCount = 0",
    "Next:numberShowInfo = 0",
    "Next:numberShowProcess = 0",
    "Next:numberShowEvent = 0",
)
#: Jet-level features, before the observables.
JET_NAMES: tuple[str, ...] = ("jet_e", "jet_pt", "jet_eta", "jet_phi")
#: Keys of ``ratiofit.plugins.jets.observables.jet_observables``, in feature order.
OBSERVABLE_NAMES: tuple[str, ...] = ("multiplicity", "n_strange", "tau1", "tau2", "tau3",
                                     "tau21", "tau32", "ecf2", "ecf3", "ecf4")
_NEUTRINOS = (12, 14, 16)
_SEED_MAX = 900_000_000  # PYTHIA accepts Random:seed in [1, 900000000]
_SUB_BATCH = 1000  # events per nextBatch call: bounds the memory of full event records
_CACHE_FORMAT = 2  # bump when the cached content or its layout changes (2: variation weights)
#: PYTHIA parameters its hadronization variations (``VariationFrag:List``) can reweight,
#: with their ``frag:`` keywords (the manual's "Hadronization Variations").
FRAG_VARIATIONS: dict[str, str] = {
    "StringZ:aLund": "aLund", "StringZ:bLund": "bLund", "StringZ:rFactC": "rFactC",
    "StringZ:rFactB": "rFactB", "StringPT:sigma": "ptSigma",
    "StringFlav:probQQtoQ": "xi", "StringFlav:probStoUD": "rho",
    "StringFlav:probSQtoQQ": "x", "StringFlav:probQQ1toQQ0": "y",
}
_FLAVOUR_KEYWORDS = frozenset({"xi", "rho", "x", "y"})
_POPCORN = "StringFlav:popcornRate"
_MAX_VARIATIONS = 1000  # grid points (weight columns) per sample
_GROUP = "ratiofit"  # PYTHIA variation group k is named f"{_GROUP}{k}" (it lowercases names)


class PythiaCheckError(ValueError):
    """A setting PYTHIA would reject; ``field`` names the offending source option."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across worker processes
        return (type(self), (self.field, str(self)))


# ---------------------------------------------------------------------------------------
# PYTHIA helpers (run in the parent for checks and in workers for generation)
# ---------------------------------------------------------------------------------------
@contextlib.contextmanager
def _silenced() -> Iterator[None]:
    """Send the C++ stdout to /dev/null: PYTHIA and FastJet print there, not via Python."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            try:
                yield
            finally:
                sys.stdout.flush()
                os.dup2(saved, 1)
    finally:
        os.close(saved)


# This process's pristine PYTHIA (constructed, quiet, never initialised, never changed):
# the source of the settings and particle data that every new instance copies.
_TEMPLATE: Any = None


def _new_pythia() -> Any:
    """A PYTHIA in its constructed state with the quiet settings, not initialised.

    Constructing PYTHIA reads its XML databases (≈ 0.1 s); this is done once per process,
    into :data:`_TEMPLATE`, and every instance after that is made with PYTHIA's copying
    constructor ``Pythia(settings, particleData)`` (≈ 5 ms), which deep-copies both
    databases: the instance starts from exactly the state a fresh construction would give
    (the same events for the same settings and seed, checked in tests/test_pythia.py), and
    nothing read into it reaches the template.
    """
    global _TEMPLATE
    from ratiofit.extras import require

    pythia8mc = require("pythia8mc", extra="pythia", by="source 'pythia'")

    with _silenced():
        if _TEMPLATE is None:
            template = pythia8mc.Pythia("", False)  # False: no banner
            for s in _QUIET_SETTINGS:
                template.readString(s, False)
            _TEMPLATE = template
        return pythia8mc.Pythia(_TEMPLATE.settings, _TEMPLATE.particleData, False)


def _setting_name(line: str) -> str:
    """``"StringZ:aLund = 0.7"`` → ``"StringZ:aLund"``."""
    return line.split("=", 1)[0].strip().split()[0] if line.strip() else ""


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {"pythia8mc": version("pythia8mc"), "fastjet": version("fastjet")}


def _cache_root() -> Path:
    root = os.environ.get("RATIOFIT_CACHE")
    base = Path(root).expanduser() if root else Path("~/.cache/ratiofit").expanduser()
    return base / "pythia"


@dataclass(frozen=True)
class _Block:
    """One PYTHIA initialisation: ``n_events`` e+e- events at one θ with one seed."""

    index: int
    n_events: int
    settings: tuple[str, ...]  # process + user + θ settings, in reading order
    seed: int
    jet_r: float
    jet_p: float
    n_jets: int
    pid_encoding: str
    cache_path: str | None
    # PYTHIA variation groups (``_GROUP``k) whose weights are recorded, in column order,
    # and their frag: settings (the cache's record of what the columns are)
    variations: tuple[dict[str, float], ...] = ()

    def key(self) -> dict[str, Any]:
        """Everything that determines the block's jets (the cache key)."""
        return {"format": _CACHE_FORMAT, "settings": list(self.settings), "seed": self.seed,
                "n_events": self.n_events, "jet_r": self.jet_r, "jet_p": self.jet_p,
                "n_jets": self.n_jets, "versions": _versions()}


@dataclass(frozen=True)
class _Visible:
    """Visible final-state particles of some events, flat: ``counts[e]`` particles of
    event e, then the next event's (float64 momenta in GeV, int32 PDG ids)."""

    counts: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    e: np.ndarray
    pid: np.ndarray

    @staticmethod
    def concatenate(parts: Sequence[_Visible]) -> _Visible:
        return _Visible(*(np.concatenate([getattr(p, f) for p in parts])
                          for f in ("counts", "px", "py", "pz", "e", "pid")))


def _visible(batch: Any) -> _Visible:
    """Visible final-state particles (status > 0, no neutrinos) of a ``nextBatch`` result.

    The event records are read as flat numpy columns (one awkward call per field, none
    per event or particle) and selected with one mask.
    """
    import awkward as ak

    from ratiofit.plugins.jets.observables import flat_lists

    n_all, prt = flat_lists(batch["prt"])
    pid = np.asarray(ak.to_numpy(prt["id"]))
    keep = (np.asarray(ak.to_numpy(prt["status"])) > 0) \
        & ~np.isin(np.abs(pid), np.asarray(_NEUTRINOS, dtype=pid.dtype))
    p = prt["p"]
    event = np.repeat(np.arange(len(n_all)), n_all)
    return _Visible(counts=np.bincount(event[keep], minlength=len(n_all)).astype(np.int64),
                    px=np.asarray(ak.to_numpy(p["px"]), dtype=np.float64)[keep],
                    py=np.asarray(ak.to_numpy(p["py"]), dtype=np.float64)[keep],
                    pz=np.asarray(ak.to_numpy(p["pz"]), dtype=np.float64)[keep],
                    e=np.asarray(ak.to_numpy(p["e"]), dtype=np.float64)[keep],
                    pid=pid[keep].astype(np.int32))


def _kinematics(px: np.ndarray, py: np.ndarray, pz: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """pT, η, φ about the beam axis; η of a particle exactly along the beam is clipped."""
    pt = np.hypot(px, py)
    # pT = 0 would give η = ±∞; 1e-9 GeV keeps it finite (|η| ≲ 25) for that null case.
    eta = np.arcsinh(pz / np.maximum(pt, 1e-9))
    return pt, eta, np.arctan2(py, px)


def _ragged_take(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Flat positions of the ranges ``[starts[i], starts[i] + sizes[i])``, concatenated."""
    total = int(sizes.sum())
    first = np.cumsum(sizes) - sizes  # where range i begins in the output
    return np.arange(total, dtype=np.int64) + np.repeat(starts - first, sizes)


def _cluster(visible: _Visible, block: _Block) -> tuple[Any, np.ndarray, np.ndarray]:
    """Cluster events; keep those with ≥ ``n_jets`` jets, their ``n_jets`` leading jets.

    Returns the constituents ``[n_kept * n_jets] * var * {pt, eta, phi, pid}`` (jets of
    an event consecutive, most energetic first), the jets' ``[n, 4]`` (E, pT, η, φ) and
    the events kept (a boolean mask over the events of ``visible``).

    One FastJet call clusters all events; its jets and constituent indices are read back
    as flat numpy arrays and selected, sorted and gathered with numpy index arithmetic.
    """
    import awkward as ak
    import fastjet

    from ratiofit.plugins.jets.observables import flat_lists, jagged_columns

    counts = visible.counts
    n_events = len(counts)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    events = ak.Array(ak.contents.ListOffsetArray(
        ak.index.Index64(offsets),
        ak.contents.RecordArray([ak.contents.NumpyArray(a) for a in
                                 (visible.px, visible.py, visible.pz, visible.e)],
                                ["px", "py", "pz", "E"])))
    jetdef = fastjet.JetDefinition(fastjet.ee_genkt_algorithm, block.jet_r, block.jet_p)
    with _silenced():  # the FastJet banner on first use
        cs = fastjet.ClusterSequence(events, jetdef)  # one C++ call for all events given
        jets = cs.inclusive_jets()
        index = cs.constituent_index()
    # jets of all events, flat (event by event, FastJet's order), and their constituents
    n_jets_of, jet4 = jagged_columns(jets, ("px", "py", "pz", "E"))
    per_event, per_jet = flat_lists(index)  # per_jet: [all jets] * var * particle index
    jet_sizes, members = flat_lists(per_jet)
    jet_members = np.asarray(ak.to_numpy(members), dtype=np.int64)
    if not (np.array_equal(per_event, n_jets_of) and len(n_jets_of) == n_events):
        raise RuntimeError("FastJet's jets and their constituents do not match")

    # Per event, jets by decreasing energy (stable: ties keep FastJet's order); keep the
    # first n_jets of the events that have at least n_jets.
    event_of_jet = np.repeat(np.arange(n_events), n_jets_of)
    by_energy = np.lexsort((-np.asarray(jet4["E"], dtype=np.float64), event_of_jet))
    first_jet = np.cumsum(n_jets_of) - n_jets_of
    rank = np.arange(len(by_energy)) - first_jet[event_of_jet]  # event_of_jet is sorted
    ok = n_jets_of >= block.n_jets
    chosen = by_energy[(rank < block.n_jets) & ok[event_of_jet]]

    # Their constituents, as indices into the flat particle arrays.
    jet_start = np.cumsum(jet_sizes) - jet_sizes
    sizes = jet_sizes[chosen]
    flat_idx = jet_members[_ragged_take(jet_start[chosen], sizes)] \
        + np.repeat(offsets[event_of_jet[chosen]], sizes)
    pt, eta, phi = _kinematics(visible.px[flat_idx], visible.py[flat_idx],
                               visible.pz[flat_idx])
    pid = visible.pid[flat_idx].astype(np.int32)
    # Constituents by decreasing pT within each jet: sort on (jet, -pT) in one lexsort.
    owner = np.repeat(np.arange(len(sizes)), sizes)
    perm = np.lexsort((-pt, owner))
    cols = {"pt": pt[perm], "eta": eta[perm], "phi": phi[perm]}
    record = {k: v.astype(np.float32) for k, v in cols.items()}
    record["pid"] = pid[perm]
    constituents = ak.Array(ak.contents.ListOffsetArray(
        ak.index.Index64(np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)),
        ak.contents.RecordArray([ak.contents.NumpyArray(record[k]) for k in record],
                                list(record))))

    jx, jy, jz, je = (np.asarray(jet4[k], dtype=np.float64)[chosen]
                      for k in ("px", "py", "pz", "E"))
    jpt, jeta, jphi = _kinematics(jx, jy, jz)
    return constituents, np.stack([je, jpt, jeta, jphi], axis=1), ok


def _variation_columns(py: Any, n: int) -> list[int]:
    """Indices, in PYTHIA's weight vector, of variation groups ``_GROUP``0 … n−1."""
    info = py.infoPython()
    names = [info.weightNameByIndex(k).lower() for k in range(info.numberOfWeights())]
    try:
        return [names.index(f"{_GROUP}{k}") for k in range(n)]
    except ValueError:
        raise RuntimeError(f"PYTHIA did not set up the hadronization variations (weights: "
                           f"{names})") from None


def _generate_block(block: _Block) -> tuple[Any, np.ndarray, np.ndarray | None]:
    """Run PYTHIA for one block: ``n_events`` accepted events → their ``n_jets`` jets each,
    and each jet's variation weights ``[n_jets * n_events, k]`` (its event's; ``None``
    without variations)."""
    import awkward as ak

    py = _new_pythia()
    with _silenced():
        for s in (*block.settings, "Random:setSeed = on", f"Random:seed = {block.seed}"):
            if not py.readString(s, False):  # check() vetted these in the parent already
                raise RuntimeError(f"PYTHIA rejected {s!r}")
        if not py.init():
            raise RuntimeError(f"PYTHIA initialisation failed for block {block.index}")
    columns = _variation_columns(py, len(block.variations)) if block.variations else []
    parts, jets, weights = [], [], []
    have = tried = 0
    while have < block.n_events:
        # Events are accepted in generation order and the event sequence of a seed does
        # not depend on how it is batched, so the block's content is fixed by its seed.
        need = block.n_events - have
        visible: list[_Visible] = []
        event_w: list[np.ndarray] = []
        got = 0
        while got < need:
            with _silenced():
                # Full event records (with history) are large: read them in sub-batches,
                # keep only the visible final state.
                batch = py.nextBatch(min(_SUB_BATCH, need - got))
            if len(batch) == 0:
                raise RuntimeError(f"PYTHIA generated no events in block {block.index}")
            visible.append(_visible(batch))
            if columns:  # every event has the same number of weights: a regular array
                event_w.append(np.asarray(ak.to_numpy(ak.to_regular(
                    batch["info"]["weights"], axis=1)), dtype=np.float64)[:, columns])
            got += len(batch)
        tried += got
        # One ClusterSequence call for all events of this pass (normally the whole block).
        c, j, ok = _cluster(_Visible.concatenate(visible), block)
        kept = min(int(ok.sum()), need)
        parts.append(c[: kept * block.n_jets])
        jets.append(j[: kept * block.n_jets])
        if columns:  # each jet carries its event's weights
            w = np.concatenate(event_w, axis=0)[ok][:kept]
            weights.append(np.repeat(w, block.n_jets, axis=0))
        have += kept
        if have < block.n_events and tried > 20 * block.n_events + 1000:
            raise ValueError(f"only {have} of {tried} events have {block.n_jets} jets with "
                             f"R = {block.jet_r}; lower n_jets or jet_r")
    return (ak.concatenate(parts, axis=0), np.concatenate(jets, axis=0),
            np.concatenate(weights, axis=0) if columns else None)


def _cache_alt(block: _Block, values: np.ndarray) -> Any:
    """The cached variation weights: columns named by PYTHIA group, θ in PYTHIA names."""
    from ratiofit.events import AltWeights

    return AltWeights(values=values,
                      names=tuple(f"{_GROUP}{k}" for k in range(len(block.variations))),
                      theta=block.variations)


def _read_cache(path: Path, block: _Block) -> tuple[Any, np.ndarray, np.ndarray | None] | None:
    from ratiofit.events import EventSet

    try:
        ev = EventSet.from_parquet(path)
    except Exception:  # unreadable or foreign file: regenerate and overwrite it
        return None
    if ev.feature_names != JET_NAMES or ev.particles is None:
        return None
    if not block.variations:
        return ev.particles, ev.features, None
    expected = _cache_alt(block, np.ones((0, len(block.variations))))
    alt = ev.alt_weights
    if alt is None or alt.names != expected.names or alt.theta != expected.theta:
        return None
    return ev.particles, ev.features, alt.values


def _write_cache(path: Path, block: _Block, particles: Any, jets: np.ndarray,
                 weights: np.ndarray | None) -> None:
    from ratiofit.events import EventSet

    # EventSet.to_parquet writes a temporary file in the same folder and renames it.
    EventSet(features=jets, feature_names=JET_NAMES, particles=particles,
             alt_weights=None if weights is None else _cache_alt(block, weights),
             provenance={"source": "pythia", "cache_key": block.key()}).to_parquet(path)


def _observables(particles: Any) -> dict[str, np.ndarray]:
    from ratiofit.plugins.jets.observables import jet_observables

    with _silenced():  # FastJet's banner, when the block came from the cache
        obs = jet_observables(particles)
    if set(obs) != set(OBSERVABLE_NAMES):
        raise RuntimeError(f"jet_observables returned {sorted(obs)}, the pythia source "
                           f"declares {list(OBSERVABLE_NAMES)}")
    return obs


def _make_block(block: _Block) -> tuple[int, Any, np.ndarray, np.ndarray | None, bool]:
    """Read the block from the cache or generate it; add preprocessing and observables.

    Runs in a worker process (or in-process with ``processes: 1``); returns
    (block index, particles, features ``[n, d]``, variation weights ``[n, k]`` or
    ``None``, whether the cache was hit).
    """
    raw: tuple[Any, np.ndarray, np.ndarray | None] | None = None
    path = Path(block.cache_path) if block.cache_path else None
    if path is not None and path.exists():
        raw = _read_cache(path, block)
    hit = raw is not None
    if raw is None:
        raw = _generate_block(block)
        if path is not None:
            _write_cache(path, block, *raw)
    constituents, jets, weights = raw
    particles = preprocess_jets(constituents, jet_eta=jets[:, 2], jet_phi=jets[:, 3],
                                pid_encoding=block.pid_encoding)
    obs = _observables(particles)
    features = np.concatenate(
        [jets, np.stack([np.asarray(obs[k], dtype=np.float64) for k in OBSERVABLE_NAMES],
                        axis=1)], axis=1)
    return block.index, particles, features, weights, hit


# ---------------------------------------------------------------------------------------
# the plugin
# ---------------------------------------------------------------------------------------
class Pythia:
    name = "pythia"
    options: Mapping[str, Option] = {
        "parameters": Option(
            kind="mapping", default={},
            doc="ratiofit parameter name -> PYTHIA parameter it sets, e.g. "
                "{alpha_s: TimeShower:alphaSvalue}"),
        "settings": Option(kind="str_list", default=[],
                           doc="extra fixed PYTHIA setting strings, e.g. 'StringZ:aLund = 0.7'"),
        "ecm": Option(kind="float", default=91.188, minimum=1.0,
                      doc="e+e- centre-of-mass energy in GeV"),
        "jet_r": Option(kind="float", default=0.8, minimum=0.01, maximum=3.14159,
                        doc="jet radius (radians) of the e+e- generalised-kt algorithm"),
        "jet_p": Option(kind="float", default=-1.0,
                        doc="exponent p of the e+e- generalised-kt algorithm (-1: anti-kt)"),
        "n_jets": Option(kind="int", default=2, minimum=1,
                         doc="most energetic jets kept per event; each jet is one example"),
        "pid_encoding": Option(kind="str", default="remap", choices=list(PID_ENCODINGS),
                               doc="particle-type fields: remap (pid_code), onehot, both, none"),
        "block_size": Option(kind="int", default=2000, minimum=1,
                             doc="e+e- events per PYTHIA initialisation (one theta per block)"),
        "processes": Option(kind="int", default=1, minimum=1,
                            doc="worker processes generating blocks in parallel"),
        "cache": Option(kind="bool", default=True,
                        doc="cache generated blocks as parquet under $RATIOFIT_CACHE/pythia"),
        "cache_dir": Option(kind="str", default=None,
                            doc="cache folder (default $RATIOFIT_CACHE/pythia or "
                                "~/.cache/ratiofit/pythia)"),
        "variations": Option(
            kind="mapping", default={},
            doc="exact per-jet weights to other hadronization values (PYTHIA's "
                "VariationFrag): parameter -> values, e.g. {a_lund: [0.6, 0.8], "
                "prob_s_ud: [0.25]}; one weight column per point of the grid these values "
                "span with each parameter's own value"),
    }

    # -- declared outputs ---------------------------------------------------------------
    def feature_names(self, options: Mapping[str, Any]) -> Sequence[str]:
        return [*JET_NAMES, *OBSERVABLE_NAMES]

    def alt_weight_theta(self, options: Mapping[str, Any]) -> list[dict[str, float]]:
        """The θ of each exact-weight column the jets carry: the ``variations`` grid
        (:func:`variation_grid`; empty without variations)."""
        return variation_grid(options.get("variations") or {})

    def particle_fields(self, options: Mapping[str, Any]) -> Sequence[str]:
        """Per-particle fields of the returned jets (raw, then preprocessed)."""
        from ratiofit.plugins.jets.preprocessing import ONEHOT_SPECIES

        encoding = options.get("pid_encoding", "remap")
        pid = {"remap": ["pid_code"], "none": [],
               "onehot": [*(f"pid_{s}" for s in ONEHOT_SPECIES), "charge"],
               "both": ["pid_code", *(f"pid_{s}" for s in ONEHOT_SPECIES), "charge"]}[encoding]
        return ["pt", "eta", "phi", "pid", "z", "deta", "dphi", *pid]

    # -- checks -------------------------------------------------------------------------
    def check(self, *, options: Mapping[str, Any],
              theta: Mapping[str, tuple[float | None, float | None]]) -> None:
        """Reject what PYTHIA would reject, before any event is generated.

        Parameters
        ----------
        options
            The source options (defaults filled in or not).
        theta
            Each spec parameter's ``(low, high)`` for this sample (equal when fixed).

        Raises
        ------
        ValueError
            With ``field`` set to the option at fault (``parameters`` or ``settings``).
        """
        opts = _resolve(self.options, options)
        py = _new_pythia()
        settings = py.settings
        mapping = opts["parameters"]
        for pname, target in mapping.items():
            if not isinstance(target, str):
                raise PythiaCheckError("parameters", f"'{pname}' must map to a PYTHIA parameter "
                                                     f"name, got {target!r}")
            if pname not in theta:
                raise PythiaCheckError("parameters", f"'{pname}' is not a parameter of the spec "
                                                     f"(defined: {', '.join(theta) or 'none'})")
            if not settings.isParm(target):
                raise PythiaCheckError("parameters", _unknown_setting(py, target, kind="parm"))
            parm = settings.getParmMap(target)[target.lower()]
            lo, hi = theta[pname]
            lo_ok = lo is None or not parm.hasMin or lo >= parm.valMin
            hi_ok = hi is None or not parm.hasMax or hi <= parm.valMax
            if not (lo_ok and hi_ok):
                raise PythiaCheckError("parameters", f"'{pname}' range [{lo}, {hi}] is outside "
                                                     f"what PYTHIA accepts for {parm.name} "
                                                     f"{_limits(parm)}")
        for pname, (lo, hi) in theta.items():
            # A θ the generator ignores would label events with values they were not made at.
            if pname not in mapping and lo is not None and hi is not None and lo != hi:
                raise PythiaCheckError("parameters", f"the sample varies '{pname}' but "
                                                     "'parameters' maps it to no PYTHIA setting")
        mapped = {t.lower() for t in mapping.values() if isinstance(t, str)}
        for line in opts["settings"]:
            _check_setting(py, line, mapped)
        _check_variations(py, opts)

    # -- generation ---------------------------------------------------------------------
    def generate(self, *, n_events: int, theta: Mapping[str, np.ndarray],
                 options: Mapping[str, Any], rng: np.random.Generator) -> Any:
        """Generate ``n_events`` jets (see the module docstring).

        Returns
        -------
        ratiofit.events.EventSet
            Features, particles, and θ columns (the per-block values actually used) for
            each parameter in the ``parameters`` option.
        """
        import awkward as ak
        from tqdm import tqdm

        from ratiofit.events import EventSet

        opts = _resolve(self.options, options)
        mapping: dict[str, str] = dict(opts["parameters"])
        n_jets = opts["n_jets"]
        if n_events < 1:
            raise ValueError(f"n_events must be >= 1, got {n_events}")
        arrays = {p: np.broadcast_to(np.asarray(v, dtype=np.float64), (n_events,))
                  for p, v in theta.items()}
        self.check(options=opts, theta={p: (float(a.min()), float(a.max()))
                                        for p, a in arrays.items()})
        grid = variation_grid(opts["variations"])
        plan = plan_blocks(n_events, n_jets=n_jets, block_size=opts["block_size"],
                           theta={p: arrays[p] for p in mapping})
        base_seed = int(rng.integers(1, 2**63 - 1))
        cache_dir = None
        if opts["cache"]:
            cache_dir = Path(opts["cache_dir"]).expanduser() if opts["cache_dir"] \
                else _cache_root()
            cache_dir.mkdir(parents=True, exist_ok=True)
        common = (*PROCESS_SETTINGS, f"Beams:eCM = {opts['ecm']!r}", *opts["settings"])
        # PYTHIA's name of each grid point: its parameters, values and frag: keywords
        frag = tuple({mapping[p]: v for p, v in point.items()} for point in grid)
        if grid:
            common = (*common, _variation_setting(frag))
        blocks = []
        for b, (_, n_b, values) in enumerate(plan):
            settings = (*common, *(f"{mapping[p]} = {v!r}" for p, v in values.items()))
            blk = _Block(index=b, n_events=n_b, settings=settings, seed=_block_seed(base_seed, b),
                         jet_r=opts["jet_r"], jet_p=opts["jet_p"], n_jets=n_jets,
                         pid_encoding=opts["pid_encoding"], cache_path=None,
                         variations=frag)
            if cache_dir is not None:
                digest = hashlib.sha256(json.dumps(blk.key(), sort_keys=True).encode())
                blk = replace(blk, cache_path=str(cache_dir / f"{digest.hexdigest()[:40]}.parquet"))
            blocks.append(blk)

        results: dict[int, tuple[Any, np.ndarray, np.ndarray | None]] = {}
        hits = 0
        bar = tqdm(total=sum(b.n_events for b in blocks), unit="ev", desc="pythia",
                   file=sys.stderr, disable=None, leave=False)  # disable=None: only on a tty

        def collect(out: tuple[int, Any, np.ndarray, np.ndarray | None, bool]) -> None:
            nonlocal hits
            index, parts, feats, alt, hit = out
            results[index] = (parts, feats, alt)
            hits += hit
            if hit:
                log.info("pythia: cache hit: block %d (%d events) read from %s", index,
                         blocks[index].n_events, blocks[index].cache_path)
            bar.update(blocks[index].n_events)

        try:
            # Cached blocks are read here; only missing ones are worth starting workers for
            # (and a fully cached sample then needs no worker processes at all).
            missing = [blk for blk in blocks
                       if blk.cache_path is None or not os.path.exists(blk.cache_path)]
            for blk in blocks:
                if blk not in missing:
                    collect(_make_block(blk))
            workers = min(opts["processes"], len(missing))
            if workers <= 1:
                for blk in missing:
                    collect(_make_block(blk))
            else:
                # through ratiofit's executor: spawned workers (no forked PYTHIA,
                # TensorFlow or lock state), results collected as they arrive
                from ratiofit.execution import Job, ProcessExecutor

                jobs = [Job(name=f"pythia-block-{blk.index}", function=_make_block,
                            kwargs={"block": blk}) for blk in missing]
                with ProcessExecutor(workers=workers,
                                     on_result=lambda _job, out: collect(out)) as pool:
                    pool.run(jobs)
        finally:
            bar.close()
        if hits:
            log.info("pythia: cache hit for %d of %d blocks (%s)", hits, len(blocks), cache_dir)

        # An odd n_events drops the trailing jet(s) of the last event.
        particles = ak.concatenate([results[b][0] for b in range(len(blocks))],
                                   axis=0)[:n_events]
        features = np.concatenate([results[b][1] for b in range(len(blocks))],
                                  axis=0)[:n_events]
        alt_weights = None
        if grid:
            from ratiofit.events import AltWeights

            alt_values = np.concatenate([results[b][2] for b in range(len(blocks))],
                                        axis=0)[:n_events]
            alt_weights = AltWeights(values=alt_values, theta=tuple(grid),
                                     names=tuple(_column_name(pt) for pt in grid))
        theta_cols = np.stack([
            np.repeat([v[p] for _, _, v in plan], [n * n_jets for _, n, _ in plan])[:n_events]
            for p in mapping], axis=1) if mapping else None
        return EventSet(
            features=features, feature_names=tuple(self.feature_names(opts)),
            theta=theta_cols, theta_names=tuple(mapping), particles=particles,
            alt_weights=alt_weights, provenance={"generator": "pythia8mc", "versions": _versions(),
                        "base_seed": base_seed, "block_size": opts["block_size"],
                        "n_blocks": len(blocks), "cache_hits": hits,
                        "block_theta": [v for _, _, v in plan]})


def variation_grid(variations: Mapping[str, Sequence[float]]) -> list[dict[str, float]]:
    """The points of the ``variations`` option: every combination of each parameter's
    listed values or its own value (left out of the point), but the one that changes
    nothing; parameters in the option's order, values in the listed order.

    >>> variation_grid({"a_lund": [0.6, 0.8], "prob_s_ud": [0.3]})
    [{'prob_s_ud': 0.3}, {'a_lund': 0.6}, {'a_lund': 0.6, 'prob_s_ud': 0.3}, \
{'a_lund': 0.8}, {'a_lund': 0.8, 'prob_s_ud': 0.3}]
    """
    axes = [[None, *(float(v) for v in values)] for values in variations.values()]
    return [{p: v for p, v in zip(variations, combo, strict=True) if v is not None}
            for combo in itertools.product(*axes)][1:]


def _column_name(point: Mapping[str, float]) -> str:
    """``{"a_lund": 0.6, "prob_s_ud": 0.3}`` → ``"a_lund=0.6,prob_s_ud=0.3"``."""
    return ",".join(f"{p}={v!r}" for p, v in point.items())


def _variation_setting(frag: Sequence[Mapping[str, float]]) -> str:
    """``VariationFrag:List`` with group ``_GROUP``k for grid point k (PYTHIA names)."""
    keyword = {k.lower(): v for k, v in FRAG_VARIATIONS.items()}
    groups = [" ".join([f"{_GROUP}{k}", *(f"frag:{keyword[name.lower()]}={v!r}"
                                          for name, v in point.items())])
              for k, point in enumerate(frag)]
    return "VariationFrag:List = {" + ", ".join(groups) + "}"


def _check_variations(py: Any, opts: Mapping[str, Any]) -> None:
    """Raise :class:`PythiaCheckError` (field ``variations``) for a grid PYTHIA cannot
    weight exactly (module docstring, "Hadronization variations")."""
    variations, mapping = opts["variations"], opts["parameters"]
    keyword = {k.lower(): v for k, v in FRAG_VARIATIONS.items()}
    flavour = []
    for pname, values in variations.items():
        target = mapping.get(pname)
        if not isinstance(target, str):
            raise PythiaCheckError("variations", f"'{pname}' is not mapped to a PYTHIA "
                                                 "parameter by 'parameters'")
        if target.lower() not in keyword:
            raise PythiaCheckError("variations", f"'{pname}' ({target}) cannot be weighted by "
                                                 "PYTHIA's hadronization variations; they vary "
                                                 f"{', '.join(FRAG_VARIATIONS)}")
        if not isinstance(values, list) or not values or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                for v in values):
            raise PythiaCheckError("variations", f"'{pname}' needs a non-empty list of finite "
                                                 f"numbers, got {values!r}")
        if len(set(values)) != len(values):
            raise PythiaCheckError("variations", f"'{pname}' lists a value twice: {values}")
        parm = py.settings.getParmMap(target)[target.lower()]
        for v in values:
            if (parm.hasMin and v < parm.valMin) or (parm.hasMax and v > parm.valMax):
                raise PythiaCheckError("variations", f"'{pname}' value {v} is outside what "
                                                     f"PYTHIA accepts for {parm.name} "
                                                     f"{_limits(parm)}")
        if keyword[target.lower()] in _FLAVOUR_KEYWORDS:
            flavour.append(parm.name)
    n_points = math.prod(len(v) + 1 for v in variations.values()) - 1
    if n_points > _MAX_VARIATIONS:
        raise PythiaCheckError("variations", f"the grid has {n_points} points, more than "
                                             f"{_MAX_VARIATIONS} weight columns")
    if flavour:
        popcorn = [line for line in opts["settings"]
                   if _setting_name(line).lower() == _POPCORN.lower()]
        value = popcorn[-1].split("=", 1)[1].strip() if popcorn and "=" in popcorn[-1] else ""
        if not _is_zero(value):
            raise PythiaCheckError("variations", f"variations of {', '.join(flavour)} need "
                                                 f"'{_POPCORN} = 0' in settings: with popcorn "
                                                 "baryons PYTHIA's flavour weights do not "
                                                 "average to 1")


def _is_zero(text: str) -> bool:
    try:
        return float(text) == 0.0
    except ValueError:
        return False


def plan_blocks(n_events: int, *, n_jets: int, block_size: int,
                theta: Mapping[str, np.ndarray]) -> list[tuple[int, int, dict[str, float]]]:
    """Split a sample into PYTHIA blocks and pick each block's θ.

    Parameters
    ----------
    n_events
        Examples (jets) wanted.
    n_jets
        Jets kept per e+e- event.
    block_size
        e+e- events per block.
    theta
        Per-example θ ``[n_events]`` per parameter, as drawn for the sample.

    Returns
    -------
    list of (first event, events in the block, θ of the block)
        Block *b* takes the θ drawn for its first example, index ``first * n_jets``;
        since the draws are independent, so are the blocks' θ values.
    """
    total = math.ceil(n_events / n_jets)
    plan = []
    for first in range(0, total, block_size):
        values = {p: float(a[first * n_jets]) for p, a in theta.items()}
        plan.append((first, min(block_size, total - first), values))
    return plan


def _resolve(declared: Mapping[str, Option], options: Mapping[str, Any]) -> dict[str, Any]:
    """Options with defaults filled; also accepts already-resolved options (``None`` values)."""
    return resolve_options(declared, {k: v for k, v in options.items() if v is not None},
                           where="pythia")


def _block_seed(base_seed: int, index: int) -> int:
    """PYTHIA seed of block ``index``: a SeedSequence child of the base seed, in [1, 9e8]."""
    state = np.random.SeedSequence(base_seed, spawn_key=(index,)).generate_state(2, np.uint32)
    return int((int(state[0]) << 32 | int(state[1])) % _SEED_MAX) + 1


def _limits(entry: Any) -> str:
    """``[min, max]`` of a PYTHIA parm or mode, with ±inf for a missing bound."""
    lo = entry.valMin if entry.hasMin else "-inf"
    hi = entry.valMax if entry.hasMax else "inf"
    return f"[{lo}, {hi}]"


def _check_setting(py: Any, line: str, mapped: set[str]) -> None:
    """Raise :class:`PythiaCheckError` (field ``settings``) if PYTHIA would reject ``line``."""
    settings = py.settings
    name = _setting_name(line)
    if name.lower().startswith("random:"):
        raise PythiaCheckError("settings", f"'{line}': Random settings are reserved; the source "
                                           "seeds PYTHIA from the spec seed")
    if name.lower() == "variationfrag:list":
        raise PythiaCheckError("settings", f"'{line}': VariationFrag:List is reserved; declare "
                                           "the grid with the 'variations' option")
    if name.lower() in mapped:
        raise PythiaCheckError("settings", f"'{line}' sets {name}, which 'parameters' already "
                                           "maps to a ratiofit parameter")
    known = any(f(name) for f in (settings.isParm, settings.isMode, settings.isFlag,
                                  settings.isWord, settings.isPVec, settings.isMVec,
                                  settings.isFVec, settings.isWVec))
    # "23:onMode" style names are particle data (numeric id first), not in Settings.
    particle_data = name.split(":")[0].lstrip("-").isdigit()
    if not known and not particle_data:
        raise PythiaCheckError("settings", _unknown_setting(py, name, kind="setting"))
    with _silenced():  # PYTHIA reports the reason on stdout; the message below replaces it
        accepted = py.readString(line, False)
    if accepted:
        return
    if settings.isParm(name):
        why = f"{name} is a parm in {_limits(settings.getParmMap(name)[name.lower()])}"
    elif settings.isMode(name):
        why = f"{name} is a mode in {_limits(settings.getModeMap(name)[name.lower()])}"
    elif known:
        why = "malformed or out-of-range value"
    else:
        why = "unknown particle or property, or malformed value"
    raise PythiaCheckError("settings", f"PYTHIA rejects the setting '{line}' ({why})")


def _unknown_setting(py: Any, name: str, *, kind: str) -> str:
    """'unknown PYTHIA parm ...' with the closest known names as a hint."""
    settings = py.settings
    pool = {p.name.lower(): p.name for p in settings.getParmMap("").values()}
    if kind != "parm":
        for getter in (settings.getModeMap, settings.getFlagMap, settings.getWordMap):
            pool.update({p.name.lower(): p.name for p in getter("").values()})
    close = difflib.get_close_matches(name.lower(), list(pool), n=1, cutoff=0.8)
    hint = f"; did you mean '{pool[close[0]]}'?" if close else ""
    if kind == "parm" and (settings.isMode(name) or settings.isFlag(name)
                           or settings.isWord(name)):
        return (f"PYTHIA setting '{name}' is not a continuous parameter (parm); "
                "only parms can be varied")
    return f"unknown PYTHIA {kind} '{name}'{hint}"


@hookimpl
def ratiofit_sources() -> list[Any]:
    return [Pythia()]
