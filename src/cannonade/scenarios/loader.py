"""Load a Python scenario module and find its marked functions.

Every way a scenario file can be wrong ends in one :class:`ScenarioError` carrying
``file:line`` and the reason; nothing of the import's traceback noise reaches the user.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
import traceback
import types
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cannonade.errors import ScenarioError
from cannonade.scenarios.api import ATTR, Mark, Role
from cannonade.scenarios.bundle import Bundle

AsyncFn = Callable[..., Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class ScenarioFn:
    name: str
    fn: AsyncFn
    weight: float


@dataclass(frozen=True, slots=True)
class LoadedScenario:
    path: str
    sha256: str
    scenarios: tuple[ScenarioFn, ...]
    setup: AsyncFn | None = None
    teardown: AsyncFn | None = None
    vu_setup: AsyncFn | None = None
    vu_teardown: AsyncFn | None = None
    thresholds: tuple[str, ...] = ()


def load_path(path: str | Path) -> LoadedScenario:
    """Import a scenario file in place (so error locations are the user's own file)."""
    p = Path(path).resolve()
    bundle = Bundle.from_path(path)
    return _load(p, bundle.sha256, display=str(path))


def load_bundle(bundle: Bundle, workdir: Path | None = None) -> LoadedScenario:
    """Write a received bundle to a private directory and import it from there."""
    bundle.verify()
    if not bundle.filename.endswith(".py") or "/" in bundle.filename:
        raise ScenarioError(f"bundle {bundle.filename!r} is not a Python scenario file")
    base = workdir or Path(tempfile.mkdtemp(prefix="cannonade-bundle-"))
    target = base / bundle.filename
    target.write_bytes(bundle.data)
    return _load(target, bundle.sha256, display=bundle.filename)


def _load(path: Path, sha256: str, display: str) -> LoadedScenario:
    if path.suffix != ".py":
        raise ScenarioError("a Python scenario must be a .py file", display)
    module_name = f"cannonade_scenario_{sha256[:12]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ScenarioError("cannot be imported as a Python module", display)
    module = importlib.util.module_from_spec(spec)
    # Helpers beside the scenario file must be importable, as with `python file.py`.
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except ScenarioError:
        sys.modules.pop(module_name, None)
        raise
    except SyntaxError as e:
        sys.modules.pop(module_name, None)
        line = (e.text or "").strip()
        detail = f": {line}" if line else ""
        raise ScenarioError(
            f"SyntaxError: {e.msg}{detail}", f"{_show(e.filename, path, display)}:{e.lineno}"
        ) from None
    except (KeyboardInterrupt, GeneratorExit):
        raise
    except BaseException as e:  # SystemExit too: a scenario must not end the engine
        sys.modules.pop(module_name, None)
        raise ScenarioError(
            f"{type(e).__name__} while importing: {e}", _blame(e, path, display)
        ) from None
    return _collect(module, path, sha256, display)


def _show(filename: str | None, path: Path, display: str) -> str:
    if filename is None or Path(filename).resolve() == path.resolve():
        return display
    return filename


def _blame(exc: BaseException, path: Path, display: str) -> str:
    """The deepest line of the scenario file in the traceback, else its last frame."""
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if Path(f.filename).resolve() == path.resolve()]
    if mine:
        return f"{display}:{mine[-1].lineno}"
    if frames:
        return f"{frames[-1].filename}:{frames[-1].lineno}"
    return display


def _collect(module: types.ModuleType, path: Path, sha256: str, display: str) -> LoadedScenario:
    found: dict[Role, list[tuple[Mark, AsyncFn]]] = {role: [] for role in Role}
    for value in vars(module).values():
        mark = getattr(value, ATTR, None)
        if isinstance(mark, Mark) and getattr(value, "__module__", None) == module.__name__:
            found[mark.role].append((mark, value))
    for role in (Role.SETUP, Role.TEARDOWN, Role.VU_SETUP, Role.VU_TEARDOWN):
        if len(found[role]) > 1:
            names = ", ".join(f.__name__ for _, f in found[role])
            raise ScenarioError(f"more than one @{role.value} function: {names}", display)
    if not found[Role.SCENARIO]:
        raise ScenarioError(
            "no scenario found: decorate `async def f(vu)` with @cannonade.scenario", display
        )
    scenarios = tuple(
        sorted(
            (ScenarioFn(m.name, fn, m.weight) for m, fn in found[Role.SCENARIO]),
            key=lambda s: s.fn.__code__.co_firstlineno,
        )
    )

    def one(role: Role) -> AsyncFn | None:
        return found[role][0][1] if found[role] else None

    return LoadedScenario(
        path=display,
        sha256=sha256,
        scenarios=scenarios,
        setup=one(Role.SETUP),
        teardown=one(Role.TEARDOWN),
        vu_setup=one(Role.VU_SETUP),
        vu_teardown=one(Role.VU_TEARDOWN),
        thresholds=_thresholds(getattr(module, "thresholds", None), display),
    )


def _thresholds(value: object, display: str) -> tuple[str, ...]:
    """``thresholds = {"http_req_duration": ["p(95)<200"]}`` or a list of full expressions."""
    if value is None:
        return ()
    out: list[str] = []
    if isinstance(value, Mapping):
        for metric, exprs in value.items():
            items = [exprs] if isinstance(exprs, str) else exprs
            if not isinstance(metric, str) or not isinstance(items, Sequence):
                raise ScenarioError(f"thresholds[{metric!r}] must be a list of strings", display)
            for expr in items:
                if not isinstance(expr, str):
                    raise ScenarioError(
                        f"thresholds[{metric!r}]: {expr!r} is not a string", display
                    )
                out.append(f"{metric}:{expr}")
    elif isinstance(value, Sequence) and not isinstance(value, str):
        for expr in value:
            if not isinstance(expr, str):
                raise ScenarioError(f"thresholds: {expr!r} is not a string", display)
            out.append(expr)
    else:
        raise ScenarioError("`thresholds` must be a dict of metric -> [expressions]", display)
    return tuple(out)
