"""A plan's text → a checked :class:`Plan`, or every problem in it at once.

First the JSON Schema (``schema.py``) — unknown keys, wrong types — then what a schema
cannot say: which options each executor takes, references to undefined variables,
data sources or plugins, durations, thresholds, and loadr features cannonade does not
have. Every problem names ``file:line:column``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jsonschema

from cannonade.config import (
    HttpOptions,
    parse_duration,
)
from cannonade.errors import CannonadeError
from cannonade.model.metrics import BUILTIN_KINDS
from cannonade.model.thresholds import parse_threshold
from cannonade.plans.compile_flow import FlowCompiler, TagIndex, tag_index
from cannonade.plans.model import (
    DataSource,
    Plan,
)
from cannonade.plans.schema import plan_schema
from cannonade.plans.source import Marks, Problem, SourceError, load_yaml
from cannonade.plans.source import Path as YPath

MAX_DATA_ROWS = 1_000_000


class PlanInvalid(CannonadeError):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def is_plan(path: str | Path) -> bool:
    return str(path).lower().endswith((".yaml", ".yml"))


def load_plan(
    path: str | Path, *, env: Mapping[str, str] | None = None, text: str | None = None
) -> Plan:
    """Read and check the plan at ``path``; raises PlanInvalid with every problem."""
    p = Path(path)
    if text is None:
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise PlanInvalid([Problem(1, 1, f"cannot read the plan: {e}", str(p))]) from None
    try:
        data, marks = load_yaml(text, str(p))
    except SourceError as e:
        raise PlanInvalid(e.problems) from None
    return compile_plan(data, marks, p.parent, dict(os.environ if env is None else env))


def compile_plan(data: Any, marks: Marks, base: Path, env: dict[str, str]) -> Plan:
    problems: list[Problem] = []
    validator = jsonschema.Draft202012Validator(plan_schema())
    for error in validator.iter_errors(data):
        problems.extend(_schema_problem(error, marks))
    if not isinstance(data, dict):
        if not problems:
            problems.append(Problem(1, 1, "a plan is a mapping with scenarios", marks.file))
        raise PlanInvalid(problems)
    c = _Compiler(data, marks, base, env, problems)
    if not problems:
        plan = c.plan()
        if problems:
            raise PlanInvalid(problems)
        return plan
    # The schema found problems; the deeper checks still run, so that one `validate`
    # reports everything, but on a shape they cannot trust: whatever they trip over is
    # already reported by the schema.
    with contextlib.suppress(
        KeyError, TypeError, ValueError, AttributeError, IndexError, StopIteration
    ):
        c.plan()
    raise PlanInvalid(list(dict.fromkeys(problems)))


def _schema_problem(error: jsonschema.ValidationError, marks: Marks) -> list[Problem]:
    path: YPath = tuple(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        schema = error.schema
        allowed = set(schema.get("properties", {})) if isinstance(schema, dict) else set()
        extra = [k for k in error.instance if k not in allowed]
        return [marks.at((*path, k), _unknown_key(k, path, allowed), key=True) for k in extra]
    if error.validator in ("oneOf", "anyOf") and error.context:
        # Report the branch that got furthest: the one whose errors sit deepest.
        best = max(error.context, key=lambda e: len(e.absolute_path))
        if len(best.absolute_path) > len(error.absolute_path):
            return _schema_problem(best, marks)
        where = ".".join(str(x) for x in path) or "the plan"
        return [marks.at(path, f"{where}: {_shape_hint(path)}")]
    where = ".".join(str(x) for x in path) or "the plan"
    return [marks.at(path, f"{where}: {error.message}")]


_UNSUPPORTED = {
    "environments": "environments (use env.X references and your shell instead)",
    "outputs": "outputs in the plan (use --out, --summary-export or the report)",
    "hooks": "hooks",
    "observe": "system observation",
    "chaos": "chaos injection",
    "sweep": "parameter sweeps",
    "grpc": "gRPC requests",
    "graphql": "GraphQL request blocks",
    "tcp": "raw TCP requests",
    "udp": "UDP requests",
    "parallel": "parallel blocks",
    "loop": "loops",
    "if": "conditions",
    "weight": "scenario weights",
    "exec": "exec",
}


def _unknown_key(key: str, path: YPath, allowed: set[str]) -> str:
    if key in _UNSUPPORTED:
        return f"unsupported loadr feature: {_UNSUPPORTED[key]} ({key!r})"
    near = [a for a in sorted(allowed) if _close(a, key)]
    hint = f"; did you mean {near[0]!r}?" if near else ""
    where = ".".join(str(x) for x in path) or "the plan"
    return f"unknown key {key!r} in {where}{hint}"


def _close(a: str, b: str) -> bool:
    if abs(len(a) - len(b)) > 2:
        return False
    return len(set(a) ^ set(b)) <= 2 and (a[:2] == b[:2] or a[-2:] == b[-2:])


def _shape_hint(path: YPath) -> str:
    last = path[-1] if path else ""
    parent = path[-2] if len(path) >= 2 else ""
    if parent in ("flow", "steps"):
        return "a step is one of request, think_time, group, js"
    if parent in ("extract",):
        return "an extractor is {type: jsonpath|regex|header|boundary|css|plugin, name, ...}"
    if parent in ("assert", "checks"):
        return "a check is {type: status|duration|jsonpath|body_contains|body_matches|plugin, ...}"
    if last == "body":
        return "a body is a string, or exactly one of json, form, file, multipart"
    if last == "think_time":
        return "think_time is a duration or {type: constant|uniform|gaussian, ...}"
    return "this value does not have a form the plan format allows"


class _Compiler(FlowCompiler):
    def __init__(
        self,
        data: dict[str, Any],
        marks: Marks,
        base: Path,
        env: dict[str, str],
        problems: list[Problem],
    ) -> None:
        self.d = data
        self.marks = marks
        self.base = base
        self.env = env
        self.problems = problems
        self.variables: dict[str, Any] = dict(data.get("variables") or {})
        self.secrets: dict[str, str] = {}
        self.data: dict[str, DataSource] = {}
        self.plugins: dict[str, dict[str, Any]] = {}
        self.files: list[str] = []
        self.wasm: dict[str, str] = {}
        self._plugin_paths: dict[str, str] = {}

    def problem(self, path: YPath, message: str, *, key: bool = False) -> None:
        self.problems.append(self.marks.at(path, message, key=key))

    def duration(self, value: Any, path: YPath) -> float:
        try:
            return parse_duration(str(value), ".".join(str(x) for x in path))
        except CannonadeError as e:
            self.problem(path, str(e))
            return 0.0

    # -- the whole plan -------------------------------------------------------------------
    def plan(self) -> Plan:
        d = self.d
        self._secrets()
        self._data()
        self._plugins()
        http = self._http()
        metrics = {k: v["kind"] for k, v in (d.get("metrics") or {}).items()}
        for name in metrics:
            if name in BUILTIN_KINDS or name == "group_duration":
                self.problem(("metrics", name), f"metric {name!r} is built in", key=True)
        thresholds = self._thresholds()
        scenarios = tuple(
            self._scenario(name, raw) for name, raw in (d.get("scenarios") or {}).items()
        )
        tags = tag_index(scenarios)
        self._check_tag_filters(tags)
        # The plan's own tags go with the run's options (they are not per sample).
        written = {"": dict((d.get("defaults") or {}).get("tags") or {})}
        for name, raw in (d.get("scenarios") or {}).items():
            if raw.get("tags"):
                written[name] = dict(raw["tags"])
        plan_tags = {k: {t: str(v) for t, v in w.items()} for k, w in written.items() if w}
        fixed = {"env": self.env, "vars": self.variables, "secrets": self.secrets}
        return Plan(
            file=self.marks.file,
            name=str(d.get("name") or Path(self.marks.file).stem),
            description=str(d.get("description") or ""),
            http=http,
            scenarios=scenarios,
            thresholds=thresholds,
            fixed=fixed,
            data=self.data,
            metrics=metrics,
            plugins=self.plugins,
            secret_values=frozenset(v for v in self.secrets.values() if v),
            files=tuple(dict.fromkeys(self.files)),
            wasm=self.wasm,
            tag_index=tags,
            tags=plan_tags,
        )

    def _http(self) -> HttpOptions:
        raw = ((self.d.get("defaults") or {}).get("http")) or {}
        path: YPath = ("defaults", "http")
        headers = tuple((str(k), str(v)) for k, v in (raw.get("headers") or {}).items())
        cookies = raw.get("cookies") or {}
        if cookies:
            cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
            headers = (*headers, ("Cookie", cookie))
        timeout = self.duration(raw["timeout"], (*path, "timeout")) if "timeout" in raw else 60.0
        return HttpOptions(
            base_url=raw.get("base_url"),
            timeout=timeout or 60.0,
            follow_redirects=bool(raw.get("follow_redirects", False)),
            headers=headers,
        )

    def _secrets(self) -> None:
        for name, spec in (self.d.get("secrets") or {}).items():
            var = spec["env"] if isinstance(spec, dict) else spec
            value = self.env.get(str(var))
            if value is None:
                self.problem(
                    ("secrets", name), f"secret {name!r}: environment variable {var} is not set"
                )
                continue
            self.secrets[name] = value

    def _data(self) -> None:
        for name, spec in (self.d.get("data") or {}).items():
            path: YPath = ("data", name)
            file = self.base / str(spec["path"])
            try:
                text = file.read_text(encoding="utf-8-sig")
            except (OSError, UnicodeDecodeError) as e:
                self.problem((*path, "path"), f"data source {name!r}: cannot read {file}: {e}")
                continue
            reader = csv.DictReader(io.StringIO(text), delimiter=spec.get("delimiter", ","))
            rows: list[dict[str, str]] = []
            try:
                for row in reader:
                    if len(rows) >= MAX_DATA_ROWS:
                        self.problem((*path, "path"), f"{file}: more than {MAX_DATA_ROWS} rows")
                        break
                    rows.append({k: v or "" for k, v in row.items() if k is not None})
            except csv.Error as e:
                self.problem((*path, "path"), f"{file}: line {reader.line_num}: {e}")
                continue
            if not rows:
                self.problem((*path, "path"), f"data source {name!r}: {file} has no rows")
                continue
            self.data[name] = DataSource(
                name,
                str(file),
                tuple(reader.fieldnames or ()),
                tuple(rows),
                shared=spec.get("mode", "shared") == "shared",
                recycle=spec.get("on_eof", "recycle") == "recycle",
            )

    def _plugins(self) -> None:
        for i, spec in enumerate(self.d.get("plugins") or []):
            self.plugins[str(spec["name"])] = dict(spec.get("config") or {})
            if "path" in spec:
                path = self.base / str(spec["path"])
                if not path.exists():
                    self.problem(
                        ("plugins", i, "path"), f"plugin path {spec['path']} does not exist"
                    )
                self._plugin_paths[str(spec["name"])] = str(path)

    def _wasm_plugin(self, name: str, path: YPath) -> None:
        """Where the WASM plugin ``name`` is: the plan's ``path`` (a .wasm file, or a
        folder with plugin.toml) or the installed plugin of that name."""
        from cannonade.plugins import registry
        from cannonade.plugins.manifest import read as read_manifest

        if name in self.wasm:
            return
        given = self._plugin_paths.get(name)
        try:
            if given is not None:
                p = Path(given)
                if p.is_dir():
                    manifest = read_manifest(p / "plugin.toml")
                    wasm = p / manifest.entry
                    self.files.extend([str(p / "plugin.toml"), str(wasm)])
                else:
                    wasm = p
                    self.files.append(str(p))
            else:
                found = registry.find(name)
                if found is None:
                    self.problem(path, f"plugin {name!r} has no path and is not installed")
                    return
                wasm = found.entry_path
        except CannonadeError as e:
            self.problem(path, str(e))
            return
        if wasm.suffix != ".wasm":
            self.problem(path, f"plugin {name!r}: {wasm} is not a .wasm component")
            return
        self.wasm[name] = str(wasm)

    def _thresholds(self) -> tuple[str, ...]:
        out = []
        for metric, exprs in (self.d.get("thresholds") or {}).items():
            for i, expr in enumerate(exprs):
                text = f"{metric}: {expr}"
                try:
                    parse_threshold(metric, expr)
                except CannonadeError as e:
                    self.problem(("thresholds", metric, i), str(e))
                    continue
                out.append(text)
        return tuple(out)

    def _check_tag_filters(self, tags: TagIndex) -> None:
        """A ``{scenario:x}`` or ``{group:g}`` filter selects samples by their names: it
        must name a scenario or group that exists, and its names must be its own."""
        for metric_key, exprs in (self.d.get("thresholds") or {}).items():
            for i, expr in enumerate(exprs):
                try:
                    t = parse_threshold(metric_key, expr)
                except CannonadeError:
                    continue  # reported by _thresholds
                for field, value in t.filters:
                    if field not in ("scenario", "group"):
                        continue
                    known = tags.get(field, {})
                    where: YPath = ("thresholds", metric_key, i)
                    if value not in known:
                        have = ", ".join(sorted(known)) or "none"
                        self.problem(where, f"{field} {value!r} is not in the plan ({have})")
                        continue
                    for family, names in known[value].items():
                        for other, entry in known.items():
                            shared = (
                                set(names) & set(entry.get(family, ())) if other != value else set()
                            )
                            if shared and family != "scenarios":
                                self.problem(
                                    where,
                                    f"{field} filter {value!r}: {family[:-1]} name"
                                    f" {sorted(shared)[0]!r} is also in {field} {other!r};"
                                    " give it a name of its own to filter by "
                                    f"{field}",
                                )


Loader = Callable[[str], Plan]
