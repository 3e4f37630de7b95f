"""From a plan's ``plugin:`` block to a command, and from a Redis reply to a body."""

from __future__ import annotations

import json
import shlex
from typing import Any


def command_of(options: object) -> list[Any]:
    """The command to run: ``command: ["SET", "k", "v"]`` as loadr's redis plugin takes it,
    or one string split like a shell would (``command: "SET k 'two words'"``)."""
    command = options.get("command") if isinstance(options, dict) else None
    if isinstance(command, str):
        command = shlex.split(command)
    if not isinstance(command, list | tuple) or not command:
        raise ValueError(
            'the request needs plugin: {command: ["GET", "key"]} (a non-empty list or string)'
        )
    return list(command)


def render(reply: object) -> tuple[bytes, int | None]:
    """The reply as a body, and its length when it is a list (the ``docs`` it returned).

    A string reply is the body as it is, so a plan's checks see ``GET``'s value unquoted;
    nil is an empty body; anything else (integers, arrays, RESP3 maps) is JSON.
    """
    if isinstance(reply, bytes):
        return reply, None
    if isinstance(reply, str):
        return reply.encode(), None
    if reply is None:
        return b"", None
    docs = len(reply) if isinstance(reply, list) else None
    return json.dumps(_plain(reply), separators=(",", ":")).encode(), docs


def _plain(value: object) -> Any:
    """A value json can write: bytes as text, sets and tuples as lists, errors as objects."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if value is None or isinstance(value, str | int | float):
        return value
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(_plain(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, Exception):  # an error inside an array (EXEC, RESP2)
        return {"error": str(value)}
    return str(value)
