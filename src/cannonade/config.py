"""Typed, frozen run configuration, parsed once from the command line or a file.

Every parser raises :class:`ConfigError` naming the option and the bad value, so the
user learns what to fix before any load starts.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from cannonade.errors import ConfigError

MAX_USERS = 10_000_000  # beyond this a typo, not a plan: it would exhaust memory

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|s|m|h)")
_UNIT_SECONDS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str, option: str = "duration") -> float:
    """``"30s"``, ``"1m30s"``, ``"250ms"``, ``"2h"`` or a bare number of seconds."""
    s = str(text).strip()
    try:
        value = float(s)
    except ValueError:
        pos = 0
        value = 0.0
        for m in _DURATION_PART.finditer(s):
            if m.start() != pos:
                break
            value += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
            pos = m.end()
        if pos != len(s) or not s:
            raise ConfigError(
                f"{option}: {text!r} is not a duration (examples: 30s, 1m30s, 250ms, 2h)"
            ) from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{option}: {text!r} must be a finite, non-negative duration")
    return value


def parse_users(text: str, option: str = "--users") -> tuple[int, ...]:
    """loads-style user cycles: ``"10:50:100"`` runs 10, then 50, then 100 users."""
    parts = str(text).split(":")
    try:
        users = tuple(int(p) for p in parts)
    except ValueError:
        raise ConfigError(
            f"{option}: {text!r} must be user counts separated by ':' (e.g. 10:50:100)"
        ) from None
    if not users or any(u < 1 for u in users):
        raise ConfigError(f"{option}: {text!r}: every cycle needs at least one user")
    if any(u > MAX_USERS for u in users):
        raise ConfigError(f"{option}: {text!r}: at most {MAX_USERS:,} users a cycle")
    return users


def parse_rate(text: str, option: str = "--rate") -> float:
    """Iterations per second: ``"500/s"``, ``"30/m"``, ``"2/h"`` or a bare number (per s)."""
    s = str(text).strip()
    num, _, unit = s.partition("/")
    per = {"": 1.0, "s": 1.0, "1s": 1.0, "m": 60.0, "1m": 60.0, "h": 3600.0, "1h": 3600.0}
    try:
        value = float(num)
        seconds = per[unit.strip()]
    except (ValueError, KeyError):
        raise ConfigError(f"{option}: {text!r} is not a rate (examples: 500/s, 30/m)") from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{option}: {text!r} must be a non-negative rate")
    return value / seconds


@dataclass(frozen=True, slots=True)
class Stage:
    """Ramp linearly to ``target`` (VUs, or iterations/s) over ``duration`` seconds."""

    duration: float
    target: float


def parse_stages(text: str, option: str = "--stages", rate: bool = False) -> tuple[Stage, ...]:
    """``"30s:100,1m:100,10s:0"``; with ``rate`` targets are rates (``"30s:200/s"``)."""
    stages: list[Stage] = []
    for i, item in enumerate(str(text).split(",")):
        dur, sep, target = item.strip().partition(":")
        if not sep:
            raise ConfigError(f"{option}: stage {i + 1} {item!r} must be DURATION:TARGET")
        d = parse_duration(dur, f"{option} stage {i + 1}")
        if rate:
            t = parse_rate(target, f"{option} stage {i + 1}")
        else:
            try:
                t = float(int(target))
            except ValueError:
                raise ConfigError(
                    f"{option}: stage {i + 1} target {target!r} must be a whole number of VUs"
                ) from None
            if t < 0:
                raise ConfigError(f"{option}: stage {i + 1} target must be >= 0")
        stages.append(Stage(d, t))
    return tuple(stages)


@dataclass(frozen=True, slots=True)
class Partition:
    """This engine's share of a run: it is partition ``index`` of ``count``.

    Work is split by global ids (VU numbers, arrival indices), never by local
    counts, so the union of all partitions is exactly what the user asked for.
    """

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(f"partition {self.index} of {self.count} is impossible")

    def owns(self, global_id: int) -> bool:
        return global_id % self.count == self.index

    def share(self, total: int) -> int:
        """How many of ``total`` items (numbered 0..total-1) this partition owns."""
        return total // self.count + (1 if self.index < total % self.count else 0)


# -- load models ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cycles:
    """Closed model, loads/OCT style: user cycles run one after another."""

    users: tuple[int, ...] = (1,)
    duration: float | None = None
    hits: int | None = None
    rampup: float = 0.0


@dataclass(frozen=True, slots=True)
class RampingVus:
    """Closed model, k6 ramping-vus."""

    stages: tuple[Stage, ...]
    start_vus: int = 0


@dataclass(frozen=True, slots=True)
class SharedIterations:
    """Closed model: ``iterations`` in total, shared by ``vus`` VUs."""

    vus: int
    iterations: int


@dataclass(frozen=True, slots=True)
class ArrivalRate:
    """Open model: iterations start at a rate that does not wait for responses."""

    rate: float  # start rate, iterations per second
    stages: tuple[Stage, ...] = ()  # rate stages; empty = constant for ``duration``
    duration: float = 0.0
    pre_allocated_vus: int = 0
    max_vus: int = 0  # 0: derived from the rate


LoadModel = Cycles | RampingVus | SharedIterations | ArrivalRate


@dataclass(frozen=True, slots=True)
class Lane:
    """One of several scenarios that run side by side, each with its own load model (a
    YAML plan's ``scenarios``): it runs the scenario function called ``name``."""

    name: str
    model: LoadModel
    start_time: float = 0.0
    graceful_stop: float = 30.0


def model_duration(model: LoadModel) -> float | None:
    """Planned duration in seconds, or None when the model is bounded by a count."""
    if isinstance(model, Cycles):
        if model.duration is None:
            return None
        return model.duration * len(model.users)
    if isinstance(model, RampingVus):
        return sum(s.duration for s in model.stages)
    if isinstance(model, ArrivalRate):
        return sum(s.duration for s in model.stages) if model.stages else model.duration
    return None


def options_duration(options: EngineOptions) -> float | None:
    """Planned duration of a run's load: of its model, or of its longest lane."""
    if not options.lanes:
        return model_duration(options.model)
    ends = []
    for lane in options.lanes:
        d = model_duration(lane.model)
        if d is None:
            return None
        ends.append(lane.start_time + d)
    return max(ends)


@dataclass(frozen=True, slots=True)
class HttpOptions:
    base_url: str | None = None
    timeout: float = 60.0
    connect_timeout: float = 10.0
    follow_redirects: bool = False
    verify_tls: bool = True
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class EngineOptions:
    model: LoadModel = field(default_factory=Cycles)
    http: HttpOptions = field(default_factory=HttpOptions)
    graceful_stop: float = 30.0
    max_duration: float = 600.0  # bounds count-driven models (hits, iterations)
    seed: int | None = None
    lanes: tuple[Lane, ...] = ()  # several scenarios at once; then ``model`` is unused
