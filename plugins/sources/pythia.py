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
(≈ 0.2 s), so θ is varied per **block** of ``block_size`` e+e- events: block *b* uses the
θ drawn for its first example for all of its examples, and the returned EventSet reports
those values (``ratiofit.sampling.make_sample`` then uses them). The blocks' θ values are
therefore still independent uniform draws, only fewer of them: a sample of
10⁶ jets with the default ``block_size`` = 2000 has 250 distinct θ values, enough for a
network to interpolate smoothly in θ, at a re-initialisation cost of about 0.2 s per
0.6 s of generation (≈ 25 % at ≈ 3000 events/s); raise it for speed at the price of fewer
θ values, lower it for small samples (the specs use 500–1000).

**Seeds and parallelism.** One base seed is drawn from the ``rng`` passed in; block *b*
gets the PYTHIA seed derived from (base seed, b) (``Random:setSeed = on``), so the same
``rng`` state gives identical events whatever ``processes`` is. Blocks run in
``processes`` spawned worker processes (:class:`ratiofit.execution.ProcessExecutor`, a process pool
with the ``spawn`` start method: PYTHIA holds no state across blocks and nothing relies on
fork), with a progress bar on stderr when it is a terminal. As with any spawned pool, a
script that calls the source with ``processes`` > 1 needs the ``if __name__ ==
"__main__":`` guard.

**Settings.** The process settings (:data:`PROCESS_SETTINGS`, then ``Beams:eCM``) are
read first, then the ``settings`` strings (which may change them, e.g. ``23:onIfAny``),
then the block's θ values, then the seed.

**Cache.** With ``cache: true`` every block's jets (constituents and jet kinematics,
before preprocessing and observables, which are recomputed) are stored as parquet under
``$RATIOFIT_CACHE/pythia`` (default ``~/.cache/ratiofit/pythia``), named by a hash of
everything that determines them: the PYTHIA settings including θ, the block's seed and
size, the jet definition, and the pythia8mc and fastjet versions. Files are written to
a temporary name and renamed into place, so a crash never leaves half a file; a rerun of
the same spec reads the blocks back (logged as a cache hit).

