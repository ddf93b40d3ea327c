"""The ``pythia`` source's numbers pinned against a reference pipeline (issue 20, item 5).

The source was made faster (a copied PYTHIA instead of a freshly constructed one per block,
the event records read as flat numpy columns instead of awkward operations per field and
per event, FastJet's output gathered with numpy index arithmetic, cheaper observables);
none of that may change a number it produces. The reference below is the pipeline as it
was before: a freshly constructed ``pythia8mc.Pythia`` per block, the visible final state
selected and the jets sorted, cut and gathered with awkward operations, and the jet
observables recomputed by the direct per-jet Python references of
``tests/test_observables.py``. Same block, same seed:

- constituents, jet kinematics and variation weights must be **identical** (bit for bit);
- the observables must agree to float64 round-off (``rtol = 1e-9``, as in
  ``test_observables.py``; measured differences are ~1e-14 relative: summation order).

The blocks run one after the other in this process, with different settings (θ values,
a variation grid), so a setting leaking from one instance into the next (through the
copied template) would show as a difference.
"""

from __future__ import annotations

from typing import Any

import awkward as ak
import numpy as np
import pytest
from test_observables import ref_observables

from ratiofit.plugins.jets.preprocessing import preprocess_jets
from ratiofit.plugins.sources import pythia as src

RTOL, ATOL = 1e-9, 1e-12  # float64 round-off, as in test_observables.py


# ----------------------------------------------------------------------- the reference


def ref_visible(batch: Any) -> Any:
    """Visible final-state particles, selected with awkward operations."""
    prt = batch["prt"]
    apid = abs(prt["id"])
    keep = prt["status"] > 0
    for nu in (12, 14, 16):
        keep = keep & (apid != nu)
    kept = prt[keep]
    p = kept["p"]
    return ak.zip({"px": p["px"], "py": p["py"], "pz": p["pz"], "E": p["e"],
                   "pid": kept["id"]}, with_name=None)


def ref_cluster(visible: Any, block: Any) -> tuple[Any, np.ndarray, np.ndarray]:
    """Jets sorted by energy, cut to ``n_jets`` and gathered with awkward operations."""
    import fastjet

    jetdef = fastjet.JetDefinition(fastjet.ee_genkt_algorithm, block.jet_r, block.jet_p)
    four = ak.zip({k: visible[k] for k in ("px", "py", "pz", "E")}, with_name=None)
    with src._silenced():
        cs = fastjet.ClusterSequence(four, jetdef)
        jets = cs.inclusive_jets()
        index = cs.constituent_index()
    order = ak.argsort(jets["E"], axis=1, ascending=False)
    jets, index = jets[order][:, :block.n_jets], index[order][:, :block.n_jets]
    ok = ak.to_numpy(ak.num(jets, axis=1)) >= block.n_jets
    jets, index, vis = jets[ok], index[ok], visible[ok]
    n_vis = ak.to_numpy(ak.num(vis, axis=1)).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(n_vis)[:-1]]).astype(np.int64)
    per_jet = ak.flatten(index, axis=1)
    sizes = ak.to_numpy(ak.num(per_jet, axis=1)).astype(np.int64)
    event_of_jet = np.repeat(np.arange(len(vis)), block.n_jets)
    flat_idx = ak.to_numpy(ak.flatten(per_jet, axis=None)).astype(np.int64) \
        + np.repeat(starts[event_of_jet], sizes)
    flat = {k: ak.to_numpy(ak.flatten(vis[k], axis=None)) for k in ("px", "py", "pz", "pid")}
    pt, eta, phi = src._kinematics(flat["px"][flat_idx], flat["py"][flat_idx],
                                   flat["pz"][flat_idx])
    pid = flat["pid"][flat_idx].astype(np.int32)
    owner = np.repeat(np.arange(len(sizes)), sizes)
    perm = np.lexsort((-pt, owner))
    record = {k: v[perm].astype(np.float32) for k, v in (("pt", pt), ("eta", eta),
                                                          ("phi", phi))}
    record["pid"] = pid[perm]
    constituents = ak.unflatten(ak.zip(record, depth_limit=1), sizes, axis=0)
    jflat = {k: ak.to_numpy(ak.flatten(jets[k], axis=None)).astype(np.float64)
             for k in ("px", "py", "pz", "E")}
    jpt, jeta, jphi = src._kinematics(jflat["px"], jflat["py"], jflat["pz"])
    return constituents, np.stack([jflat["E"], jpt, jeta, jphi], axis=1), ok


def ref_generate_block(block: Any) -> tuple[Any, np.ndarray, np.ndarray | None]:
    """One block as the source generated it before: a freshly constructed PYTHIA."""
    import pythia8mc

    with src._silenced():
        py = pythia8mc.Pythia("", False)
        for s in (*src._QUIET_SETTINGS, *block.settings, "Random:setSeed = on",
                  f"Random:seed = {block.seed}"):
            assert py.readString(s, False), s
        assert py.init()
    columns = src._variation_columns(py, len(block.variations)) if block.variations else []
    parts, jets, weights = [], [], []
    have = 0
    while have < block.n_events:
        need = block.n_events - have
        visible, event_w, got = [], [], 0
        while got < need:
            with src._silenced():
                batch = py.nextBatch(min(src._SUB_BATCH, need - got))
            visible.append(ref_visible(batch))
            if columns:
                event_w.append(np.asarray(ak.to_numpy(ak.to_regular(
                    batch["info"]["weights"], axis=1)), dtype=np.float64)[:, columns])
            got += len(batch)
        c, j, ok = ref_cluster(ak.concatenate(visible, axis=0), block)
        kept = min(int(ok.sum()), need)
        parts.append(c[: kept * block.n_jets])
        jets.append(j[: kept * block.n_jets])
        if columns:
            w = np.concatenate(event_w, axis=0)[ok][:kept]
            weights.append(np.repeat(w, block.n_jets, axis=0))
        have += kept
    return (ak.concatenate(parts, axis=0), np.concatenate(jets, axis=0),
            np.concatenate(weights, axis=0) if columns else None)


