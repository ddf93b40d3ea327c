"""Write the small event files that specs/files_gaussian.yaml reads (fixed seed).

    python specs/data/make_files.py      # rewrites specs/data/*.root and *.parquet

Each event has flat features x0 and x1, 1 + Poisson(2) particles with pt ~ Exp(1) + 0.5 and
eta ~ N(mu, 1), and a weight. The simulated files carry 10 % negative weights, as an NLO
generator's do, engineered so that the signed sum is exactly the wanted density in
expectation: 80 % of a file's events are drawn from p(x|mu) (x0 ~ N(mu, 1), x1 ~ N(0, 1))
with weights w ~ U(0.5, 1.5); the other 20 % come from a different density r(x|mu) (x0 ~
N(mu + 1, 0.7^2), x1 ~ N(0, 1)), half of them with w ~ U(0.5, 1.5) and half with
w ~ -U(0.5, 1.5), so that the r events cancel in every weighted sum and the signed
weights describe p(x|mu) alone (Kish effective size (sum w)^2 / sum w^2 ~ 0.59 of the
events). Rows are shuffled, so the negative weights are spread through each file.

- ``nominal.root``: 6000 events at mu = 0 (tree ``events``);
- ``varied_0.root``, ``varied_1.root``: 5000 events each, mu uniform in [-1, 1] per
  event, stored in the branch ``mu_gen``;
- ``data.parquet``: 2000 unweighted events from p(x|mu = 0.4) (no mu column).
"""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import uproot

HERE = Path(__file__).resolve().parent


def events(n: int, mu: np.ndarray, rng: np.random.Generator, *, negative: float = 0.1
           ) -> tuple[dict[str, object], np.ndarray]:
    """One file's branches (float32 to keep the files small) and the events' mu: a
    fraction 1 - 2·negative of the events from p(x|mu) and 2·negative from r(x|mu) with
    weights of either sign (module docstring), shuffled."""
    n_r = round(negative * n)  # events from r with each sign
    n_p = n - 2 * n_r
    x0 = np.r_[mu[:n_p] + rng.standard_normal(n_p),
               mu[n_p:] + 1.0 + 0.7 * rng.standard_normal(2 * n_r)]
    sign = np.r_[np.ones(n_p + n_r), -np.ones(n_r)]
    order = rng.permutation(n)
    mu = mu[order]
    counts = 1 + rng.poisson(2.0, size=n)
    total = int(counts.sum())
    pt = rng.exponential(1.0, size=total) + 0.5
    eta = np.repeat(mu, counts) + rng.standard_normal(total)
    return {
        "x0": x0[order].astype(np.float32),
        "x1": rng.standard_normal(n).astype(np.float32),
        "w": (sign[order] * rng.uniform(0.5, 1.5, size=n)).astype(np.float32),
        "part": ak.zip({"pt": ak.unflatten(pt.astype(np.float32), counts),
                        "eta": ak.unflatten(eta.astype(np.float32), counts)}),
    }, mu


def write_root(path: Path, branches: dict[str, object]) -> None:
    with uproot.recreate(path) as f:
        f.mktree("events", {k: (v.type if isinstance(v, ak.Array) else v.dtype)  # type: ignore[attr-defined]
                            for k, v in branches.items()})
        f["events"].extend(branches)


def main() -> None:
    rng = np.random.default_rng(20240519)
    nominal, _ = events(6000, np.zeros(6000), rng)
    write_root(HERE / "nominal.root", nominal)
    for k in range(2):
        varied, mu = events(5000, rng.uniform(-1.0, 1.0, size=5000), rng)
        write_root(HERE / f"varied_{k}.root", {**varied, "mu_gen": mu.astype(np.float32)})
    data, _ = events(2000, np.full(2000, 0.4), rng, negative=0.0)
    pq.write_table(pa.table({"x0": data["x0"], "x1": data["x1"]}), HERE / "data.parquet")


if __name__ == "__main__":
    main()
