"""Delay distributions for the target's ``/delay`` endpoint.

A distribution is parsed once per request from the query parameters and then sampled
with the server's own ``random.Random``, so that a test can seed one server without
touching the process-wide generator.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

#: z such that P(Z <= z) = 0.99 for a standard normal Z; turns (median, p99) into sigma.
Z_99 = 2.3263478740408408

#: The largest delay parameter accepted, in ms. Sampled values may exceed it (a lognormal
#: tail is unbounded), but nobody means to hold a connection for more than ten minutes.
MAX_PARAM_MS = 600_000.0


class DelayParamError(ValueError):
    """A ``/delay`` query parameter is missing or invalid; ``param`` names it."""

    def __init__(self, param: str, message: str) -> None:
        self.param = param
        super().__init__(f"parameter {param!r}: {message}")


class Distribution(Protocol):
    """A source of delays in milliseconds."""

    @property
    def name(self) -> str: ...

    def sample(self, rng: random.Random) -> float: ...


@dataclass(frozen=True, slots=True)
class Fixed:
    ms: float

    @property
    def name(self) -> str:
        return "fixed"

    def sample(self, rng: random.Random) -> float:
        return self.ms


@dataclass(frozen=True, slots=True)
class Uniform:
    low: float
    high: float

    @property
    def name(self) -> str:
        return "uniform"

    def sample(self, rng: random.Random) -> float:
        return rng.uniform(self.low, self.high)


@dataclass(frozen=True, slots=True)
class LogNormal:
    """Lognormal given by its median and 99th percentile, the numbers people know."""

    median: float
    p99: float

    @property
    def mu(self) -> float:
        return math.log(self.median)

    @property
    def sigma(self) -> float:
        return (math.log(self.p99) - self.mu) / Z_99

    @property
    def name(self) -> str:
        return "lognormal"

    def sample(self, rng: random.Random) -> float:
        return rng.lognormvariate(self.mu, self.sigma)


@dataclass(frozen=True, slots=True)
class Bimodal:
    fast: float
    slow: float
    p_slow: float

    @property
    def name(self) -> str:
        return "bimodal"

    def sample(self, rng: random.Random) -> float:
        return self.slow if rng.random() < self.p_slow else self.fast


@dataclass(frozen=True, slots=True)
class Exponential:
    mean: float

    @property
    def name(self) -> str:
        return "exponential"

    def sample(self, rng: random.Random) -> float:
        return rng.expovariate(1.0 / self.mean)


def _number(
    params: Mapping[str, str],
    name: str,
    *,
    default: float | None = None,
    low: float = 0.0,
    high: float = MAX_PARAM_MS,
    low_open: bool = False,
) -> float:
    raw = params.get(name)
    if raw is None:
        if default is None:
            raise DelayParamError(name, "is required")
        return default
    try:
        value = float(raw)
    except ValueError:
        raise DelayParamError(name, f"{raw!r} is not a number") from None
    # float() accepts "nan" and "inf"; neither is a delay.
    if not math.isfinite(value):
        raise DelayParamError(name, f"{raw!r} is not a finite number")
    if value < low or (low_open and value == low) or value > high:
        bracket = "(" if low_open else "["
        raise DelayParamError(name, f"{raw!r} is outside {bracket}{low:g}, {high:g}]")
    return value


def parse_distribution(params: Mapping[str, str]) -> Distribution:
    """Build the distribution a ``/delay`` query asks for.

    Without ``dist`` the query is ``?ms=N``, a fixed delay. Unknown extra parameters are
    ignored so that clients may add cache-busters.
    """
    dist = params.get("dist", "fixed")
    if dist == "fixed":
        return Fixed(_number(params, "ms"))
    if dist == "uniform":
        low = _number(params, "min")
        high = _number(params, "max")
        if high < low:
            raise DelayParamError("max", f"{high:g} is below min {low:g}")
        return Uniform(low, high)
    if dist == "lognormal":
        median = _number(params, "median", low_open=True)
        p99 = _number(params, "p99", low_open=True)
        if p99 < median:
            raise DelayParamError("p99", f"{p99:g} is below median {median:g}")
        return LogNormal(median, p99)
    if dist == "bimodal":
        fast = _number(params, "fast")
        slow = _number(params, "slow")
        p_slow = _number(params, "p_slow", default=0.1, high=1.0)
        return Bimodal(fast, slow, p_slow)
    if dist == "exponential":
        return Exponential(_number(params, "mean", low_open=True))
    raise DelayParamError(
        "dist", f"{dist!r} is not one of fixed, uniform, lognormal, bimodal, exponential"
    )
