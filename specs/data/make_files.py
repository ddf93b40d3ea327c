"""Write the small event files that specs/files_gaussian.yaml reads (fixed seed).

    python specs/data/make_files.py      # rewrites specs/data/*.root and *.parquet

Each event has flat features x0 ~ N(mu, 1) and x1 ~ N(0, 1), 1 + Poisson(2) particles
with pt ~ Exp(1) + 0.5 and eta ~ N(mu, 1), and a weight w ~ U(0.5, 1.5) independent of
the event, so the weighted distributions are the unweighted ones. (Negative weights, as
at NLO, are read as they are, but the calibration does not take them yet: issue 19.)

- ``nominal.root``: 6000 events at mu = 0 (tree ``events``);
- ``varied_0.root``, ``varied_1.root``: 5000 events each, mu uniform in [-1, 1] per
  event, stored in the branch ``mu_gen``;
- ``data.parquet``: 2000 unweighted events at mu = 0.4 (no mu column).
"""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import uproot

HERE = Path(__file__).resolve().parent


def events(n: int, mu: np.ndarray, rng: np.random.Generator) -> dict[str, object]:
    """One file's branches (float32 to keep the files small)."""
    counts = 1 + rng.poisson(2.0, size=n)
    total = int(counts.sum())
    pt = rng.exponential(1.0, size=total) + 0.5
    eta = np.repeat(mu, counts) + rng.standard_normal(total)
    return {
        "x0": (mu + rng.standard_normal(n)).astype(np.float32),
        "x1": rng.standard_normal(n).astype(np.float32),
        "w": rng.uniform(0.5, 1.5, size=n).astype(np.float32),
        "part": ak.zip({"pt": ak.unflatten(pt.astype(np.float32), counts),
                        "eta": ak.unflatten(eta.astype(np.float32), counts)}),
    }


def write_root(path: Path, branches: dict[str, object]) -> None:
    with uproot.recreate(path) as f:
        f.mktree("events", {k: (v.type if isinstance(v, ak.Array) else v.dtype)  # type: ignore[attr-defined]
                            for k, v in branches.items()})
        f["events"].extend(branches)


def main() -> None:
    rng = np.random.default_rng(20240519)
    write_root(HERE / "nominal.root", events(6000, np.zeros(6000), rng))
    for k in range(2):
        mu = rng.uniform(-1.0, 1.0, size=5000)
        write_root(HERE / f"varied_{k}.root",
                   {**events(5000, mu, rng), "mu_gen": mu.astype(np.float32)})
    data = events(2000, np.full(2000, 0.4), rng)
    pq.write_table(pa.table({"x0": data["x0"], "x1": data["x1"]}), HERE / "data.parquet")


if __name__ == "__main__":
    main()
