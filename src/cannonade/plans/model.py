"""A checked plan: frozen values with templates compiled, ready to run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cannonade.config import HttpOptions, Lane
from cannonade.plans.template import Structure, Template


@dataclass(frozen=True, slots=True)
class Extractor:
    kind: str  # jsonpath, regex, header, boundary, css, plugin
    name: str
    expression: str = ""
    group: int = 0
    header: str = ""
    left: str = ""
    right: str = ""
    attribute: str = ""
    plugin: str = ""
    config: str = "{}"  # a plugin's config, as the JSON text it receives
    default: Any = None
    has_default: bool = False
    compiled: Any = None  # the parsed jsonpath or compiled regex


@dataclass(frozen=True, slots=True)
class Check:
    kind: str  # status, duration, jsonpath, body_contains, body_matches, plugin
    name: str
    equals: Any = None
    has_equals: bool = False
    exists: bool | None = None
    max_seconds: float = 0.0
    expression: str = ""
    value: Template | None = None
    plugin: str = ""
    config: str = "{}"
    compiled: Any = None


@dataclass(frozen=True, slots=True)
class Part:
    """One field of a multipart body: text (a template) or a file's bytes."""

    name: str
    text: Template | None = None
    data: bytes = b""
    filename: str = ""
    content_type: str = ""


@dataclass(frozen=True, slots=True)
class Request:
    name: str  # the metric name (the URL as written, when no name is given)
    method: str
    url: Template
    params: Structure | None = None
    headers: tuple[tuple[str, Template], ...] = ()
    body_kind: str = ""  # "", raw, json, form, file, multipart
    body: Structure | Template | None = None
    content_type: str = ""
    file_data: bytes = b""
    timeout: float | None = None
    follow_redirects: bool | None = None
    extract: tuple[Extractor, ...] = ()
    asserts: tuple[Check, ...] = ()
    checks: tuple[Check, ...] = ()
    protocol: str = "http"
    plugin_options: Structure | None = None
    ws_send: tuple[Structure, ...] = ()  # a ws: block's messages (objects go as JSON)
    ws_receive: int = 0  # messages to wait for; the last one is the body checks read
    ws_timeout: float = 10.0
    parts: tuple[Part, ...] = ()  # a multipart body


@dataclass(frozen=True, slots=True)
class ThinkTime:
    kind: str  # constant, uniform, gaussian
    a: float  # constant: seconds; uniform: min; gaussian: mean
    b: float = 0.0  # uniform: max; gaussian: std dev


@dataclass(frozen=True, slots=True)
class Group:
    name: str
    steps: tuple[Step, ...]


@dataclass(frozen=True, slots=True)
class Js:
    source: str


Step = Request | ThinkTime | Group | Js


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    lane: Lane
    steps: tuple[Step, ...]
    think_time: ThinkTime | None = None
    data_sources: tuple[str, ...] = ()  # sources its templates read
    executor: str = ""  # as the plan names it


@dataclass(frozen=True, slots=True)
class DataSource:
    name: str
    path: str
    columns: tuple[str, ...]
    rows: tuple[dict[str, str], ...]
    shared: bool = True
    recycle: bool = True


@dataclass(frozen=True, slots=True)
class Plan:
    file: str
    name: str
    description: str
    http: HttpOptions
    scenarios: tuple[Scenario, ...]
    thresholds: tuple[str, ...]
    fixed: dict[str, dict[str, Any]] = field(default_factory=dict)  # env, vars, secrets
    data: dict[str, DataSource] = field(default_factory=dict)
    metrics: dict[str, str] = field(default_factory=dict)  # custom metric -> kind
    plugins: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> config
    secret_values: frozenset[str] = frozenset()
    files: tuple[str, ...] = ()  # other files it reads (request bodies, plugins), as paths
    wasm: dict[str, str] = field(default_factory=dict)  # plugin name -> its .wasm file
    # scenario/group tag -> the names carrying it, by family (for threshold filters)
    tag_index: dict[str, dict[str, dict[str, list[str]]]] = field(default_factory=dict)
    # the tags: blocks as written ("" for defaults), kept with the run's options
    tags: dict[str, dict[str, str]] = field(default_factory=dict)
