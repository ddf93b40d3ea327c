"""Pseudo-experiments of an unbinned model and its toy-based CLs
(ratiofit.inference.unbinned_toys), and ``hypotest: {calctype: toybased}`` for the
unbinned backend. Analytic reweighters only (no training)."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from ratiofit.events import EventSet
from ratiofit.execution import LocalExecutor, ProcessExecutor
from ratiofit.inference import InferenceError, StandardModifier
from ratiofit.inference import unbinned_toys as toys
from ratiofit.inference.unbinned_analysis import hypotest_model
from ratiofit.inference.unbinned_model import (
    UnbinnedChannel,
    UnbinnedComponent,
    UnbinnedModel,
    UnbinnedNuisance,
)
from ratiofit.inference.unbinned_toys import ToyCLsResult, hypotest_toys, sample_toy
from ratiofit.testing import analytic_gaussian_reweighter


@pytest.fixture(autouse=True)
def _quiet_jobs():
    # the executor logs one line per job; hundreds of chunks would flood the output
    logging.disable(logging.INFO)
    yield
    logging.disable(logging.NOTSET)


@pytest.fixture(scope="module")
def reweighter():
    return analytic_gaussian_reweighter()


def _events(x: np.ndarray, w: np.ndarray | None = None) -> EventSet:
    return EventSet(features=np.asarray(x, dtype=np.float64)[:, None], feature_names=("x0",),
                    weights=w)


def _gauss_log_ratio(mean: float, width: float):
    def log_ratio(e: EventSet) -> np.ndarray:  # N(mean, width) over N(0, 1), exactly
        x = e.features[:, 0]
        return -math.log(width) - 0.5 * ((x - mean) / width) ** 2 + 0.5 * x * x
    return log_ratio


def _model(reweighter, *, data: EventSet, bkg: EventSet, sig: EventSet, signal=(1.5, 0.5),
           b: float = 1000.0, s: float = 30.0, shape: bool = False) -> UnbinnedModel:
    ch = UnbinnedChannel(name="SR", data=data, nuisances=("mean",) if shape else (),
                         components=(
        UnbinnedComponent(name="bkg", events=bkg, yield_=b, modifiers=(
            StandardModifier("normsys", "xsec", {"lo": 0.95, "hi": 1.05}),
            StandardModifier("lumi", "lumi", {"sigma": 0.02}))),
        UnbinnedComponent(name="sig", events=sig, yield_=s, log_ratio=_gauss_log_ratio(*signal),
                          poi="mu", modifiers=(StandardModifier("lumi", "lumi",
                                                                {"sigma": 0.02}),))))
    nus = [UnbinnedNuisance("mean", "mu", 0.0, 0.5)] if shape else []
    return UnbinnedModel(channels=[ch], reweighter=reweighter, nuisances=nus, pois=["mu"])


@pytest.fixture(scope="module")
def simulation():
    rng = np.random.default_rng(1)
    return _events(rng.normal(0, 1, 20000)), _events(rng.normal(1.5, 0.5, 10000))


@pytest.fixture(scope="module")
def counting(reweighter, simulation):
    """1000 background events (no signal in the data), no shape nuisance: fast toy fits."""
    rng = np.random.default_rng(5)
    data = _events(rng.normal(0.0, 1.0, rng.poisson(1000)))
    return _model(reweighter, data=data, bkg=simulation[0], sig=simulation[1])


def test_toys_follow_the_expected_yields_and_the_reweighted_density(reweighter):
    # the background simulation is weighted (drawn from N(0, 1.5²), weights N(0,1)/N(0,1.5²)):
    # toys must draw ∝ w0·w(x, θ), here at θ = 0 + 0.5·α = 0.5 (α = 1); the signal sits at
    # x ≈ 4 and its events are told apart from the background's by their exact values
    rng = np.random.default_rng(11)
    xb = rng.normal(0.0, 1.5, 40000)
    w0 = 1.5 * np.exp(-0.5 * xb ** 2 + 0.5 * (xb / 1.5) ** 2)
    xs = rng.normal(4.0, 0.3, 5000)
    model = _model(reweighter, data=_events(xb[:100]), bkg=_events(xb, w0), sig=_events(xs),
                   signal=(4.0, 0.3), b=800.0, s=50.0, shape=True)
    values = {"mu": 2.0, "mean": 1.0, "xsec": 0.5, "lumi": 1.01}
    nu = model.expected_yields(values)["SR"]
    draws = [sample_toy(model, values, np.random.default_rng(i)) for i in range(400)]
    k = len(draws)
    is_sig = [np.isin(d["SR"].features[:, 0], xs) for d, _ in draws]
    n_sig = np.array([s.sum() for s in is_sig])
    n_bkg = np.array([len(s) - s.sum() for s in is_sig])
    for d, _ in draws:
        assert np.all(d["SR"].event_weights == 1.0)
    # the mean count of K Poisson(ν) draws has standard error √(ν/K); 4 of them (a fixed
    # seed; a 4σ miss has probability 6e-5)
    assert abs(n_bkg.mean() - nu["bkg"]) < 4 * math.sqrt(nu["bkg"] / k)
    assert abs(n_sig.mean() - nu["sig"]) < 4 * math.sqrt(nu["sig"] / k)
    # the background events are i.i.d. draws from the reweighted simulation: their mean is
    # its weighted mean within 4 standard errors sd/√(Σn) (and that is ≈ 0.5, the
    # reweighted density's mean, up to the simulation's own error)
    lw = np.asarray(reweighter.log_ratio(features=_events(xb), theta=model.theta(values)))
    p = w0 * np.exp(lw - lw.max())
    mean = float(np.sum(p * xb) / p.sum())
    sd = math.sqrt(float(np.sum(p * (xb - mean) ** 2) / p.sum()))
    xs_bkg = np.concatenate([d["SR"].features[~s, 0] for (d, _), s in zip(draws, is_sig,
                                                                          strict=True)])
    assert abs(xs_bkg.mean() - mean) < 4 * sd / math.sqrt(len(xs_bkg))
    assert mean == pytest.approx(0.5, abs=0.05)
    # auxiliary data: each centre ~ N(value, σ): the mean of K within 4σ/√K
    for name, sigma in (("mean", 1.0), ("xsec", 1.0), ("lumi", 0.02)):
        centres = np.array([c[name] for _, c in draws])
        assert abs(centres.mean() - values[name]) < 4 * sigma / math.sqrt(k), name


def test_negative_weights_are_refused_in_one_line(reweighter, simulation):
    bkg = _events(simulation[0].features[:, 0], np.where(np.arange(20000) == 7, -1.0, 1.0))
    model = _model(reweighter, data=_events(np.zeros(10)), bkg=bkg, sig=simulation[1])
    with pytest.raises(InferenceError, match="non-negative event weights") as info:
        sample_toy(model, {}, np.random.default_rng(0))
    assert "\n" not in str(info.value)


def test_the_same_seed_gives_the_same_cls_whatever_the_chunking(counting, caplog):
    first = hypotest_toys(counting, poi_value=0.6, ntoys=20, seed=4, chunk_size=20)
    assert isinstance(first, ToyCLsResult) and first.calctype == "toybased"
    assert first.ntoys == 20 and first.failed_toys == (0, 0)
    assert hypotest_toys(counting, poi_value=0.6, ntoys=20, seed=4, chunk_size=7,
                         executor=LocalExecutor()) == first
    assert hypotest_toys(counting, poi_value=0.6, ntoys=20, seed=4, chunk_size=1) == first
    # an executor in other processes cannot ship a Keras reweighter: the toys run here,
    # the same toys, and the log says so
    with caplog.at_level(logging.WARNING, logger="ratiofit"):
        assert hypotest_toys(counting, poi_value=0.6, ntoys=20, seed=4, chunk_size=10,
                             executor=ProcessExecutor(workers=1)) == first
    assert "cannot ship the unbinned model" in caplog.text
    other = hypotest_toys(counting, poi_value=0.6, ntoys=20, seed=5, chunk_size=20)
    assert other.cls_expected != first.cls_expected  # another seed, other toys


def test_toys_with_a_shape_nuisance_do_not_depend_on_the_chunking(reweighter, simulation):
    # a profiled reweighter nuisance: every toy fit evaluates the reweighter (~0.5 s a toy)
    rng = np.random.default_rng(6)
    model = _model(reweighter, data=_events(rng.normal(0.1, 1.0, rng.poisson(1000))),
                   bkg=simulation[0], sig=simulation[1], shape=True)
    one = hypotest_toys(model, poi_value=1.0, ntoys=3, seed=2, chunk_size=3)
    assert one.failed_toys == (0, 0) and 0 <= one.cls_observed <= 1
    assert hypotest_toys(model, poi_value=1.0, ntoys=3, seed=2, chunk_size=2) == one


def test_toy_cls_agrees_with_the_asymptotic_cls(counting):
    """~1000 events and 30 signal events at μ = 1: the asymptotic formulae hold, so the toys'
    fractions must agree with them within the toys' binomial errors."""
    n = 200  # per hypothesis: ~13 s on a busy 2-core machine
    asym = hypotest_model(counting, poi_value=0.6)
    toy = hypotest_model(counting, poi_value=0.6, calctype="toybased", ntoys=n, seed=1)
    assert toy.calctype == "toybased" and toy.ntoys == n and toy.failed_toys == (0, 0)
    assert asym.clsb > 0.1 and asym.clb > 0.1  # where n toys resolve both tails
    # CL_{s+b} and CL_b are fractions of n independent toys: binomial standard errors
    # √(p(1−p)/n) at the asymptotic p; CLs = CL_{s+b}/CL_b from two independent toy sets,
    # so its relative variance is the sum of the two fractions' (1−p)/(np); 3σ each (a
    # fixed seed). Here p ≈ 0.34 and 0.78: relative errors of 10 %, 2.6 % and 10 % for
    # CL_{s+b}, CL_b and CLs; the asymptotic formulae's own error at 10³ events is taken
    # as small against them (two data sets × two toy seeds of this kind, 300 toys each,
    # gave pulls below 2.4σ)
    s_sb = math.sqrt(asym.clsb * (1 - asym.clsb) / n)
    s_b = math.sqrt(asym.clb * (1 - asym.clb) / n)
    s_cls = asym.cls_observed * math.sqrt((1 - asym.clsb) / (n * asym.clsb)
                                          + (1 - asym.clb) / (n * asym.clb))
    assert toy.clsb == pytest.approx(asym.clsb, abs=3 * s_sb)
    assert toy.clb == pytest.approx(asym.clb, abs=3 * s_b)
    assert toy.cls_observed == pytest.approx(asym.cls_observed, abs=3 * s_cls)
    assert toy.cls_observed == pytest.approx(toy.clsb / toy.clb)
    band = list(toy.cls_expected)
    assert band == sorted(band) and 0 <= band[0] and band[-1] <= 1


