"""Decorators that mark a scenario module's functions.

They only tag the function (no registry anywhere): the loader finds tagged functions in
the module it imported. Each decorator checks the function's shape when the module is
imported, so a wrong signature fails with file:line before any load starts.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from cannonade.errors import ScenarioError

F = TypeVar("F", bound=Callable[..., Any])

ATTR = "__cannonade__"


class Role(enum.Enum):
    SCENARIO = "scenario"
    SETUP = "setup"
    TEARDOWN = "teardown"
    VU_SETUP = "vu_setup"
    VU_TEARDOWN = "vu_teardown"


@dataclass(frozen=True, slots=True)
class Mark:
    role: Role
    weight: float = 1.0
    name: str = ""


# (role, required positional parameters, the shape shown in the error)
_SHAPES: dict[Role, tuple[int, str]] = {
    Role.SCENARIO: (1, "async def {name}(vu)"),
    Role.VU_SETUP: (1, "async def {name}(vu)"),
    Role.VU_TEARDOWN: (1, "async def {name}(vu)"),
    Role.SETUP: (1, "async def {name}(vu)"),
    Role.TEARDOWN: (2, "async def {name}(vu, data)"),
}


def where(fn: Callable[..., Any]) -> str:
    code = getattr(fn, "__code__", None)
    if code is None:
        return "<unknown>"
    return f"{code.co_filename}:{code.co_firstlineno}"


def _check(fn: Callable[..., Any], role: Role) -> None:
    arity, shape = _SHAPES[role]
    name = getattr(fn, "__name__", "?")
    expected = shape.format(name=name)
    if not callable(fn):
        raise ScenarioError(f"@{role.value} must decorate a function, not {fn!r}")
    if not inspect.iscoroutinefunction(fn):
        raise ScenarioError(
            f"@{role.value} function {name!r} must be a coroutine: `{expected}`", where(fn)
        )
    params = list(inspect.signature(fn).parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [
        p
        for p in params
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    takes_varargs = any(p.kind is p.VAR_POSITIONAL for p in params)
    # setup/teardown may ignore what they are given; scenarios must take the VU.
    min_args = arity if role in (Role.SCENARIO, Role.VU_SETUP, Role.VU_TEARDOWN) else 0
    if len(required) > arity or (len(positional) < min_args and not takes_varargs):
        raise ScenarioError(
            f"@{role.value} function {name!r} has the wrong signature "
            f"{inspect.signature(fn)}: expected `{expected}`",
            where(fn),
        )


def _mark(fn: F, mark: Mark) -> F:
    _check(fn, mark.role)
    setattr(fn, ATTR, mark)
    return fn


@overload
def scenario(fn: F, /) -> F: ...
@overload
def scenario(*, weight: float = 1.0, name: str | None = None) -> Callable[[F], F]: ...


def scenario(
    fn: F | None = None, /, *, weight: float = 1.0, name: str | None = None
) -> F | Callable[[F], F]:
    """Mark ``async def f(vu)`` as a scenario; VUs pick scenarios by ``weight``."""
    if not isinstance(weight, int | float) or isinstance(weight, bool) or not weight > 0:
        raise ScenarioError(f"@scenario(weight={weight!r}): weight must be a number > 0")

    def wrap(f: F) -> F:
        return _mark(f, Mark(Role.SCENARIO, float(weight), name or f.__name__))

    return wrap(fn) if fn is not None else wrap


def setup(fn: F) -> F:
    """Runs once per run before any VU starts; its return value is ``vu.setup_data``."""
    return _mark(fn, Mark(Role.SETUP, name=fn.__name__))


def teardown(fn: F) -> F:
    """Runs once per run after the load, with the setup data."""
    return _mark(fn, Mark(Role.TEARDOWN, name=fn.__name__))


def vu_setup(fn: F) -> F:
    """Runs once per VU before its first iteration."""
    return _mark(fn, Mark(Role.VU_SETUP, name=fn.__name__))


def vu_teardown(fn: F) -> F:
    """Runs once per VU when it is retired (not when it is cancelled)."""
    return _mark(fn, Mark(Role.VU_TEARDOWN, name=fn.__name__))
