"""``--fail-if`` conditions of ``cannonade compare``: parse ``QUANTITY[{filters}] ±N[UNIT]``
and decide whether run B regressed from run A by more than that.

Quantities, in the units a :class:`~cannonade.model.summary.Summary` uses::

    rps             requests per second              absolute bound: a plain number (or N/s)
    p50 p95 p99     http_req_duration, seconds       absolute bound: N us|µs|ms|s
    error_rate      http_req_failed, 0..1 fraction   absolute bound: a plain fraction
    iteration_rate  iterations per second, run-wide  absolute bound: a plain number (or N/s)

``+`` fails when B is more than the bound above A, ``-`` when it is more than the bound
below A; a bound ending in ``%`` is relative to A. ``{name:X}`` (and optionally
``method:M``) scopes a condition to one request name; values may be quoted to hold
``,`` or ``}``. Parsing raises :class:`FailIfError`, quoting the expression.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from cannonade.errors import ConfigError
from cannonade.model.quoted import read_braces, split_unquoted, unquote


class FailIfError(ConfigError):
    """A ``--fail-if`` expression is malformed; the message quotes it."""


class Unit(Enum):
    """How a quantity is measured, which decides the absolute units it accepts."""

    PER_SECOND = "per second"
    SECONDS = "duration"
    FRACTION = "fraction"


# Each quantity, its unit and whether it exists per request name.
QUANTITIES: dict[str, tuple[Unit, bool]] = {
    "rps": (Unit.PER_SECOND, True),
    "p50": (Unit.SECONDS, True),
    "p95": (Unit.SECONDS, True),
    "p99": (Unit.SECONDS, True),
    "error_rate": (Unit.FRACTION, True),
    "iteration_rate": (Unit.PER_SECOND, False),  # an iteration is not one request
}
_DURATION_UNITS = {"us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0}
_FILTERS = ("name", "method")

_HEAD_RE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*")
_BOUND_RE = re.compile(r"\s*([+-])\s*(\d+(?:\.\d*)?|\.\d+)\s*(%|/s|us|µs|μs|ms|s)?\s*")


@dataclass(frozen=True, slots=True)
class Condition:
    """One parsed ``--fail-if``. ``bound`` is in the quantity's unit (seconds, per
    second, fraction), or percent when ``relative``."""

    source: str
    quantity: str
    increase: bool  # True for '+': an increase is the regression
    bound: float
    relative: bool
    name: str | None = None
    method: str | None = None

    @property
    def scoped(self) -> bool:
        return self.name is not None

    def matches(self, name: str, method: str) -> bool:
        return name == self.name and (self.method is None or method == self.method)


@dataclass(frozen=True, slots=True)
class Verdict:
    passed: bool
    reason: str = ""  # why it failed without a comparison, or how a zero baseline was read


def _error(source: str, what: str) -> FailIfError:
    return FailIfError(f"--fail-if {source!r}: {what}")


def parse_condition(source: str) -> Condition:
    m = _HEAD_RE.match(source)
    if m is None:
        raise _error(source, "expected a quantity (" + ", ".join(QUANTITIES) + ")")
    quantity, pos = m.group(1), m.end()
    if quantity not in QUANTITIES:
        raise _error(source, f"unknown quantity {quantity!r} (one of {', '.join(QUANTITIES)})")
    unit, per_name = QUANTITIES[quantity]
    filters: dict[str, str] = {}
    if source.startswith("{", pos):
        body, pos = _read_braces(source, pos)
        filters = _parse_filters(source, body)
        if not per_name:
            raise _error(source, f"{quantity} is run-wide; it has no {{name:...}} scope")
    b = _BOUND_RE.fullmatch(source, pos)
    if b is None:
        rest = source[pos:].strip() or "nothing"
        raise _error(
            source, f"expected a signed bound such as '+10%', '+5ms' or '-0.5', found {rest!r}"
        )
    sign, number, suffix = b.group(1), float(b.group(2)), b.group(3) or ""
    return Condition(
        source=source,
        quantity=quantity,
        increase=sign == "+",
        bound=number if suffix == "%" else number * _scale(source, quantity, unit, suffix),
        relative=suffix == "%",
        name=filters.get("name"),
        method=filters.get("method"),
    )


def parse_conditions(sources: list[str]) -> list[Condition]:
    return [parse_condition(s) for s in sources]


def _scale(source: str, quantity: str, unit: Unit, suffix: str) -> float:
    """The factor from the written absolute bound to the quantity's own unit."""
    if unit is Unit.SECONDS:
        if not suffix:
            # A bare number could be ms (thresholds) or s (the summary): refuse to guess.
            raise _error(source, f"{quantity} needs a unit (us, ms or s) or '%'")
        if suffix not in _DURATION_UNITS:
            raise _error(source, f"{suffix!r} is not a duration unit (us, ms or s)")
        return _DURATION_UNITS[suffix]
    if unit is Unit.PER_SECOND and suffix in ("", "/s"):
        return 1.0
    if unit is Unit.FRACTION and not suffix:
        return 1.0
    raise _error(source, f"unit {suffix!r} does not apply to {quantity} ({unit.value})")


def _read_braces(source: str, start: int) -> tuple[str, int]:
    found = read_braces(source, start)
    if found is None:
        raise _error(source, "unclosed '{'")
    return found


def _parse_filters(source: str, body: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for part in split_unquoted(body):
        key, colon, value = part.partition(":")
        key, value = key.strip(), unquote(value)
        if not colon:
            raise _error(source, f"filter {part.strip()!r} has no ':' (expected name:VALUE)")
        if key not in _FILTERS:
            raise _error(source, f"unknown filter {key!r} (expected name or method)")
        if key in found:
            raise _error(source, f"filter {key!r} is given twice")
        if not value:
            raise _error(source, f"filter {key!r} has an empty value")
        found[key] = value
    if "name" not in found:
        raise _error(source, "a scope needs a name: {name:/login}")
    return found


def check(condition: Condition, a: float | None, b: float | None) -> Verdict:
    """Whether B stayed within the condition's bound of A."""
    if a is None or b is None:
        which = "A and B" if a is None and b is None else ("A" if a is None else "B")
        return Verdict(False, f"no value in run {which}")
    worse = b - a if condition.increase else a - b  # > 0: moved the way that regresses
    if not condition.relative:
        return Verdict(worse <= condition.bound)
    if a == 0:
        # No percentage of zero exists; any move the bad way from zero is more than
        # any percentage of it (0 errors to 5 is a regression), none at all is not.
        if worse > 0:
            return Verdict(False, "baseline is 0, so any change is more than any percentage")
        return Verdict(True)
    return Verdict(worse / abs(a) * 100.0 <= condition.bound)
