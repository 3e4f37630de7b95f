"""A checked plan as scenario functions the engine runs: one per plan scenario, each a
lane with its own load model (``EngineOptions.lanes``).

Per iteration a VU renders each request from compiled templates, sends it with its own
HTTP client (keep-alive, cookies), extracts values into its scope, judges assertions
(a failure marks the request failed) and checks (the ``checks`` rate), and sleeps the
plan's think time. Data rows are taken once per iteration, on first use.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from cannonade.config import Partition
from cannonade.engine.vu import VU, RetireVU
from cannonade.model.metrics import Key, Kind
from cannonade.model.recorder import Recorder
from cannonade.plans.extract import Body, extract, judge
from cannonade.plans.model import (
    Check,
    DataSource,
    Group,
    Part,
    Plan,
    Request,
    Scenario,
    Step,
    ThinkTime,
)
from cannonade.plans.template import Scope, TemplateError
from cannonade.plugins.protocols import ProtocolHost
from cannonade.plugins.wasm import WasmPlugin
from cannonade.scenarios.loader import LoadedScenario, ScenarioFn

GROUP_DURATION = "group_duration"
_KINDS = {"counter": Kind.COUNTER, "gauge": Kind.GAUGE, "rate": Kind.RATE, "trend": Kind.TREND}


class Cursor:
    """Where a data source is, for this cannon. ``shared``: one cursor across every VU
    of every cannon — cannon k of N takes rows k, k+N, k+2N... so no two cannons (on
    any agent) ever take the same row; ``per_vu``: each VU from the first row."""

    def __init__(self, source: DataSource, partition: Partition) -> None:
        self.source = source
        self.partition = partition
        self.taken = 0
        self.per_vu: dict[int, int] = {}

    def next_row(self, vu: int) -> Mapping[str, str]:
        rows = self.source.rows
        if self.source.shared:
            i = self.partition.index + self.partition.count * self.taken
            self.taken += 1
        else:
            i = self.per_vu.get(vu, 0)
            self.per_vu[vu] = i + 1
        if i >= len(rows):
            if not self.source.recycle:
                raise RetireVU
            i %= len(rows)
        return rows[i]


class FlowRunner:
    """The plan's scenario functions for one cannon."""

    def __init__(self, plan: Plan, partition: Partition, seed: int | None = None) -> None:
        self.plan = plan
        self.fixed = plan.fixed
        self.cursors = {name: Cursor(src, partition) for name, src in plan.data.items()}
        self.rng = random.Random(seed)
        self._recorder: Recorder | None = None
        self._group_keys: dict[str, Key] = {}
        self._protocols: ProtocolHost | None = None
        self._wasm: dict[str, WasmPlugin] = {}

    def scenario(self) -> LoadedScenario:
        fns = tuple(ScenarioFn(s.name, self._fn(s), 1.0) for s in self.plan.scenarios)
        return LoadedScenario(
            path=self.plan.file, sha256="", scenarios=fns, thresholds=self.plan.thresholds
        )

    def bind(self, recorder: Recorder) -> None:
        """Declare the plan's custom metrics (and group_duration) in the cannon's recorder."""
        self._recorder = recorder
        if _uses_plugins(self.plan):
            self._protocols = ProtocolHost(recorder, self.plan.plugins)
        for name, path in self.plan.wasm.items():
            # Compiled (or read from the compile cache) once per cannon, before any load.
            self._wasm[name] = WasmPlugin.load(Path(path))
        for name, kind in self.plan.metrics.items():
            recorder.define(name, _KINDS[kind])
        if _has_groups(self.plan):
            recorder.define(GROUP_DURATION, Kind.TREND)

    async def close(self) -> None:
        """Close the protocol plugins' connections (at the end of the run)."""
        if self._protocols is not None:
            await self._protocols.close()

    def _fn(self, scenario: Scenario) -> Callable[[VU], Awaitable[None]]:
        steps = scenario.steps
        think = scenario.think_time
        cursors = self.cursors

        async def run(vu: VU) -> None:
            scope = vu.state.get("plan_scope")
            if scope is None:
                scope = vu.state["plan_scope"] = Scope(vu=vu.id)
                vu_id = vu.id
                scope.row_for = lambda source: cursors[source].next_row(vu_id)
            scope.iteration = vu.iteration
            scope.rows.clear()  # each iteration takes the next row
            await self._steps(steps, vu, scope, think)

        return run

    async def _steps(
        self, steps: tuple[Step, ...], vu: VU, scope: Scope, think: ThinkTime | None
    ) -> None:
        for step in steps:
            if isinstance(step, Request):
                await self._request(step, vu, scope)
                if think is not None:
                    await asyncio.sleep(self._think(think))
            elif isinstance(step, ThinkTime):
                await asyncio.sleep(self._think(step))
            elif isinstance(step, Group):
                t0 = time.perf_counter()
                await self._steps(step.steps, vu, scope, think)
                self._group_done(step.name, time.perf_counter() - t0)

    def _group_done(self, name: str, seconds: float) -> None:
        if self._recorder is None:
            return
        key = self._group_keys.get(name)
        if key is None:
            key = self._group_keys[name] = Key(GROUP_DURATION, name)
        self._recorder.samples(key).values.append(seconds)

    def _think(self, t: ThinkTime) -> float:
        if t.kind == "uniform":
            return self.rng.uniform(t.a, t.b)
        if t.kind == "gaussian":
            return max(0.0, self.rng.gauss(t.a, t.b))
        return t.a

    async def _request(self, step: Request, vu: VU, scope: Scope) -> None:
        fixed = self.fixed
        try:
            url = step.url.render(scope, fixed)
            headers = (
                {name: t.render(scope, fixed) for name, t in step.headers} if step.headers else None
            )
            params = step.params.render(scope, fixed) if step.params is not None else None
            json_body: Any = None
            data: Any = None
            kind = step.body_kind
            if kind == "json" and step.body is not None:
                json_body = step.body.render(scope, fixed)
            elif kind == "form" and step.body is not None:
                form = step.body.render(scope, fixed)
                data = (
                    {str(k): _text(v) for k, v in form.items()} if isinstance(form, dict) else form
                )
            elif kind == "raw" and step.body is not None:
                data = step.body.render(scope, fixed)
            elif kind == "file":
                data = step.file_data
                headers = {"Content-Type": step.content_type, **(headers or {})}
            elif kind == "multipart":
                data = _multipart(step.parts, scope, fixed)
                headers = {"Content-Type": MULTIPART_TYPE, **(headers or {})}
        except TemplateError as missing:
            # A value the flow never extracted (its request failed): this request
            # cannot be made; it is an error of the iteration, named.
            raise TemplateError(f"request {step.name!r}: {missing}") from None
        if step.protocol == "ws":
            await self._ws(step, vu, scope, url, headers)
            return
        if step.protocol not in BUILTIN:
            await self._plugin_request(step, vu, scope, url, headers, json_body, data)
            return
        resp = await vu.http.request(
            step.method,
            url,
            name=step.name,
            params=_params(params),
            headers=headers,
            json=json_body,
            data=data,
            timeout=step.timeout,
            follow_redirects=step.follow_redirects,
        )
        if not (step.extract or step.asserts or step.checks):
            return
        answered = resp.status != 0
        body = Body(resp.status, resp.body if answered else b"", resp.headers if answered else None)
        self._judge(step, vu, scope, body, answered, resp.elapsed)

    def _judge(
        self, step: Request, vu: VU, scope: Scope, body: Body, answered: bool, elapsed: float
    ) -> None:
        for ex in step.extract:
            if ex.kind == "plugin":
                value = (
                    self._wasm[ex.plugin].extract(body.raw, _pairs(body), ex.config)
                    if answered
                    else None
                )
            else:
                value = extract(ex, body) if answered else None
            if value is None:
                if ex.has_default:
                    scope.extracted[ex.name] = ex.default
                continue
            scope.extracted[ex.name] = value
        failed_why = ""
        for c in step.asserts:
            ok, why = self._judge_one(c, body, elapsed, scope)
            if not ok and not failed_why:
                failed_why = f"{c.name}: {why}"
        if failed_why and step.protocol in ("http", "https") and 0 < body.status < 400:
            vu.http.shared.slot(step.name, step.method).failed_asserts += 1
        for c in step.checks:
            ok, _why = self._judge_one(c, body, elapsed, scope)
            vu.check(ok, c.name)
        if failed_why:
            raise AssertionError(f"{step.name}: {failed_why}")

    def _judge_one(self, c: Check, body: Body, elapsed: float, scope: Scope) -> tuple[bool, str]:
        if c.kind == "plugin":
            plugin = self._wasm[c.plugin]
            return plugin.check(body.status, body.raw, _pairs(body), elapsed * 1000, c.config)
        return judge(c, body, elapsed, scope, self.fixed)

    async def _ws(
        self, step: Request, vu: VU, scope: Scope, url: str, headers: dict[str, str] | None
    ) -> None:
        """A ws: block: open, send each message, wait for ``receive_count`` messages;
        checks read the last one. Measured by the WebSocket client's own metrics."""
        fixed = self.fixed
        last: bytes = b""
        t0 = time.perf_counter()
        async with vu.ws.connect(url, name=step.name, headers=headers) as session:
            for message in step.ws_send:
                value = message.render(scope, fixed)
                await session.send(value if isinstance(value, str | bytes) else json.dumps(value))
            for _ in range(step.ws_receive):
                got = await asyncio.wait_for(session.recv(), step.ws_timeout)
                last = got.encode() if isinstance(got, str) else got
        if step.extract or step.asserts or step.checks:
            body = Body(101, last, None)
            self._judge(step, vu, scope, body, True, time.perf_counter() - t0)

    async def _plugin_request(
        self,
        step: Request,
        vu: VU,
        scope: Scope,
        url: str,
        headers: dict[str, str] | None,
        json_body: Any,
        data: Any,
    ) -> None:
        """A request to a protocol plugin (redis://, ...), in the seed's contract."""
        host = self._protocols
        assert host is not None  # bind() made it: the plan names a plugin protocol
        if json_body is not None:
            raw = json.dumps(json_body).encode()
        elif isinstance(data, bytes):
            raw = data
        elif isinstance(data, str):
            raw = data.encode()
        elif data is not None:
            raw = json.dumps(data).encode()
        else:
            raw = b""
        options = step.plugin_options.render(scope, self.fixed) if step.plugin_options else {}
        request = {
            "name": step.name,
            "method": step.method,
            "url": url,
            "headers": [[k, v] for k, v in (headers or {}).items()],
            "body": raw,
            "timeout_ms": int((step.timeout or 60.0) * 1000),
            "options": options,
        }
        response = await host.call(step.protocol.lower(), request)
        if not (step.extract or step.asserts or step.checks):
            return
        answered = not response.failed
        head = {h[0]: h[1] for h in response.headers if len(h) == 2}
        body = Body(response.status, response.body, head if answered else None)
        self._judge(step, vu, scope, body, answered, response.duration)


