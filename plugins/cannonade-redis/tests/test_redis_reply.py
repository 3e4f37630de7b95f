"""The redis plugin without a server: commands, reply rendering, config, bad URLs."""

import asyncio
from typing import Any

import pytest
from redis.exceptions import ResponseError

from cannonade_redis import RedisHandler, create
from cannonade_redis.reply import command_of, render


@pytest.mark.parametrize(
    ("options", "command"),
    [
        ({"command": ["SET", "k", "v"]}, ["SET", "k", "v"]),
        ({"command": ["INCRBY", "n", 5]}, ["INCRBY", "n", 5]),
        ({"command": "SET k 'two words'"}, ["SET", "k", "two words"]),
    ],
)
def test_command_of(options: dict[str, Any], command: list[Any]) -> None:
    assert command_of(options) == command


@pytest.mark.parametrize("options", [None, {}, {"command": []}, {"command": ""}, {"cmd": "GET"}])
def test_command_of_refuses_no_command(options: Any) -> None:
    with pytest.raises(ValueError, match=r"needs plugin: \{command"):
        command_of(options)


@pytest.mark.parametrize(
    ("reply", "body", "docs"),
    [
        (b"OK", b"OK", None),
        (b"\xff\x00raw", b"\xff\x00raw", None),  # a string reply is passed through
        ("text", b"text", None),
        (None, b"", None),
        (42, b"42", None),
        (1.5, b"1.5", None),
        (True, b"true", None),
        ([b"a", b"b", None, 3], b'["a","b",null,3]', 4),
        ([], b"[]", 0),
        ([[b"x", 1], [b"\xff"]], b'[["x",1],["\\ufffd"]]', 2),
        ({b"f": b"v"}, b'{"f":"v"}', None),  # a RESP3 map
        ({b"m"}, b'["m"]', None),  # a RESP3 set
        ([ResponseError("WRONGTYPE x")], b'[{"error":"WRONGTYPE x"}]', 1),
    ],
)
def test_render(reply: object, body: bytes, docs: int | None) -> None:
    assert render(reply) == (body, docs)


def test_config_is_checked() -> None:
    assert isinstance(create({}), RedisHandler)
    assert isinstance(create({"max_connections": 8, "pool_timeout": 1.0}), RedisHandler)
    with pytest.raises(ValueError, match="unknown redis plugin config maxconn; known: "):
        create({"maxconn": 8})
    with pytest.raises(ValueError, match="max_connections must be a positive int"):
        create({"max_connections": 0})


def test_a_bad_url_or_request_is_a_failed_response_not_an_exception() -> None:
    handler = create({})

    async def go() -> list[dict[str, Any]]:
        try:
            return [
                await handler.execute({"url": "redis://h:port/0", "options": {"command": "PING"}}),
                await handler.execute({"url": "redis://h/0", "options": {}}),
            ]
        finally:
            await handler.close()

    bad_url, no_command = asyncio.run(go())
    for response in (bad_url, no_command):
        assert response["status"] == 0
        assert response["status_text"] == "ValueError"
        assert response["error"]
        assert response["duration_ms"] >= 0
    assert "needs plugin:" in no_command["error"]
