"""The flow half of the plan compiler: scenarios (executors as load models), steps,
requests, extractors and checks, templates and the references they make. Mixed into
``compile._Compiler``, whose state (the plan's variables, data, plugins, where problems
go) it reads through the attributes declared below."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
from jsonpath_ng.ext.parser import parse as parse_jsonpath

from cannonade.config import (
    ArrivalRate,
    Cycles,
    Lane,
    LoadModel,
    RampingVus,
    SharedIterations,
    Stage,
    parse_users,
)
from cannonade.errors import CannonadeError
from cannonade.plans.model import (
    Check,
    DataSource,
    Extractor,
    Group,
    Js,
    Part,
    Request,
    Scenario,
    Step,
    ThinkTime,
)
from cannonade.plans.source import Path as YPath
from cannonade.plans.template import Ref, Structure, Template, TemplateError

BUILTIN_SCHEMES = ("http", "https", "ws", "wss")

# Which options each executor takes (beyond the common ones), and which it needs.
_EXECUTORS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "constant-vus": (frozenset({"vus", "duration"}), frozenset({"duration"})),
    "ramping-vus": (frozenset({"start_vus", "stages"}), frozenset({"stages"})),
    "constant-arrival-rate": (
        frozenset({"rate", "time_unit", "duration", "pre_allocated_vus", "max_vus"}),
        frozenset({"rate", "duration"}),
    ),
    "ramping-arrival-rate": (
        frozenset({"rate", "start_rate", "time_unit", "stages", "pre_allocated_vus", "max_vus"}),
        frozenset({"stages"}),
    ),
    "per-vu-iterations": (frozenset({"vus", "iterations"}), frozenset({"iterations"})),
    "shared-iterations": (frozenset({"vus", "iterations"}), frozenset({"iterations"})),
    "cycles": (frozenset({"users", "hits", "duration", "rampup"}), frozenset({"users"})),
}


_COMMON = frozenset({"executor", "start_time", "graceful_stop", "think_time", "tags", "flow"})


TagIndex = dict[str, dict[str, dict[str, list[str]]]]


def tag_index(scenarios: tuple[Scenario, ...]) -> TagIndex:
    """Which request, check, group and scenario names carry each scenario and group tag
    (thresholds filter on them through this; see model.thresholds.with_tag_index)."""
    by: dict[str, dict[str, dict[str, set[str]]]] = {"scenario": {}, "group": {}}

    def entry(field: str, value: str) -> dict[str, set[str]]:
        return by[field].setdefault(
            value, {"requests": set(), "checks": set(), "groups": set(), "scenarios": set()}
        )

    def walk(steps: tuple[Step, ...], owners: list[dict[str, set[str]]]) -> None:
        for step in steps:
            if isinstance(step, Request):
                for e in owners:
                    e["requests"].add(step.name)
                    e["checks"].update(c.name for c in step.checks)
            elif isinstance(step, Group):
                group = entry("group", step.name)
                group["groups"].add(step.name)
                for e in owners:
                    e["groups"].add(step.name)
                walk(step.steps, [*owners, group])

    for s in scenarios:
        mine = entry("scenario", s.name)
        mine["scenarios"].add(s.name)
        walk(s.steps, [mine])
    return {
        field: {value: {k: sorted(v) for k, v in fam.items()} for value, fam in values.items()}
        for field, values in by.items()
    }


def _collect_extracted(flow: list[Any], out: set[str]) -> None:
    for item in flow:
        if not isinstance(item, dict):
            continue
        request = item.get("request")
        if isinstance(request, dict):
            for e in request.get("extract") or []:
                if isinstance(e, dict) and "name" in e:
                    out.add(str(e["name"]))
        group = item.get("group")
        if isinstance(group, dict):
            _collect_extracted(group.get("steps") or [], out)


class FlowCompiler:
    # What the compiler proper (compile._Compiler) provides.
    d: dict[str, Any]
    base: Path
    env: dict[str, str]
    variables: dict[str, Any]
    secrets: dict[str, str]
    data: dict[str, DataSource]
    plugins: dict[str, dict[str, Any]]
    files: list[str]

    def problem(self, path: YPath, message: str, *, key: bool = False) -> None:
        raise NotImplementedError

    def duration(self, value: Any, path: YPath) -> float:
        raise NotImplementedError

    def _wasm_plugin(self, name: str, path: YPath) -> None:
        raise NotImplementedError

    def _scenario(self, name: str, raw: dict[str, Any]) -> Scenario:
        path: YPath = ("scenarios", name)
        executor = raw["executor"]
        allowed, required = _EXECUTORS.get(executor, (frozenset(), frozenset()))
        for key in raw:
            if key not in _COMMON and key not in allowed:
                self.problem(
                    (*path, key), f"{key!r} does not apply to the {executor} executor", key=True
                )
        for key in sorted(required - raw.keys()):
            self.problem(path, f"scenario {name!r}: the {executor} executor needs {key!r}")
        # An unknown executor is the schema's to report; its options mean nothing here.
        model = self._model(executor, raw, path) if executor in _EXECUTORS else Cycles()
        start = (
            self.duration(raw["start_time"], (*path, "start_time")) if "start_time" in raw else 0.0
        )
        grace = (
            self.duration(raw["graceful_stop"], (*path, "graceful_stop"))
            if "graceful_stop" in raw
            else 30.0
        )
        extracted: set[str] = set()
        _collect_extracted(raw.get("flow") or [], extracted)
        used: set[str] = set()
        steps = self._steps(raw.get("flow") or [], (*path, "flow"), extracted, used)
        think = (
            self._think(raw["think_time"], (*path, "think_time")) if "think_time" in raw else None
        )
        return Scenario(
            name, Lane(name, model, start, grace), steps, think, tuple(sorted(used)), executor
        )

    def _model(self, executor: str, raw: dict[str, Any], path: YPath) -> LoadModel:
        def dur(key: str, default: float = 0.0) -> float:
            return self.duration(raw[key], (*path, key)) if key in raw else default

        def stages(scale: float = 1.0) -> tuple[Stage, ...]:
            return tuple(
                Stage(
                    self.duration(s["duration"], (*path, "stages", i, "duration")),
                    s["target"] * scale,
                )
                for i, s in enumerate(raw.get("stages") or [])
            )

        if executor == "constant-vus":
            return Cycles(users=(int(raw.get("vus", 1)),), duration=dur("duration"))
        if executor == "ramping-vus":
            return RampingVus(stages(), int(raw.get("start_vus", 0)))
        if executor in ("constant-arrival-rate", "ramping-arrival-rate"):
            unit = dur("time_unit", 1.0)
            if unit <= 0:
                self.problem((*path, "time_unit"), "time_unit must be more than 0")
                unit = 1.0
            start = float(raw.get("start_rate", raw.get("rate", 0.0)))
            return ArrivalRate(
                rate=start / unit,
                stages=stages(1.0 / unit) if executor == "ramping-arrival-rate" else (),
                duration=dur("duration"),
                pre_allocated_vus=int(raw.get("pre_allocated_vus", 0)),
                max_vus=int(raw.get("max_vus", 0)),
            )
        if executor == "per-vu-iterations":
            return Cycles(users=(int(raw.get("vus", 1)),), hits=int(raw.get("iterations", 1)))
        if executor == "shared-iterations":
            return SharedIterations(int(raw.get("vus", 1)), int(raw.get("iterations", 1)))
        # cycles: loads' user cycles
        try:
            users = parse_users(str(raw.get("users", "1")), "users")
        except CannonadeError as e:
            self.problem((*path, "users"), str(e))
            users = (1,)
        if ("hits" in raw) == ("duration" in raw):
            self.problem(path, "the cycles executor needs exactly one of hits or duration")
        return Cycles(
            users=users,
            duration=dur("duration") if "duration" in raw else None,
            hits=int(raw["hits"]) if "hits" in raw else None,
            rampup=dur("rampup"),
        )

    def _think(self, raw: Any, path: YPath) -> ThinkTime:
        if not isinstance(raw, dict):
            return ThinkTime("constant", self.duration(raw, path))
        kind = raw["type"]
        if kind == "constant":
            return ThinkTime(kind, self.duration(raw["duration"], (*path, "duration")))
        if kind == "uniform":
            lo = self.duration(raw["min"], (*path, "min"))
            hi = self.duration(raw["max"], (*path, "max"))
            if hi < lo:
                self.problem((*path, "max"), "max must not be below min")
            return ThinkTime(kind, lo, hi)
        return ThinkTime(
            kind,
            self.duration(raw["mean"], (*path, "mean")),
            self.duration(raw["std_dev"], (*path, "std_dev")),
        )

    def _steps(
        self, raw: list[Any], path: YPath, extracted: set[str], used: set[str]
    ) -> tuple[Step, ...]:
        out: list[Step] = []
        for i, item in enumerate(raw):
            here: YPath = (*path, i)
            kind, value = next(iter(item.items()))
            if kind == "request":
                out.append(self._request(value, (*here, "request"), extracted, used))
            elif kind == "think_time":
                out.append(self._think(value, (*here, "think_time")))
            elif kind == "group":
                steps = self._steps(value["steps"], (*here, "group", "steps"), extracted, used)
                out.append(Group(str(value["name"]), steps))
            else:
                self.problem(
                    (*here, "js"),
                    "unsupported loadr feature: js steps (cannonade embeds no JavaScript"
                    " engine; write the logic as a Python scenario)",
                )
                out.append(Js(str(value)))
        return tuple(out)

    def _template(self, text: Any, path: YPath, extracted: set[str], used: set[str]) -> Template:
        try:
            t = Template(str(text))
        except TemplateError as e:
            self.problem(path, str(e))
            return Template("")
        self._check_refs(t.refs, path, extracted, used)
        return t

    def _structure(self, value: Any, path: YPath, extracted: set[str], used: set[str]) -> Structure:
        try:
            s = Structure(value)
        except TemplateError as e:
            self.problem(path, str(e))
            return Structure(None)
        self._check_refs(s.refs, path, extracted, used)
        return s

    def _check_refs(
        self, refs: tuple[Ref, ...], path: YPath, extracted: set[str], used: set[str]
    ) -> None:
        for ref in refs:
            if ref.kind == "vars" and ref.key not in self.variables:
                self.problem(path, f"undefined variable ${{{ref}}}: not in variables")
            elif (
                ref.kind == "secrets"
                and ref.key not in self.secrets
                and ref.key not in (self.d.get("secrets") or {})
            ):
                self.problem(path, f"undefined secret ${{{ref}}}: not in secrets")
            elif ref.kind == "env" and ref.key not in self.env:
                self.problem(path, f"${{{ref}}}: environment variable {ref.key} is not set")
            elif ref.kind == "data":
                source = self.data.get(ref.key)
                if source is None and ref.key not in (self.d.get("data") or {}):
                    self.problem(path, f"undefined data source in ${{{ref}}}")
                elif source is not None and ref.column not in source.columns:
                    self.problem(path, f"${{{ref}}}: {source.path} has no column {ref.column!r}")
                used.add(ref.key)
            elif ref.kind == "name" and ref.key not in extracted and ref.key not in self.variables:
                self.problem(
                    path,
                    f"undefined variable ${{{ref.key}}}: not extracted in this scenario"
                    " and not in variables",
                )

    def _request(
        self, raw: dict[str, Any], path: YPath, extracted: set[str], used: set[str]
    ) -> Request:
        url = self._template(raw["url"], (*path, "url"), extracted, used)
        scheme = url.source.split("://", 1)[0].lower() if "://" in url.source else "http"
        protocol = str(raw.get("protocol") or scheme)
        ws = raw.get("ws") or {}
        if protocol in ("ws", "wss") or "ws" in raw:
            protocol = "ws"
        elif protocol not in BUILTIN_SCHEMES:
            self._check_protocol(protocol, (*path, "url"))
        body = raw.get("body")
        body_kind = ""
        body_value: Structure | Template | None = None
        content_type = ""
        file_data = b""
        parts: tuple[Part, ...] = ()
        if isinstance(body, str):
            body_kind, body_value = "raw", self._template(body, (*path, "body"), extracted, used)
        elif isinstance(body, dict):
            body_kind = next(k for k in ("json", "form", "file", "multipart") if k in body)
            if body_kind == "file":
                file = self.base / str(body["file"])
                self.files.append(str(file))
                try:
                    file_data = file.read_bytes()
                except OSError as e:
                    self.problem((*path, "body", "file"), f"cannot read {file}: {e.strerror}")
                content_type = str(body.get("content_type") or "application/octet-stream")
            elif body_kind == "multipart":
                parts = self._parts(
                    body["multipart"], (*path, "body", "multipart"), extracted, used
                )
            else:
                body_value = self._structure(
                    body[body_kind], (*path, "body", body_kind), extracted, used
                )
        method = str(raw.get("method") or ("POST" if body is not None else "GET")).upper()
        headers = tuple(
            (str(k), self._template(v, (*path, "headers", k), extracted, used))
            for k, v in (raw.get("headers") or {}).items()
        )
        params = (
            self._structure(raw["params"], (*path, "params"), extracted, used)
            if "params" in raw
            else None
        )
        timeout = self.duration(raw["timeout"], (*path, "timeout")) if "timeout" in raw else None
        return Request(
            name=str(raw.get("name") or url.source.split("?", 1)[0]),
            method=method,
            url=url,
            params=params,
            headers=headers,
            body_kind=body_kind,
            body=body_value,
            content_type=content_type,
            file_data=file_data,
            timeout=timeout or None,
            follow_redirects=raw.get("follow_redirects"),
            extract=tuple(
                self._extractor(e, (*path, "extract", i))
                for i, e in enumerate(raw.get("extract") or [])
            ),
            asserts=tuple(
                self._check(c, (*path, "assert", i), extracted, used)
                for i, c in enumerate(raw.get("assert") or [])
            ),
            checks=tuple(
                self._check(c, (*path, "checks", i), extracted, used)
                for i, c in enumerate(raw.get("checks") or [])
            ),
            protocol=protocol,
            plugin_options=(
                self._structure(raw["plugin"], (*path, "plugin"), extracted, used)
                if "plugin" in raw
                else None
            ),
            ws_send=tuple(
                self._structure(m, (*path, "ws", "send", i), extracted, used)
                for i, m in enumerate(ws.get("send") or [])
            ),
            parts=parts,
            ws_receive=int(ws.get("receive_count", 0)),
            ws_timeout=(
                self.duration(ws["timeout"], (*path, "ws", "timeout")) if "timeout" in ws else 10.0
            ),
        )

    def _parts(
        self, raw: dict[str, Any], path: YPath, extracted: set[str], used: set[str]
    ) -> tuple[Part, ...]:
        out = []
        for name, value in raw.items():
            if isinstance(value, dict):
                file = self.base / str(value["file"])
                self.files.append(str(file))
                try:
                    data = file.read_bytes()
                except OSError as e:
                    self.problem((*path, name, "file"), f"cannot read {file}: {e.strerror}")
                    data = b""
                out.append(
                    Part(
                        str(name),
                        data=data,
                        filename=str(value.get("filename") or file.name),
                        content_type=str(value.get("content_type") or "application/octet-stream"),
                    )
                )
            else:
                out.append(Part(str(name), self._template(value, (*path, name), extracted, used)))
        return tuple(out)

    def _check_protocol(self, protocol: str, path: YPath) -> None:
        from cannonade.plugins.protocols import discover

        known = set(discover())
        if protocol not in known:
            have = ", ".join(sorted(known)) or "none installed"
            self.problem(path, f"unknown protocol {protocol!r}: no protocol plugin for it ({have})")

    def _extractor(self, raw: dict[str, Any], path: YPath) -> Extractor:
        kind = raw["type"]
        compiled: Any = None
        expression = str(raw.get("expression", ""))
        if kind == "jsonpath":
            compiled = self._jsonpath(expression, (*path, "expression"))
        elif kind == "regex":
            compiled = self._regex(expression, (*path, "expression"))
            group = int(raw.get("group", 1 if compiled is not None and compiled.groups else 0))
            if compiled is not None and group > compiled.groups:
                self.problem(
                    (*path, "group"), f"the expression has only {compiled.groups} group(s)"
                )
        elif kind == "plugin":
            self._check_plugin(str(raw["plugin"]), (*path, "plugin"), "extractor")
        return Extractor(
            kind=kind,
            name=str(raw["name"]),
            expression=expression,
            group=int(
                raw.get(
                    "group",
                    1 if kind == "regex" and compiled is not None and compiled.groups else 0,
                )
            ),
            header=str(raw.get("header", "")),
            left=str(raw.get("left", "")),
            right=str(raw.get("right", "")),
            attribute=str(raw.get("attribute", "")),
            plugin=str(raw.get("plugin", "")),
            config=self._config_text(raw),
            default=raw.get("default"),
            has_default="default" in raw,
            compiled=compiled,
        )

    def _check(
        self, raw: dict[str, Any], path: YPath, extracted: set[str], used: set[str]
    ) -> Check:
        kind = raw["type"]
        compiled: Any = None
        value = None
        max_seconds = 0.0
        expression = str(raw.get("expression", ""))
        equals = raw.get("equals")
        if kind == "jsonpath":
            compiled = self._jsonpath(expression, (*path, "expression"))
            if ("equals" in raw) == ("exists" in raw):
                self.problem(path, "a jsonpath check needs exactly one of equals or exists")
            if isinstance(equals, str):
                value = self._template(equals, (*path, "equals"), extracted, used)
        elif kind == "body_matches":
            compiled = self._regex(str(raw["pattern"]), (*path, "pattern"))
        elif kind == "body_contains":
            value = self._template(raw["value"], (*path, "value"), extracted, used)
        elif kind == "duration":
            max_seconds = self.duration(raw["max"], (*path, "max"))
        elif kind == "status":
            try:
                equals = int(str(equals))
            except ValueError:
                self.problem((*path, "equals"), f"status equals {equals!r} is not a number")
        elif kind == "plugin":
            self._check_plugin(str(raw["plugin"]), (*path, "plugin"), "assertion")
        shown = next(
            (raw[k] for k in ("equals", "expression", "value", "pattern", "max") if k in raw), ""
        )
        default_name = f"{kind} {shown}"
        return Check(
            kind=kind,
            name=str(raw.get("name") or default_name.strip()),
            equals=equals,
            has_equals="equals" in raw,
            exists=raw.get("exists"),
            max_seconds=max_seconds,
            expression=expression,
            value=value,
            plugin=str(raw.get("plugin", "")),
            config=self._config_text(raw),
            compiled=compiled,
        )

    def _config_text(self, raw: dict[str, Any]) -> str:
        """What a WASM plugin's ``config`` parameter receives: the use's own config, else
        the plan's ``plugins:`` entry's; text as written, anything else as JSON."""
        config = raw["config"] if "config" in raw else self.plugins.get(str(raw.get("plugin")), {})
        return config if isinstance(config, str) else json.dumps(config)

    def _check_plugin(self, name: str, path: YPath, kind: str) -> None:
        if name not in self.plugins:
            self.problem(path, f"unknown {kind} plugin {name!r}: list it under plugins")
            return
        self._wasm_plugin(name, path)

    def _jsonpath(self, expression: str, path: YPath) -> Any:
        try:
            return parse_jsonpath(expression)
        except (
            JsonPathLexerError,
            JsonPathParserError,
            Exception,
        ) as e:  # the parser raises plain Exception
            self.problem(path, f"not a JSONPath expression: {expression!r} ({e})")
            return None

    def _regex(self, expression: str, path: YPath) -> re.Pattern[str] | None:
        try:
            return re.compile(expression)
        except re.error as e:
            self.problem(path, f"not a regular expression: {expression!r} ({e})")
            return None