**Checks.** :meth:`Pythia.check` runs when a spec is validated, before anything is
generated: every PYTHIA name in ``parameters`` must be a PYTHIA parameter (a ``parm``),
the sample's θ range must lie within the limits PYTHIA declares for it, and every
``settings`` string must be accepted by PYTHIA (``Random:`` settings are reserved for the
source's seeding).
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
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

__all__ = ["JET_NAMES", "OBSERVABLE_NAMES", "PROCESS_SETTINGS", "Pythia", "PythiaCheckError",
           "plan_blocks"]

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
_CACHE_FORMAT = 1  # bump when the cached content or its layout changes


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


def _new_pythia() -> Any:
    from ratiofit.extras import require

    pythia8mc = require("pythia8mc", extra="pythia", by="source 'pythia'")

    with _silenced():
        py = pythia8mc.Pythia("", False)  # False: no banner
        for s in _QUIET_SETTINGS:
            py.readString(s, False)
    return py


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

    def key(self) -> dict[str, Any]:
        """Everything that determines the block's jets (the cache key)."""
        return {"format": _CACHE_FORMAT, "settings": list(self.settings), "seed": self.seed,
                "n_events": self.n_events, "jet_r": self.jet_r, "jet_p": self.jet_p,
                "n_jets": self.n_jets, "versions": _versions()}


def _visible(batch: Any) -> Any:
    """Visible final-state particles of a ``nextBatch`` result: n * var * {px, py, pz, E, pid}."""
    import awkward as ak

    prt = batch["prt"]
    apid = abs(prt["id"])
    keep = prt["status"] > 0
    for nu in _NEUTRINOS:
        keep = keep & (apid != nu)
    kept = prt[keep]
    p = kept["p"]
    return ak.zip({"px": p["px"], "py": p["py"], "pz": p["pz"], "E": p["e"],
                   "pid": kept["id"]}, with_name=None)


def _kinematics(px: np.ndarray, py: np.ndarray, pz: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """pT, η, φ about the beam axis; η of a particle exactly along the beam is clipped."""
    pt = np.hypot(px, py)
    # pT = 0 would give η = ±∞; 1e-9 GeV keeps it finite (|η| ≲ 25) for that null case.
    eta = np.arcsinh(pz / np.maximum(pt, 1e-9))
    return pt, eta, np.arctan2(py, px)


def _cluster(visible: Any, block: _Block) -> tuple[Any, np.ndarray, int]:
    """Cluster events; keep those with ≥ ``n_jets`` jets, their ``n_jets`` leading jets.

    Returns the constituents ``[n_kept * n_jets] * var * {pt, eta, phi, pid}`` (jets of
    an event consecutive, most energetic first), the jets' ``[n, 4]`` (E, pT, η, φ) and
    the number of events kept.
    """
    import awkward as ak
    import fastjet

    jetdef = fastjet.JetDefinition(fastjet.ee_genkt_algorithm, block.jet_r, block.jet_p)
    four = ak.zip({k: visible[k] for k in ("px", "py", "pz", "E")}, with_name=None)
    with _silenced():  # the FastJet banner on first use
        cs = fastjet.ClusterSequence(four, jetdef)  # one C++ call for all events given
        jets = cs.inclusive_jets()
        index = cs.constituent_index()
    order = ak.argsort(jets["E"], axis=1, ascending=False)
    jets, index = jets[order][:, :block.n_jets], index[order][:, :block.n_jets]
    ok = ak.to_numpy(ak.num(jets, axis=1)) >= block.n_jets
    jets, index, vis = jets[ok], index[ok], visible[ok]

    # Constituent indices are per event; shift them into the flat particle array.
    n_vis = ak.to_numpy(ak.num(vis, axis=1)).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(n_vis)[:-1]]).astype(np.int64)
    per_jet = ak.flatten(index, axis=1)  # [n_kept * n_jets] * var
    sizes = ak.to_numpy(ak.num(per_jet, axis=1)).astype(np.int64)
    event_of_jet = np.repeat(np.arange(len(vis)), block.n_jets)
    flat_idx = ak.to_numpy(ak.flatten(per_jet, axis=None)).astype(np.int64) \
        + np.repeat(starts[event_of_jet], sizes)
    flat = {k: ak.to_numpy(ak.flatten(vis[k], axis=None)) for k in ("px", "py", "pz", "pid")}
    pt, eta, phi = _kinematics(flat["px"][flat_idx], flat["py"][flat_idx],
                               flat["pz"][flat_idx])
    pid = flat["pid"][flat_idx].astype(np.int32)
    # Constituents by decreasing pT within each jet: sort on (jet, -pT) in one lexsort.
    owner = np.repeat(np.arange(len(sizes)), sizes)
    perm = np.lexsort((-pt, owner))
    cols = {"pt": pt[perm], "eta": eta[perm], "phi": phi[perm]}
    record = {k: v.astype(np.float32) for k, v in cols.items()}
    record["pid"] = pid[perm]
    constituents = ak.unflatten(ak.zip(record, depth_limit=1), sizes, axis=0)

    jflat = {k: ak.to_numpy(ak.flatten(jets[k], axis=None)).astype(np.float64)
             for k in ("px", "py", "pz", "E")}
    jpt, jeta, jphi = _kinematics(jflat["px"], jflat["py"], jflat["pz"])
    return constituents, np.stack([jflat["E"], jpt, jeta, jphi], axis=1), int(ok.sum())


def _generate_block(block: _Block) -> tuple[Any, np.ndarray]:
    """Run PYTHIA for one block: ``n_events`` accepted events → their ``n_jets`` jets each."""
    import awkward as ak

    py = _new_pythia()
    with _silenced():
        for s in (*block.settings, "Random:setSeed = on", f"Random:seed = {block.seed}"):
            if not py.readString(s, False):  # check() vetted these in the parent already
                raise RuntimeError(f"PYTHIA rejected {s!r}")
        if not py.init():
            raise RuntimeError(f"PYTHIA initialisation failed for block {block.index}")
    parts, jets = [], []
    have = tried = 0
    while have < block.n_events:
        # Events are accepted in generation order and the event sequence of a seed does
        # not depend on how it is batched, so the block's content is fixed by its seed.
        need = block.n_events - have
        visible, got = [], 0
        while got < need:
            with _silenced():
                # Full event records (with history) are large: read them in sub-batches,
                # keep only the visible final state.
                batch = py.nextBatch(min(_SUB_BATCH, need - got))
            if len(batch) == 0:
                raise RuntimeError(f"PYTHIA generated no events in block {block.index}")
            visible.append(_visible(batch))
            got += len(batch)
        tried += got
        # One ClusterSequence call for all events of this pass (normally the whole block).
        c, j, kept = _cluster(ak.concatenate(visible, axis=0), block)
        kept = min(kept, need)
        parts.append(c[: kept * block.n_jets])
        jets.append(j[: kept * block.n_jets])
        have += kept
        if have < block.n_events and tried > 20 * block.n_events + 1000:
            raise ValueError(f"only {have} of {tried} events have {block.n_jets} jets with "
                             f"R = {block.jet_r}; lower n_jets or jet_r")
    return ak.concatenate(parts, axis=0), np.concatenate(jets, axis=0)


