""":class:`EngineOptions` as plain JSON values, for the run command an agent receives."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec

from cannonade.config import (
    ArrivalRate,
    Cycles,
    EngineOptions,
    HttpOptions,
    LoadModel,
    RampingVus,
    SharedIterations,
)
from cannonade.errors import ProtocolError

_MODELS: dict[str, type[LoadModel]] = {
    cls.__name__: cls for cls in (Cycles, RampingVus, SharedIterations, ArrivalRate)
}


def options_to_wire(options: EngineOptions) -> dict[str, Any]:
    out = dataclasses.asdict(options)
    out["model"] = {"type": type(options.model).__name__, **dataclasses.asdict(options.model)}
    return out


def options_from_wire(raw: dict[str, Any]) -> EngineOptions:
    try:
        model_raw = dict(raw["model"])
        model_cls = _MODELS[model_raw.pop("type")]
        model = msgspec.convert(model_raw, model_cls)
        http = msgspec.convert(raw["http"], HttpOptions)
        rest = {k: v for k, v in raw.items() if k not in ("model", "http")}
        base = msgspec.convert(rest, _Rest)
    except (KeyError, TypeError, ValueError, msgspec.ValidationError) as e:
        # ValueError: dict() of a list or string that is not (key, value) pairs.
        raise ProtocolError(f"run options are malformed: {e}") from None
    return EngineOptions(model, http, base.graceful_stop, base.max_duration, base.seed)


class _Rest(msgspec.Struct):
    graceful_stop: float
    max_duration: float
    seed: int | None = None
