"""Protocol plugins: load-test targets other than HTTP and WebSocket (databases, queues).

A Python package registers a factory under the entry-point group ``cannonade.protocols``;
the entry's name is the URL scheme it serves::

    [project.entry-points."cannonade.protocols"]
    redis = "cannonade_redis:create"

A plan's request whose URL scheme (or explicit ``protocol:``) is not one of the built-in
schemes goes to that plugin. One :class:`ProtocolHost` per cannon calls each factory once,
on first use, so a handler keeps one connection pool for every VU of the cannon; the
host times each call, turns whatever a handler does wrong into a failed request, and
records ``<name>_reqs``, ``<name>_req_duration``, ``<name>_docs`` and ``http_req_failed``.
The contract (loadr's FfiRequest/FfiResponse, as Python objects) is in docs/plugins.md.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import math
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from time import perf_counter
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol, cast

from cannonade.errors import PluginError
from cannonade.model.metrics import HTTP_REQ_FAILED, Key, Kind
from cannonade.model.recorder import FALSE, TRUE, Recorder, Samples

if TYPE_CHECKING:
    from cannonade.plugins.registry import InstalledPlugin

GROUP = "cannonade.protocols"
# Served by cannonade itself. A plugin claiming one is ignored: a package must not be able
# to take over every HTTP request of a run just by being installed.
BUILTIN_SCHEMES = frozenset({"http", "https", "ws", "wss"})
DEFAULT_TIMEOUT_MS = 60_000  # a request without timeout_ms: the HTTP client's default
CLOSE_TIMEOUT = 10.0  # a handler's close() must not hold up a cannon's shutdown
MAX_ERROR_TEXT = 500
MAX_ERROR_GROUPS = 100  # distinct error messages kept; beyond that they are lumped

log = logging.getLogger(__name__)

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_NOT_METRIC = re.compile(r"[^a-z0-9_]")
_NO_EXTRAS: Mapping[str, Any] = MappingProxyType({})


class ProtocolHandler(Protocol):
    """What a plugin's factory returns: one object per cannon, shared by all its VUs."""

    async def execute(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run one request; report failures in the response's ``error``, do not raise."""
        ...

    async def close(self) -> None:
        """Release connections; called once when the cannon stops."""
        ...


ProtocolFactory = Callable[[dict[str, Any]], ProtocolHandler]


class Loadable(Protocol):
    """What the host needs of an entry point: an adapter for another registry fits too."""

    @property
    def value(self) -> str:
        """Where the factory is, for messages (``package.module:create``)."""
        ...

    def load(self) -> Any:
        """Import and return the factory."""
        ...


@dataclass(slots=True)
class ProtocolResponse:
    """A handler's response, checked. ``duration`` is the host's wall time in seconds;
    ``handler_ms`` is the handler's own ``duration_ms`` when it gave one."""

    status: int
    status_text: str
    headers: Sequence[Sequence[str]]
    body: bytes
    duration: float
    error: str | None
    extras: Mapping[str, Any]
    handler_ms: float | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


# -- finding and routing ---------------------------------------------------------------


def discover() -> dict[str, Loadable]:
    """The installed protocol plugins by scheme: Python packages' entry points, then
    plugins installed with ``cannonade plugin install`` (``type = "python"``). Nothing is
    imported until it is used, so a broken plugin only breaks the plans that use it."""
    found: dict[str, Loadable] = {}
    candidates: list[tuple[str, Loadable]] = [(ep.name, ep) for ep in entry_points(group=GROUP)]
    candidates += _installed_python()
    for name, ep in candidates:
        scheme = name.lower()
        if scheme in BUILTIN_SCHEMES:
            log.warning(
                "protocol plugin %s claims the built-in scheme %r: ignored", ep.value, scheme
            )
        elif scheme in found:
            log.warning(
                "protocol plugins %s and %s both claim the scheme %r: using the first",
                found[scheme].value,
                ep.value,
                scheme,
            )
        elif not _SCHEME.fullmatch(scheme):
            log.warning("protocol plugin %s: %r is not a URL scheme: ignored", ep.value, scheme)
        else:
            found[scheme] = ep
    return found


class DirectoryEntry:
    """A Python protocol plugin installed as a directory (plugin.toml): its entry file
    imported from there, under a module name of its own."""

    def __init__(self, plugin: InstalledPlugin) -> None:
        self.plugin = plugin

    @property
    def value(self) -> str:
        return f"{self.plugin.directory}/{self.plugin.manifest.entry}"

    def load(self) -> Any:
        path = self.plugin.entry_path
        attribute = self.plugin.manifest.entry_attribute or "create"
        module_name = f"cannonade_plugin_{self.plugin.name.replace('-', '_')}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise PluginError(f"{path}: cannot be imported")
        module = importlib.util.module_from_spec(spec)
        # Its own helper modules, beside the entry, must import as they would in place.
        folder = str(self.plugin.directory)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
        return getattr(module, attribute)


def _installed_python() -> list[tuple[str, Loadable]]:
    from cannonade.plugins import registry

    out: list[tuple[str, Loadable]] = []
    try:
        plugins = registry.installed()
    except (PluginError, OSError) as e:
        log.warning("installed plugins cannot be listed: %s", e)
        return out
    for plugin in plugins:
        m = plugin.manifest
        if m.kind == "protocol" and m.type == "python":
            out.extend((scheme, DirectoryEntry(plugin)) for scheme in m.schemes or (m.name,))
    return out


def scheme_of(url: str) -> str:
    """The URL's scheme in lower case; "" for a URL without one (a path, ``host/x``)."""
    head, sep, _ = url.partition("://")
    return head.lower() if sep and _SCHEME.fullmatch(head) else ""


def route(url: str, protocol: str | None, installed: Mapping[str, object]) -> str | None:
    """The plugin that serves a request: its explicit ``protocol:``, else its URL scheme.
    None means cannonade's own HTTP/WebSocket client (built-in schemes always win)."""
    name = protocol.lower() if protocol else scheme_of(url)
    if not name or name in BUILTIN_SCHEMES:
        return None
    if name in installed:
        return name
    raise unknown(name, installed, f"the {'protocol' if protocol else 'URL scheme'} of {url!r}")


def unknown(name: str, installed: Mapping[str, object], where: str) -> PluginError:
    """The error for a scheme no plugin serves, naming what is installed."""
    have = ", ".join(sorted(installed)) or "none"
    return PluginError(
        f"no protocol plugin for {name!r} ({where}); installed protocol plugins: {have}; "
        f"built-in schemes: {', '.join(sorted(BUILTIN_SCHEMES))}"
    )


# -- the per-cannon host -----------------------------------------------------------------


class _Meters:
    """One (request name, method)'s metric handles, built once: the hot path only adds."""

    __slots__ = ("docs", "duration", "failed", "ok", "reqs")

    def __init__(self, plugin: _Plugin, recorder: Recorder, name: str, method: str) -> None:
        self.reqs = Key(plugin.reqs_metric, name, method)
        self.docs = Key(plugin.docs_metric, name, method)
        self.duration: Samples = recorder.samples(Key(plugin.duration_metric, name, method))
        self.failed = Key(HTTP_REQ_FAILED, name, method, TRUE)
        self.ok = Key(HTTP_REQ_FAILED, name, method, FALSE)


class _Plugin:
    """A started handler with its config and metric names."""

    __slots__ = (
        "config",
        "docs_metric",
        "duration_metric",
        "handler",
        "meters",
        "name",
        "reqs_metric",
    )

    def __init__(self, name: str, handler: ProtocolHandler, config: dict[str, Any]) -> None:
        self.name = name
        self.handler = handler
        self.config = config
        prefix = _NOT_METRIC.sub("_", name)  # "redis+tls" -> redis_tls_reqs
        self.reqs_metric = f"{prefix}_reqs"
        self.duration_metric = f"{prefix}_req_duration"
        self.docs_metric = f"{prefix}_docs"
        self.meters: dict[str, dict[str, _Meters]] = {}  # by method, then request name


class ProtocolHost:
    """A cannon's protocol plugins: started on first use, closed with :meth:`close`.

    ``configs`` maps a plugin name to its merged config (the plan's ``plugins:`` entry);
    it is handed to the factory and, as ``config``, with every request. ``installed``
    replaces entry-point discovery (tests, embedding).
    """

    def __init__(
        self,
        recorder: Recorder,
        configs: Mapping[str, Mapping[str, Any]] | None = None,
        installed: Mapping[str, Loadable] | None = None,
    ) -> None:
        self.recorder = recorder
        self.installed: dict[str, Loadable] = dict(discover() if installed is None else installed)
        self._configs = {k.lower(): dict(v) for k, v in (configs or {}).items()}
        self._plugins: dict[str, _Plugin] = {}
        self._broken: dict[str, PluginError] = {}  # a factory that failed is not retried
        self._error_groups: set[tuple[str, str]] = set()

    def route(self, url: str, protocol: str | None = None) -> str | None:
        """See :func:`route`; raises :class:`PluginError` for an unknown scheme."""
        return route(url, protocol, self.installed)

    def plugin(self, name: str) -> _Plugin:
        """The started plugin for a scheme; its factory runs here, once per host."""
        name = name.lower()  # as route() returns it; call()'s fast path skips this
        plugin = self._plugins.get(name)
        if plugin is not None:
            return plugin
        broken = self._broken.get(name)
        if broken is not None:
            raise broken
        try:
            plugin = self._plugins[name] = self._start(name)
        except PluginError as e:
            self._broken[name] = e
            raise
        return plugin

    def _start(self, name: str) -> _Plugin:
        if name in BUILTIN_SCHEMES:
            raise PluginError(f"{name!r} is a built-in scheme, not a protocol plugin")
        ep = self.installed.get(name)
        if ep is None:
            raise unknown(name, self.installed, "asked for by name")
        config = self._configs.get(name, {})
        try:
            factory = cast(ProtocolFactory, ep.load())
            handler = factory(dict(config))  # a copy: the factory may keep or change it
        except Exception as e:
            raise PluginError(f"protocol plugin {name!r} ({ep.value}) failed to start: {e}") from e
        for method in ("execute", "close"):
            if not callable(getattr(handler, method, None)):
                raise PluginError(
                    f"protocol plugin {name!r} ({ep.value}): its factory returned "
                    f"{type(handler).__name__}, which has no {method}() method"
                )
        plugin = _Plugin(name, handler, config)
        try:
            self.recorder.define(plugin.reqs_metric, Kind.COUNTER)
            self.recorder.define(plugin.duration_metric, Kind.TREND)
            self.recorder.define(plugin.docs_metric, Kind.COUNTER)
        except ValueError as e:
            raise PluginError(f"protocol plugin {name!r}: {e}") from e
        return plugin

    async def call(self, name: str, request: dict[str, Any]) -> ProtocolResponse:
        """Run one request on plugin ``name`` and record it. Anything the handler does
        wrong (raises, times out, returns garbage) is a failed response, never raised;
        only a plugin that cannot start raises :class:`PluginError`."""
        plugin = self._plugins.get(name) or self.plugin(name)
        if "config" not in request:
            request["config"] = plugin.config
        timeout_ms = request.get("timeout_ms") or DEFAULT_TIMEOUT_MS
        # The host enforces the timeout too: a handler that hangs must not stall a VU.
        scope = asyncio.timeout(timeout_ms / 1000)
        t0 = perf_counter()
        try:
            async with scope:
                raw: object = await plugin.handler.execute(request)
        except Exception as e:
            elapsed = perf_counter() - t0
            if isinstance(e, TimeoutError) and scope.expired():
                error = f"timed out after {timeout_ms} ms"
            else:
                error = f"{type(e).__name__}: {e}"
            response = _failed(error, elapsed)
        else:
            response = _checked(raw, perf_counter() - t0)
        self._record(plugin, request, response)
        return response

    def _record(self, plugin: _Plugin, request: dict[str, Any], response: ProtocolResponse) -> None:
        name = request.get("name") or request.get("url") or ""
        method = request.get("method") or ""
        by_name = plugin.meters.get(method)
        if by_name is None:
            by_name = plugin.meters[method] = {}
        m = by_name.get(name)
        if m is None:
            m = by_name[name] = _Meters(plugin, self.recorder, name, method)
        add = self.recorder.add
        add(m.reqs)
        m.duration.values.append(response.duration)
        if response.error is None:
            add(m.ok)
        else:
            add(m.failed)
            self._note_error(plugin.name, response.error)
        docs = response.extras.get("docs")
        if docs is not None and _is_number(docs):
            add(m.docs, float(docs))

    def _note_error(self, plugin: str, error: str) -> None:
        # Error texts can embed keys or addresses: cap the distinct ones like Runtime does.
        group = (plugin, error[:MAX_ERROR_TEXT])
        if group not in self._error_groups:
            if len(self._error_groups) >= MAX_ERROR_GROUPS:
                group = (plugin, "(further distinct messages not kept)")
            self._error_groups.add(group)
        self.recorder.error(*group)

    async def close(self) -> None:
        """Close every started handler; one failing to close does not stop the others."""
        plugins, self._plugins = list(self._plugins.values()), {}
        for plugin in plugins:
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await plugin.handler.close()
            except Exception:
                log.warning("protocol plugin %r failed to close", plugin.name, exc_info=True)


# -- checking a response -----------------------------------------------------------------


def _is_number(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def _failed(error: str, elapsed: float) -> ProtocolResponse:
    return ProtocolResponse(0, "", (), b"", elapsed, error or "(no message)", _NO_EXTRAS)


def _checked(raw: object, elapsed: float) -> ProtocolResponse:
    """The response if it has the contract's shape, else a failed one saying what is off."""
    if not isinstance(raw, dict):
        return _failed(f"invalid response: a {type(raw).__name__}, not a dict", elapsed)
    status = raw.get("status")
    if not isinstance(status, int) or isinstance(status, bool):
        return _invalid("status", "an int", status, elapsed)
    status_text = raw.get("status_text") or ""
    if not isinstance(status_text, str):
        return _invalid("status_text", "a str", status_text, elapsed)
    headers = raw.get("headers") or ()
    if not (isinstance(headers, list | tuple) and all(map(_is_header, headers))):
        return _invalid("headers", "a list of [name, value] strings", headers, elapsed)
    body = raw.get("body")
    if body is None:
        body = b""
    elif isinstance(body, str):
        body = body.encode()
    elif isinstance(body, bytearray | memoryview):
        body = bytes(body)
    elif not isinstance(body, bytes):
        return _invalid("body", "bytes or a str", body, elapsed)
    handler_ms = raw.get("duration_ms")
    if handler_ms is not None and not _is_number(handler_ms):
        return _invalid("duration_ms", "a number", handler_ms, elapsed)
    error = raw.get("error")
    if error is not None and not isinstance(error, str):
        return _invalid("error", "null or a str", error, elapsed)
    extras = raw.get("extras")
    if extras is None:
        extras = _NO_EXTRAS
    elif not isinstance(extras, dict):
        return _invalid("extras", "a dict", extras, elapsed)
    return ProtocolResponse(
        status,
        status_text,
        headers,
        body,
        elapsed,
        None if error is None else error or "(no message)",
        extras,
        None if handler_ms is None else float(handler_ms),
    )


def _is_header(h: object) -> bool:
    return (
        isinstance(h, list | tuple)
        and len(h) == 2
        and isinstance(h[0], str)
        and isinstance(h[1], str)
    )


def _invalid(field: str, want: str, got: object, elapsed: float) -> ProtocolResponse:
    shown = repr(got)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return _failed(f"invalid response: {field!r} must be {want}, got {shown}", elapsed)
