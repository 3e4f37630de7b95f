"""The protocol plugin host: discovery, routing, metrics, and handlers that misbehave."""

import asyncio
import logging
from typing import Any

import pytest

from cannonade.errors import PluginError
from cannonade.model.metrics import HTTP_REQ_FAILED, IntervalDelta, Key, Kind
from cannonade.model.recorder import FALSE, TRUE, Recorder
from cannonade.plugins import protocols
from cannonade.plugins.protocols import GROUP, ProtocolHost, discover, route, scheme_of


class FakeHandler:
    """Answers with whatever ``reply`` says; records what it saw."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.requests: list[dict[str, Any]] = []
        self.closed = 0

    async def execute(self, request: dict[str, Any]) -> Any:
        self.requests.append(request)
        reply = request["options"].get("reply", {"status": 1})
        if reply == "raise":
            raise RuntimeError("boom")
        if reply == "hang":
            await asyncio.sleep(10)
        return reply

    async def close(self) -> None:
        self.closed += 1


class BadClose(FakeHandler):
    async def close(self) -> None:
        self.closed += 1
        raise OSError("cannot close")


CREATED: list[FakeHandler] = []


def create(config: dict[str, Any]) -> FakeHandler:
    handler = BadClose(config) if config.get("bad_close") else FakeHandler(config)
    CREATED.append(handler)
    return handler


def create_broken(config: dict[str, Any]) -> FakeHandler:
    raise RuntimeError("no server configured")


def create_nothing(config: dict[str, Any]) -> object:
    return object()


class FakeEntryPoint:
    """Stands in for importlib.metadata.EntryPoint: a name, a value and load()."""

    def __init__(self, name: str, target: Any) -> None:
        self.name = name
        self.value = f"fake_pkg:{getattr(target, '__name__', 'x')}"
        self.group = GROUP
        self.loads = 0
        self._target = target

    def load(self) -> Any:
        self.loads += 1
        return self._target


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> dict[str, FakeEntryPoint]:
    """Installed plugins as the entry-point lookup reports them (``http`` included)."""
    CREATED.clear()
    eps = [
        FakeEntryPoint("fake", create),
        FakeEntryPoint("Other+TLS", create),
        FakeEntryPoint("http", create),  # must never take over HTTP
        FakeEntryPoint("broken", create_broken),
        FakeEntryPoint("nothing", create_nothing),
        FakeEntryPoint("fake", create_broken),  # a second claim on a scheme: ignored
    ]

    def lookup(*, group: str) -> list[FakeEntryPoint]:
        assert group == GROUP
        return eps

    monkeypatch.setattr(protocols, "entry_points", lookup)
    return {ep.name.lower(): ep for ep in reversed(eps)}


def request(name: str = "op", url: str = "fake://h/0", **options: Any) -> dict[str, Any]:
    return {
        "name": name,
        "method": "CALL",
        "url": url,
        "headers": [],
        "body": b"",
        "timeout_ms": 5000,
        "options": options,
    }


def run_calls(host: ProtocolHost, *requests: dict[str, Any], plugin: str = "fake") -> list[Any]:
    async def go() -> list[Any]:
        return [await host.call(plugin, r) for r in requests]

    return asyncio.run(go())


def flushed(recorder: Recorder) -> IntervalDelta:
    return recorder.flush(0)


# -- discovery and routing ---------------------------------------------------------------


def test_discover_skips_builtin_and_duplicate_schemes(
    installed: dict[str, FakeEntryPoint], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=protocols.__name__):
        found = discover()
    assert sorted(found) == ["broken", "fake", "nothing", "other+tls"]
    assert found["fake"].value == "fake_pkg:create"  # the first claim wins
    messages = [r.getMessage() for r in caplog.records]
    assert any("built-in scheme 'http'" in m for m in messages)
    assert any("both claim the scheme 'fake'" in m for m in messages)
    assert all(ep.loads == 0 for ep in installed.values())  # nothing imported yet


@pytest.mark.parametrize(
    ("url", "protocol", "expected"),
    [
        ("fake://h:1/0", None, "fake"),
        ("FAKE://h:1/0", None, "fake"),
        ("other+tls://h", None, "other+tls"),
        ("h:1/0", "fake", "fake"),  # routed by an explicit protocol: name
        ("h:1/0", "Fake", "fake"),
        ("http://h/x", None, None),
        ("https://h/x", None, None),
        ("ws://h/x", None, None),
        ("wss://h/x", None, None),
        ("/relative/path", None, None),  # to base_url, over HTTP
        ("http://h/x", "http", None),
    ],
)
def test_route(
    installed: dict[str, FakeEntryPoint], url: str, protocol: str | None, expected: str | None
) -> None:
    host = ProtocolHost(Recorder())
    assert host.route(url, protocol) == expected


def test_builtin_schemes_win_even_over_an_explicit_registration() -> None:
    assert route("http://h/", None, {"http": object()}) is None
    assert route("wss://h/", None, {"wss": object()}) is None


def test_unknown_scheme_names_it_and_the_installed_plugins(
    installed: dict[str, FakeEntryPoint],
) -> None:
    host = ProtocolHost(Recorder())
    with pytest.raises(PluginError, match=r"'mongodb'.*installed protocol plugins: broken, fake"):
        host.route("mongodb://h:27017/db")
    with pytest.raises(PluginError, match=r"'kafka' \(the protocol of"):
        host.route("h:9092", "kafka")
    with pytest.raises(PluginError, match="installed protocol plugins: none"):
        route("mongodb://h", None, {})


def test_scheme_of() -> None:
    assert scheme_of("redis://127.0.0.1:6379/0") == "redis"
    assert scheme_of("127.0.0.1:6379") == ""
    assert scheme_of("/a://b") == ""
    assert scheme_of("") == ""


# -- calls and metrics -------------------------------------------------------------------


def test_metrics_of_successful_failed_and_counted_requests(
    installed: dict[str, FakeEntryPoint],
) -> None:
    recorder = Recorder()
    host = ProtocolHost(recorder)
    ok = {"status": 1, "body": "[1, 2]", "extras": {"docs": 2}, "duration_ms": 0.5}
    failed = {"status": 1, "error": "WRONGTYPE Operation against a key", "extras": {"docs": 3}}
    responses = run_calls(
        host,
        request(reply=ok),
        request(reply=ok),
        request(reply=failed),
        request("other", reply={"status": 7, "extras": {"docs": True}}),
    )
    assert [r.failed for r in responses] == [False, False, True, False]
    assert responses[0].text == "[1, 2]"
    assert responses[0].body == b"[1, 2]"
    assert responses[0].handler_ms == 0.5
    assert responses[0].duration > 0
    assert responses[2].error == "WRONGTYPE Operation against a key"
    assert responses[3].status == 7

    delta = flushed(recorder)
    c = delta.counters
    assert c[Key("fake_reqs", "op", "CALL")] == 3
    assert c[Key("fake_reqs", "other", "CALL")] == 1
    assert c[Key("fake_docs", "op", "CALL")] == 7  # a failed reply's docs count too
    assert Key("fake_docs", "other", "CALL") not in c  # True is not a number of docs
    assert c[Key(HTTP_REQ_FAILED, "op", "CALL", TRUE)] == 1
    assert c[Key(HTTP_REQ_FAILED, "op", "CALL", FALSE)] == 2
    assert c[Key(HTTP_REQ_FAILED, "other", "CALL", FALSE)] == 1
    assert delta.trends[Key("fake_req_duration", "op", "CALL")].count == 3
    assert delta.custom_kinds["fake_reqs"] is Kind.COUNTER
    assert delta.custom_kinds["fake_req_duration"] is Kind.TREND
    assert delta.custom_kinds["fake_docs"] is Kind.COUNTER
    assert [(e.kind, e.message, e.count) for e in delta.errors] == [
        ("fake", "WRONGTYPE Operation against a key", 1)
    ]


def test_metric_names_from_a_scheme_with_punctuation(
    installed: dict[str, FakeEntryPoint],
) -> None:
    recorder = Recorder()
    host = ProtocolHost(recorder)
    run_calls(host, request(url="other+tls://h"), plugin="other+tls")
    assert flushed(recorder).counters[Key("other_tls_reqs", "op", "CALL")] == 1


def test_request_gets_the_plugin_config_and_a_name(installed: dict[str, FakeEntryPoint]) -> None:
    recorder = Recorder()
    host = ProtocolHost(recorder, configs={"fake": {"pool": 4}})
    r = request()
    del r["name"]
    run_calls(host, r)
    (handler,) = CREATED
    assert handler.config == {"pool": 4}
    assert handler.requests[0]["config"] == {"pool": 4}
    assert flushed(recorder).counters[Key("fake_reqs", "fake://h/0", "CALL")] == 1


@pytest.mark.parametrize(
    ("reply", "complaint"),
    [
        (None, "a NoneType, not a dict"),
        ("OK", "a str, not a dict"),
        ({}, "'status' must be an int, got None"),
        ({"status": "1"}, "'status' must be an int"),
        ({"status": True}, "'status' must be an int"),
        ({"status": 1, "status_text": 3}, "'status_text' must be a str"),
        ({"status": 1, "headers": [["a"]]}, "'headers' must be a list of"),
        ({"status": 1, "headers": {"a": "b"}}, "'headers' must be a list of"),
        ({"status": 1, "body": 12}, "'body' must be bytes or a str"),
        ({"status": 1, "duration_ms": "fast"}, "'duration_ms' must be a number"),
        ({"status": 1, "error": 500}, "'error' must be null or a str"),
        ({"status": 1, "extras": [1]}, "'extras' must be a dict"),
        ({"status": 1, "body": "x" * 500}, None),  # fine: a long body is not garbage
    ],
)
def test_a_garbage_response_is_a_failed_request(
    installed: dict[str, FakeEntryPoint], reply: Any, complaint: str | None
) -> None:
    recorder = Recorder()
    (response,) = run_calls(ProtocolHost(recorder), request(reply=reply))
    c = flushed(recorder).counters
    if complaint is None:
        assert not response.failed
        assert c[Key(HTTP_REQ_FAILED, "op", "CALL", FALSE)] == 1
        return
    assert response.failed
    assert response.status == 0
    assert response.error is not None
    assert response.error.startswith("invalid response: ")
    assert complaint in response.error
    assert len(response.error) < 200  # the garbage itself is cut short
    assert c[Key(HTTP_REQ_FAILED, "op", "CALL", TRUE)] == 1
    assert c[Key("fake_reqs", "op", "CALL")] == 1


def test_an_exception_or_a_hang_is_a_failed_request(installed: dict[str, FakeEntryPoint]) -> None:
    recorder = Recorder()
    host = ProtocolHost(recorder)
    hang = request(reply="hang")
    hang["timeout_ms"] = 30
    raised, hung, after = run_calls(host, request(reply="raise"), hang, request())
    assert raised.error == "RuntimeError: boom"
    assert hung.error == "timed out after 30 ms"
    assert 0.025 < hung.duration < 5
    assert not after.failed  # the host carries on
    delta = flushed(recorder)
    assert delta.counters[Key(HTTP_REQ_FAILED, "op", "CALL", TRUE)] == 2
    assert delta.counters[Key(HTTP_REQ_FAILED, "op", "CALL", FALSE)] == 1
    assert {e.message for e in delta.errors} == {"RuntimeError: boom", "timed out after 30 ms"}


def test_distinct_error_messages_are_capped(installed: dict[str, FakeEntryPoint]) -> None:
    recorder = Recorder()
    host = ProtocolHost(recorder)
    n = protocols.MAX_ERROR_GROUPS + 20
    run_calls(host, *(request(reply={"status": 1, "error": f"key {i}"}) for i in range(n)))
    errors = flushed(recorder).errors
    assert len(errors) == protocols.MAX_ERROR_GROUPS + 1
    assert sum(e.count for e in errors) == n
    lumped = [e for e in errors if e.message.startswith("(further")]
    assert lumped[0].count == 20


def test_a_handler_is_created_once_per_host_and_closed(
    installed: dict[str, FakeEntryPoint],
) -> None:
    host = ProtocolHost(Recorder())

    async def many_vus() -> None:
        await asyncio.gather(*(host.call("fake", request()) for _ in range(50)))
        await host.close()
        await host.close()  # a second close is a no-op

    asyncio.run(many_vus())
    assert len(CREATED) == 1
    assert len(CREATED[0].requests) == 50
    assert CREATED[0].closed == 1
    assert installed["fake"].loads == 1

    other = ProtocolHost(Recorder())  # another cannon: its own handler
    assert other.plugin("fake") is other.plugin("FAKE")
    assert len(CREATED) == 2


def test_close_goes_on_when_a_handler_fails_to_close(
    installed: dict[str, FakeEntryPoint], caplog: pytest.LogCaptureFixture
) -> None:
    host = ProtocolHost(Recorder(), configs={"Fake": {"bad_close": True}})

    async def go() -> None:
        await host.call("fake", request())
        await host.call("other+tls", request(url="other+tls://h"))
        with caplog.at_level(logging.WARNING, logger=protocols.__name__):
            await host.close()

    asyncio.run(go())
    assert [h.closed for h in CREATED] == [1, 1]
    assert "'fake' failed to close" in caplog.text


def test_a_plugin_that_cannot_start_raises_once_and_is_not_retried(
    installed: dict[str, FakeEntryPoint],
) -> None:
    host = ProtocolHost(Recorder())
    for _ in range(2):
        with pytest.raises(PluginError, match=r"'broken' .* failed to start: no server configured"):
            run_calls(host, request(), plugin="broken")
    assert installed["broken"].loads == 1
    with pytest.raises(PluginError, match="has no execute"):
        run_calls(host, request(), plugin="nothing")
    with pytest.raises(PluginError, match="no protocol plugin for 'mongodb'"):
        host.plugin("mongodb")
    with pytest.raises(PluginError, match="built-in scheme"):
        ProtocolHost(Recorder(), installed={"http": installed["http"]}).plugin("http")


def test_metric_name_clash_is_a_plugin_error(installed: dict[str, FakeEntryPoint]) -> None:
    recorder = Recorder()
    recorder.define("fake_reqs", Kind.TREND)  # a scenario's own metric of that name
    with pytest.raises(PluginError, match="fake_reqs"):
        ProtocolHost(recorder).plugin("fake")