def test_failed_toys_are_counted_and_more_than_one_percent_refused(counting, monkeypatch):
    # the toys' fits replaced by a stand-in whose first ``failing`` calls fail
    calls: list[int] = []

    def stand_in(model, data, centres, start, poi_value):
        calls.append(1)
        if len(calls) <= failing:
            return math.nan, "stand-in failure"
        return float(len(data["SR"]) % 7), None

    monkeypatch.setattr(toys, "_toy_qmu", stand_in)
    # 2 × 100 toys: 2 failures (1 %) are counted and left out, 3 refused
    failing = 2
    counted = hypotest_toys(counting, poi_value=0.6, ntoys=100, seed=3, chunk_size=50)
    assert counted.failed_toys == (2, 0)
    calls.clear()
    failing = 3
    with pytest.raises(InferenceError, match=r"3 of 100 s\+b and 0 of 100 b toys failed "
                                             r"\(more than 1%\); first: toy 0: stand-in") as info:
        hypotest_toys(counting, poi_value=0.6, ntoys=100, seed=3, chunk_size=50)
    assert "\n" not in str(info.value)


def test_the_unbinned_spec_accepts_toybased_cls():
    from ratiofit.errors import SpecError
    from ratiofit.spec import load_spec_text

    text = """\
seed: 7
parameters:
  mu: {nominal: 0.0, range: [-1.0, 1.0]}
samples:
  nominal: {source: gaussian, n_events: 4000, options: {mean: mu}}
  varied: {source: gaussian, n_events: 4000, theta: {mu: uniform}, options: {mean: mu}}
  signal: {source: gaussian, n_events: 2000, options: {mean: 2.0, width: 0.3}}
  data: {source: gaussian, n_events: 2000, theta: {mu: 0.1}, options: {mean: mu}}
reweighter:
  architecture: mlp
  reference: nominal
  target: varied
  training: {epochs: 1, batch_size: 512, checkpoint: false}
uncertainty: {replicas: 0, correction: none}
inference:
  backend: unbinned
  poi: mu_sig
  data: data
  hypotest: {poi_value: 2.0, calctype: toybased}
  samples:
    sig: {sample: signal, yield: 30, signal: true}
    bkg: {sample: nominal, yield: 2000, nuisances: [shape]}
  nuisances:
    shape: {reweighter: this, parameter: mu, nominal: 0.0, sigma: 0.1}
"""
    spec = load_spec_text(text, path="u.yaml")
    assert spec.inference is not None and spec.inference.backend == "unbinned"
    assert spec.inference.hypotest_calctype == "toybased"
    # the other checks of the hypothesis test stay
    with pytest.raises(SpecError, match="expected 'asymptotics' or 'toybased', got 'toys'"):
        load_spec_text(text.replace("calctype: toybased", "calctype: toys"), path="u.yaml")
