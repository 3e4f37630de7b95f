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
    Lane,
    LoadModel,
    RampingVus,
    SharedIterations,
)
from cannonade.errors import ProtocolError

_MODELS: dict[str, type[LoadModel]] = {
    cls.__name__: cls for cls in (Cycles, RampingVus, SharedIterations, ArrivalRate)
}


def _model_to_wire(model: LoadModel) -> dict[str, Any]:
    return {"type": type(model).__name__, **dataclasses.asdict(model)}


def _model_from_wire(raw: Any) -> LoadModel:
    model_raw = dict(raw)
    model_cls = _MODELS[model_raw.pop("type")]
    return msgspec.convert(model_raw, model_cls)


def options_to_wire(options: EngineOptions) -> dict[str, Any]:
    out = dataclasses.asdict(options)
    out["model"] = _model_to_wire(options.model)
    out["lanes"] = [
        {
            "name": lane.name,
            "model": _model_to_wire(lane.model),
            "start_time": lane.start_time,
            "graceful_stop": lane.graceful_stop,
        }
        for lane in options.lanes
    ]
    return out


def options_from_wire(raw: dict[str, Any]) -> EngineOptions:
    try:
        model = _model_from_wire(raw["model"])
        http = msgspec.convert(raw["http"], HttpOptions)
        lanes = tuple(
            Lane(
                str(lane["name"]),
                _model_from_wire(lane["model"]),
                float(lane["start_time"]),
                float(lane["graceful_stop"]),
            )
            for lane in raw.get("lanes") or ()
        )
        rest = {k: v for k, v in raw.items() if k not in ("model", "http", "lanes")}
        base = msgspec.convert(rest, _Rest)
    except (KeyError, TypeError, ValueError, msgspec.ValidationError) as e:
        # ValueError: dict() of a list or string that is not (key, value) pairs.
        raise ProtocolError(f"run options are malformed: {e}") from None
    return EngineOptions(model, http, base.graceful_stop, base.max_duration, base.seed, lanes)


class _Rest(msgspec.Struct):
    graceful_stop: float
    max_duration: float
    seed: int | None = None