BUILTIN = frozenset({"http", "https", "ws"})


def _pairs(body: Body) -> list[tuple[str, str]]:
    h = body.headers
    if h is None:
        return []
    if isinstance(h, dict):
        return [(str(k), str(v)) for k, v in h.items()]
    return [(name, value) for name in h for value in h.get_all(name)]


def _uses_plugins(plan: Plan) -> bool:
    return any(
        isinstance(step, Request) and step.protocol not in BUILTIN
        for s in plan.scenarios
        for step in _all_steps(s.steps)
    )


# One boundary for every multipart body: it only has to be absent from the parts, and
# a part holding this exact text is refused rather than sent broken.
BOUNDARY = "cannonade-b7d1c0e6a9f34d2e8c5b"
MULTIPART_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def _multipart(parts: tuple[Part, ...], scope: Scope, fixed: Mapping[str, Any]) -> bytes:
    out = bytearray()
    marker = BOUNDARY.encode()
    for part in parts:
        if part.text is not None:
            payload = part.text.render(scope, fixed).encode()
            head = f'Content-Disposition: form-data; name="{_quoted(part.name)}"\r\n'
        else:
            payload = part.data
            head = (
                f'Content-Disposition: form-data; name="{_quoted(part.name)}";'
                f' filename="{_quoted(part.filename)}"\r\nContent-Type: {part.content_type}\r\n'
            )
        if marker in payload:
            raise ValueError(f"multipart field {part.name!r} holds the boundary text")
        out += b"--" + marker + b"\r\n" + head.encode() + b"\r\n" + payload + b"\r\n"
    out += b"--" + marker + b"--\r\n"
    return bytes(out)


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", " ").replace("\n", " ")


def _params(value: Any) -> Any:
    if value is None:
        return None
    return {str(k): _text(v) for k, v in value.items()}


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value)


def _has_groups(plan: Plan) -> bool:
    return any(isinstance(step, Group) for s in plan.scenarios for step in _all_steps(s.steps))


def _all_steps(steps: tuple[Step, ...]) -> list[Step]:
    out: list[Step] = []
    for step in steps:
        out.append(step)
        if isinstance(step, Group):
            out.extend(_all_steps(step.steps))
    return out
