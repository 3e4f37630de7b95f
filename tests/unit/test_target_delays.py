"""The target's delay distributions: parsing, errors, and the shape of what they sample."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from cannonade.target.delays import (
    MAX_PARAM_MS,
    Z_99,
    Bimodal,
    DelayParamError,
    Exponential,
    Fixed,
    LogNormal,
    Uniform,
    parse_distribution,
)

N = 20_000


def _samples(params: dict[str, str], seed: int = 7) -> np.ndarray:
    dist = parse_distribution(params)
    rng = random.Random(seed)
    return np.array([dist.sample(rng) for _ in range(N)])


def test_z99_is_the_normal_99th_percentile() -> None:
    # Phi(z) = (1 + erf(z / sqrt 2)) / 2
    assert (1 + math.erf(Z_99 / math.sqrt(2))) / 2 == pytest.approx(0.99, abs=1e-12)


def test_plain_ms_is_a_fixed_delay() -> None:
    assert parse_distribution({"ms": "25"}) == Fixed(25.0)
    assert parse_distribution({"dist": "fixed", "ms": "0"}) == Fixed(0.0)
    assert Fixed(12.5).sample(random.Random()) == 12.5


def test_lognormal_median_and_p99_match_the_parameters() -> None:
    values = _samples({"dist": "lognormal", "median": "20", "p99": "200"})
    assert np.percentile(values, 50) == pytest.approx(20, rel=0.03)
    assert np.percentile(values, 99) == pytest.approx(200, rel=0.06)
    assert values.min() > 0


def test_lognormal_mu_and_sigma_follow_the_documented_formula() -> None:
    dist = LogNormal(median=20, p99=200)
    assert dist.mu == pytest.approx(math.log(20))
    assert dist.sigma == pytest.approx((math.log(200) - math.log(20)) / 2.3263478740408408)


def test_lognormal_with_equal_median_and_p99_is_constant() -> None:
    values = _samples({"dist": "lognormal", "median": "15", "p99": "15"})
    assert values == pytest.approx(np.full(N, 15.0))


def test_uniform_stays_in_bounds_and_spreads_evenly() -> None:
    values = _samples({"dist": "uniform", "min": "5", "max": "15"})
    assert values.min() >= 5
    assert values.max() <= 15
    assert values.mean() == pytest.approx(10, rel=0.02)
    assert np.percentile(values, 25) == pytest.approx(7.5, rel=0.03)


def test_bimodal_picks_slow_with_the_given_probability() -> None:
    values = _samples({"dist": "bimodal", "fast": "10", "slow": "200", "p_slow": "0.1"})
    assert set(np.unique(values)) == {10.0, 200.0}
    assert (values == 200).mean() == pytest.approx(0.1, abs=0.01)


def test_bimodal_p_slow_defaults_to_a_tenth() -> None:
    assert parse_distribution({"dist": "bimodal", "fast": "1", "slow": "2"}) == Bimodal(1, 2, 0.1)


def test_exponential_has_the_given_mean() -> None:
    values = _samples({"dist": "exponential", "mean": "30"})
    assert values.mean() == pytest.approx(30, rel=0.03)
    # The median of an exponential is mean * ln 2.
    assert np.median(values) == pytest.approx(30 * math.log(2), rel=0.04)


def test_same_seed_same_samples() -> None:
    a = _samples({"dist": "exponential", "mean": "5"}, seed=1)
    b = _samples({"dist": "exponential", "mean": "5"}, seed=1)
    assert (a == b).all()


def test_names() -> None:
    assert [d.name for d in (Fixed(1), Uniform(1, 2), LogNormal(1, 2), Bimodal(1, 2, 0.5))] == [
        "fixed",
        "uniform",
        "lognormal",
        "bimodal",
    ]
    assert Exponential(1).name == "exponential"


def test_extra_parameters_are_ignored() -> None:
    assert parse_distribution({"ms": "3", "cachebuster": "x"}) == Fixed(3.0)


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({}, "ms"),
        ({"ms": "abc"}, "ms"),
        ({"ms": "-1"}, "ms"),
        ({"ms": "nan"}, "ms"),
        ({"ms": "inf"}, "ms"),
        ({"ms": str(MAX_PARAM_MS + 1)}, "ms"),
        ({"dist": "gaussian", "ms": "1"}, "dist"),
        ({"dist": "uniform", "max": "3"}, "min"),
        ({"dist": "uniform", "min": "5", "max": "3"}, "max"),
        ({"dist": "lognormal", "median": "0", "p99": "10"}, "median"),
        ({"dist": "lognormal", "median": "20"}, "p99"),
        ({"dist": "lognormal", "median": "20", "p99": "10"}, "p99"),
        ({"dist": "bimodal", "slow": "10"}, "fast"),
        ({"dist": "bimodal", "fast": "1", "slow": "10", "p_slow": "1.5"}, "p_slow"),
        ({"dist": "exponential", "mean": "0"}, "mean"),
    ],
)
def test_bad_parameters_name_the_parameter(params: dict[str, str], param: str) -> None:
    with pytest.raises(DelayParamError) as excinfo:
        parse_distribution(params)
    assert excinfo.value.param == param
    assert repr(param) in str(excinfo.value)
