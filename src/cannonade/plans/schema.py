"""The plan format as JSON Schema (draft 2020-12): what ``cannonade schema`` prints for
editors, and the first of the checks ``cannonade validate`` runs (``checks.py`` adds
what a schema cannot say: undefined variables, unknown plugins, executors' rules)."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

DURATION: Schema = {
    "description": "a duration: 30s, 1m30s, 250ms, 2h, or a number of seconds",
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": r"^\s*([0-9]+(\.[0-9]+)?(ms|us|µs|s|m|h)\s*)+$"},
    ],
}
COUNT: Schema = {"type": "integer", "minimum": 0}
POSITIVE: Schema = {"type": "integer", "minimum": 1}
TEXT: Schema = {"type": "string"}
TAGS: Schema = {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}}
HEADERS: Schema = {"type": "object", "additionalProperties": {"type": ["string", "number"]}}


def _obj(properties: Schema, required: tuple[str, ...] = (), **extra: Any) -> Schema:
    out: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        out["required"] = list(required)
    out.update(extra)
    return out


def _typed(kind: str, properties: Schema, required: tuple[str, ...] = ()) -> Schema:
    """One entry of an extract/assert list: ``{type: KIND, ...}``."""
    props = {"type": {"const": kind}, **properties}
    return _obj(props, ("type", *required))


_DEFAULT = {"default": {"type": ["string", "number", "boolean", "null"]}}
EXTRACTOR: Schema = {
    "oneOf": [
        _typed("jsonpath", {"name": TEXT, "expression": TEXT, **_DEFAULT}, ("name", "expression")),
        _typed(
            "regex",
            {"name": TEXT, "expression": TEXT, "group": COUNT, **_DEFAULT},
            ("name", "expression"),
        ),
        _typed("header", {"name": TEXT, "header": TEXT, **_DEFAULT}, ("name", "header")),
        _typed(
            "boundary", {"name": TEXT, "left": TEXT, "right": TEXT, **_DEFAULT}, ("name", "left")
        ),
        _typed(
            "css",
            {"name": TEXT, "expression": TEXT, "attribute": TEXT, **_DEFAULT},
            ("name", "expression"),
        ),
        _typed(
            "plugin", {"name": TEXT, "plugin": TEXT, "config": {}, **_DEFAULT}, ("name", "plugin")
        ),
    ]
}
_ANY_VALUE: Schema = {}
ASSERTION: Schema = {
    "oneOf": [
        _typed("status", {"name": TEXT, "equals": {"type": ["integer", "string"]}}, ("equals",)),
        _typed("duration", {"name": TEXT, "max": DURATION}, ("max",)),
        _typed(
            "jsonpath",
            {"name": TEXT, "expression": TEXT, "equals": _ANY_VALUE, "exists": {"type": "boolean"}},
            ("expression",),
        ),
        _typed("body_contains", {"name": TEXT, "value": TEXT}, ("value",)),
        _typed("body_matches", {"name": TEXT, "pattern": TEXT}, ("pattern",)),
        _typed("plugin", {"name": TEXT, "plugin": TEXT, "config": {}}, ("plugin",)),
    ]
}
BODY: Schema = {
    "anyOf": [
        {"type": "string"},
        _obj({"json": _ANY_VALUE}, ("json",)),
        _obj({"form": {"type": "object"}}, ("form",)),
        _obj({"file": TEXT, "content_type": TEXT}, ("file",)),
        _obj(
            {
                "multipart": {
                    "type": "object",
                    "additionalProperties": {
                        "anyOf": [
                            {"type": ["string", "number", "boolean"]},
                            _obj(
                                {"file": TEXT, "filename": TEXT, "content_type": TEXT},
                                ("file",),
                            ),
                        ]
                    },
                }
            },
            ("multipart",),
        ),
    ]
}
WS_BLOCK: Schema = _obj(
    {
        "send": {"type": "array", "items": {"type": ["string", "object"]}},
        "receive_count": COUNT,
        "timeout": DURATION,
    }
)
REQUEST: Schema = _obj(
    {
        "name": TEXT,
        "protocol": TEXT,
        "method": {"type": "string", "pattern": "^[A-Za-z]+$"},
        "url": TEXT,
        "params": {"type": "object"},
        "headers": HEADERS,
        "body": BODY,
        "timeout": DURATION,
        "follow_redirects": {"type": "boolean"},
        "tags": TAGS,
        "extract": {"type": "array", "items": EXTRACTOR},
        "assert": {"type": "array", "items": ASSERTION},
        "checks": {"type": "array", "items": ASSERTION},
        "ws": WS_BLOCK,
        "plugin": {"type": "object"},
    },
    ("url",),
)
THINK_TIME: Schema = {
    "anyOf": [
        DURATION,
        _obj({"type": {"const": "constant"}, "duration": DURATION}, ("type", "duration")),
        _obj(
            {"type": {"const": "uniform"}, "min": DURATION, "max": DURATION}, ("type", "min", "max")
        ),
        _obj(
            {"type": {"const": "gaussian"}, "mean": DURATION, "std_dev": DURATION},
            ("type", "mean", "std_dev"),
        ),
    ]
}
STEPS: Schema = {"type": "array", "items": {"$ref": "#/$defs/step"}}
STEP: Schema = {
    "oneOf": [
        _obj({"request": REQUEST}, ("request",)),
        _obj({"think_time": THINK_TIME}, ("think_time",)),
        _obj({"group": _obj({"name": TEXT, "steps": STEPS}, ("name", "steps"))}, ("group",)),
        _obj({"js": TEXT}, ("js",)),
    ]
}
STAGE: Schema = _obj({"duration": DURATION, "target": COUNT}, ("duration", "target"))
_COMMON: Schema = {
    "executor": {
        "enum": [
            "constant-vus",
            "ramping-vus",
            "constant-arrival-rate",
            "ramping-arrival-rate",
            "per-vu-iterations",
            "shared-iterations",
            "cycles",
        ]
    },
    "start_time": DURATION,
    "graceful_stop": DURATION,
    "think_time": THINK_TIME,
    "tags": TAGS,
    "flow": STEPS,
    # executor options (which apply to which executor is checked in checks.py)
    "vus": POSITIVE,
    "duration": DURATION,
    "start_vus": COUNT,
    "stages": {"type": "array", "items": STAGE, "minItems": 1},
    "rate": {"type": "number", "exclusiveMinimum": 0},
    "start_rate": {"type": "number", "minimum": 0},
    "time_unit": DURATION,
    "pre_allocated_vus": COUNT,
    "max_vus": COUNT,
    "iterations": POSITIVE,
    "users": {"type": ["string", "integer"]},
    "hits": POSITIVE,
    "rampup": DURATION,
}
SCENARIO: Schema = _obj(_COMMON, ("executor", "flow"))
THRESHOLDS: Schema = {
    "type": "object",
    "additionalProperties": {"type": "array", "items": {"type": "string"}, "minItems": 1},
}


def plan_schema() -> Schema:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://cannonade.invalid/schema/plan.json",
        "title": "cannonade test plan (loadr's YAML format)",
        "type": "object",
        "additionalProperties": False,
        "required": ["scenarios"],
        "properties": {
            "name": TEXT,
            "description": TEXT,
            "defaults": _obj(
                {
                    "http": _obj(
                        {
                            "base_url": TEXT,
                            "timeout": DURATION,
                            "headers": HEADERS,
                            "cookies": {"type": "object", "additionalProperties": TEXT},
                            "follow_redirects": {"type": "boolean"},
                        }
                    ),
                    "tags": TAGS,
                }
            ),
            "variables": {"type": "object"},
            "secrets": {
                "type": "object",
                "additionalProperties": {
                    "anyOf": [
                        {"type": "string", "description": "the environment variable to read"},
                        _obj({"env": TEXT}, ("env",)),
                    ]
                },
            },
            "data": {
                "type": "object",
                "additionalProperties": _obj(
                    {
                        "type": {"const": "csv"},
                        "path": TEXT,
                        "mode": {"enum": ["shared", "per_vu"]},
                        "on_eof": {"enum": ["recycle", "stop"]},
                        "delimiter": {"type": "string", "minLength": 1, "maxLength": 1},
                    },
                    ("type", "path"),
                ),
            },
            "metrics": {
                "type": "object",
                "additionalProperties": _obj(
                    {"kind": {"enum": ["counter", "gauge", "rate", "trend"]}, "description": TEXT},
                    ("kind",),
                ),
            },
            "plugins": {
                "type": "array",
                "items": _obj({"name": TEXT, "config": {}, "path": TEXT}, ("name",)),
            },
            "scenarios": {
                "type": "object",
                "minProperties": 1,
                "additionalProperties": SCENARIO,
            },
            "thresholds": THRESHOLDS,
        },
        "$defs": {"step": STEP},
    }