def _read_cache(path: Path) -> tuple[Any, np.ndarray] | None:
    from ratiofit.events import EventSet

    try:
        ev = EventSet.from_parquet(path)
    except Exception:  # unreadable or foreign file: regenerate and overwrite it
        return None
    if ev.feature_names != JET_NAMES or ev.particles is None:
        return None
    return ev.particles, ev.features


def _write_cache(path: Path, particles: Any, jets: np.ndarray, key: dict[str, Any]) -> None:
    from ratiofit.events import EventSet

    # EventSet.to_parquet writes a temporary file in the same folder and renames it.
    EventSet(features=jets, feature_names=JET_NAMES, particles=particles,
             provenance={"source": "pythia", "cache_key": key}).to_parquet(path)


def _observables(particles: Any) -> dict[str, np.ndarray]:
    from ratiofit.plugins.jets.observables import jet_observables

    with _silenced():  # FastJet's banner, when the block came from the cache
        obs = jet_observables(particles)
    if set(obs) != set(OBSERVABLE_NAMES):
        raise RuntimeError(f"jet_observables returned {sorted(obs)}, the pythia source "
                           f"declares {list(OBSERVABLE_NAMES)}")
    return obs


def _make_block(block: _Block) -> tuple[int, Any, np.ndarray, bool]:
    """Read the block from the cache or generate it; add preprocessing and observables.

    Runs in a worker process (or in-process with ``processes: 1``); returns
    (block index, particles, features ``[n, d]``, whether the cache was hit).
    """
    raw: tuple[Any, np.ndarray] | None = None
    path = Path(block.cache_path) if block.cache_path else None
    if path is not None and path.exists():
        raw = _read_cache(path)
    hit = raw is not None
    if raw is None:
        raw = _generate_block(block)
        if path is not None:
            _write_cache(path, *raw, key=block.key())
    constituents, jets = raw
    particles = preprocess_jets(constituents, jet_eta=jets[:, 2], jet_phi=jets[:, 3],
                                pid_encoding=block.pid_encoding)
    obs = _observables(particles)
    features = np.concatenate(
        [jets, np.stack([np.asarray(obs[k], dtype=np.float64) for k in OBSERVABLE_NAMES],
                        axis=1)], axis=1)
    return block.index, particles, features, hit


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
    }

    # -- declared outputs ---------------------------------------------------------------
    def feature_names(self, options: Mapping[str, Any]) -> Sequence[str]:
        return [*JET_NAMES, *OBSERVABLE_NAMES]

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
        plan = plan_blocks(n_events, n_jets=n_jets, block_size=opts["block_size"],
                           theta={p: arrays[p] for p in mapping})
        base_seed = int(rng.integers(1, 2**63 - 1))
        cache_dir = None
        if opts["cache"]:
            cache_dir = Path(opts["cache_dir"]).expanduser() if opts["cache_dir"] \
                else _cache_root()
            cache_dir.mkdir(parents=True, exist_ok=True)
        common = (*PROCESS_SETTINGS, f"Beams:eCM = {opts['ecm']!r}", *opts["settings"])
        blocks = []
        for b, (_, n_b, values) in enumerate(plan):
            settings = (*common, *(f"{mapping[p]} = {v!r}" for p, v in values.items()))
            blk = _Block(index=b, n_events=n_b, settings=settings, seed=_block_seed(base_seed, b),
                         jet_r=opts["jet_r"], jet_p=opts["jet_p"], n_jets=n_jets,
                         pid_encoding=opts["pid_encoding"], cache_path=None)
            if cache_dir is not None:
                digest = hashlib.sha256(json.dumps(blk.key(), sort_keys=True).encode())
                blk = replace(blk, cache_path=str(cache_dir / f"{digest.hexdigest()[:40]}.parquet"))
            blocks.append(blk)

        results: dict[int, tuple[Any, np.ndarray]] = {}
        hits = 0
        bar = tqdm(total=sum(b.n_events for b in blocks), unit="ev", desc="pythia",
                   file=sys.stderr, disable=None, leave=False)  # disable=None: only on a tty

        def collect(out: tuple[int, Any, np.ndarray, bool]) -> None:
            nonlocal hits
            index, parts, feats, hit = out
            results[index] = (parts, feats)
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
        theta_cols = np.stack([
            np.repeat([v[p] for _, _, v in plan], [n * n_jets for _, n, _ in plan])[:n_events]
            for p in mapping], axis=1) if mapping else None
        return EventSet(
            features=features, feature_names=tuple(self.feature_names(opts)),
            theta=theta_cols, theta_names=tuple(mapping), particles=particles,
            provenance={"generator": "pythia8mc", "versions": _versions(),
                        "base_seed": base_seed, "block_size": opts["block_size"],
                        "n_blocks": len(blocks), "cache_hits": hits,
                        "block_theta": [v for _, _, v in plan]})


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