# ----------------------------------------------------------------------- the blocks

COMMON = (*src.PROCESS_SETTINGS, "Beams:eCM = 91.188")
GRID = ({"StringZ:aLund": 0.6}, {"StringZ:aLund": 0.8})


def make_block(index: int, *, n_events: int, extra: tuple[str, ...] = (), jet_r: float = 0.8,
               jet_p: float = -1.0, n_jets: int = 2, variations: tuple[dict[str, float], ...] = (),
               pid_encoding: str = "remap") -> Any:
    settings = (*COMMON, *extra)
    if variations:
        settings = (*settings, src._variation_setting(variations))
    return src._Block(index=index, n_events=n_events, settings=settings,
                      seed=src._block_seed(2024, index), jet_r=jet_r, jet_p=jet_p,
                      n_jets=n_jets, pid_encoding=pid_encoding, cache_path=None,
                      variations=variations)


BLOCKS = {
    # θ values and a variation grid (the weights path)
    "theta_and_variations": make_block(0, n_events=60, extra=("StringZ:aLund = 0.7",
                                                              "TimeShower:alphaSvalue = 0.13"),
                                       variations=GRID, pid_encoding="both"),
    # about half the events have fewer than 3 jets: discarded, and a second pass made
    "discards": make_block(1, n_events=40, jet_r=1.5, n_jets=3),
    # another jet definition (p = 0: Cambridge/Aachen-like ordering), the default θ
    "cambridge": make_block(2, n_events=50, jet_r=0.6, jet_p=0.0),
}


@pytest.fixture(scope="module")
def outputs() -> dict[str, tuple[Any, Any]]:
    """Each block by the source (in order, one process) and by the reference."""
    return {name: (src._make_block(block), ref_generate_block(block))
            for name, block in BLOCKS.items()}


@pytest.mark.parametrize("name", list(BLOCKS))
def test_constituents_jets_and_weights_are_identical(outputs: dict[str, Any], name: str
                                                     ) -> None:
    (index, particles, features, weights, hit), (ref_c, ref_j, ref_w) = outputs[name]
    block = BLOCKS[name]
    assert index == block.index and not hit
    assert len(particles) == block.n_events * block.n_jets == len(ref_c)
    np.testing.assert_array_equal(ak.num(particles, axis=1), ak.num(ref_c, axis=1))
    for field in ("pt", "eta", "phi", "pid"):
        got = ak.to_numpy(ak.flatten(particles[field]))
        want = ak.to_numpy(ak.flatten(ref_c[field]))
        assert got.dtype == want.dtype, field
        np.testing.assert_array_equal(got, want, err_msg=field)
    # the preprocessed fields follow from identical inputs: identical too
    pre = preprocess_jets(ref_c, jet_eta=ref_j[:, 2], jet_phi=ref_j[:, 3],
                          pid_encoding=block.pid_encoding)
    assert particles.fields == pre.fields
    for field in pre.fields:
        np.testing.assert_array_equal(ak.to_numpy(ak.flatten(particles[field])),
                                      ak.to_numpy(ak.flatten(pre[field])), err_msg=field)
    np.testing.assert_array_equal(features[:, :len(src.JET_NAMES)], ref_j)
    if block.variations:
        assert weights is not None and weights.shape == (len(particles), len(GRID))
        np.testing.assert_array_equal(weights, ref_w)
        assert not np.all(weights == 1.0)
    else:
        assert weights is None and ref_w is None


@pytest.mark.parametrize("name", list(BLOCKS))
def test_observables_match_the_per_jet_references(outputs: dict[str, Any], name: str) -> None:
    (_, particles, features, _, _), _ = outputs[name]
    want = ref_observables(particles)
    for k, key in enumerate(src.OBSERVABLE_NAMES):
        np.testing.assert_allclose(features[:, len(src.JET_NAMES) + k], want[key],
                                   rtol=RTOL, atol=ATOL, err_msg=key)


def test_copied_instances_start_as_a_fresh_construction() -> None:
    """What one instance reads stays in it: the template and later copies keep defaults."""
    first = src._new_pythia()
    with src._silenced():
        assert first.readString("StringZ:aLund = 0.9", False)
        assert first.readString("23:onMode = off", False)
    second = src._new_pythia()
    assert first.settings.parm("StringZ:aLund") == 0.9
    assert second.settings.parm("StringZ:aLund") == 0.68  # Monash
    entry = second.particleData.particleDataEntryPtr(23)
    assert all(entry.channel(i).onMode() == 1 for i in range(entry.sizeChannels()))
    assert second.settings.flag("Print:quiet")
