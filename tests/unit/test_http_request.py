"""Request encoding from cached stems, and the bounded caches on HttpShared."""

from __future__ import annotations

import pytest

from cannonade.engine.http import HttpShared
from cannonade.errors import ConfigError
from cannonade.model.recorder import Recorder


def lines(head: bytes) -> list[bytes]:
    return head.split(b"\r\n")[:-1]


def test_bodiless_get_is_cached_and_shares_the_slot() -> None:
    rec = Recorder()
    shared = HttpShared(rec, base_url="http://h:8080/api", headers={"X-Team": "a"})
    prep = shared.prepare_cached("GET", "/items?page=1")
    assert shared.prepared_for("GET")["/items?page=1"] is prep
    assert prep.slot is rec.request_slot("/items", "GET")
    assert prep.url == "http://h:8080/api/items?page=1"
    assert prep.wire.endswith(b"\r\n\r\n")
    assert lines(prep.head) == [
        b"GET /api/items?page=1 HTTP/1.1",
        b"Host: h:8080",
        b"User-Agent: cannonade/0.1",
        b"Accept: */*",
        b"Accept-Encoding: gzip, deflate",
        b"X-Team: a",
    ]


def test_per_call_parts() -> None:
    shared = HttpShared(Recorder(), base_url="http://h")
    prep = shared.prepare(
        "post",
        "/p?a=1",
        params={"b": "x y"},
        headers={"x-team": "b", "HOST": "other", "Content-Length": "999"},
        json={"k": 1},
        data=None,
    )
    assert prep.method == "POST"
    assert prep.body == b'{"k":1}'
    assert lines(prep.head) == [
        b"POST /p?a=1&b=x+y HTTP/1.1",
        b"User-Agent: cannonade/0.1",
        b"Accept: */*",
        b"Accept-Encoding: gzip, deflate",
        b"x-team: b",
        b"HOST: other",
        b"Content-Type: application/json",
        b"Content-Length: 7",
    ]
    assert prep.url == "http://h/p?a=1&b=x+y"
    assert prep.name == "/p"


def test_content_type_given_by_the_scenario_wins() -> None:
    shared = HttpShared(Recorder(), base_url="http://h")
    prep = shared.prepare(
        "PUT", "/p", params=None, headers={"content-type": "text/csv"}, json=None, data={"a": "b"}
    )
    head = lines(prep.head)
    assert b"content-type: text/csv" in head
    assert not any(h.startswith(b"Content-Type") for h in head)
    assert prep.body == b"a=b"


def test_empty_post_says_length_zero_get_does_not() -> None:
    shared = HttpShared(Recorder(), base_url="http://h")
    assert b"Content-Length: 0" in lines(shared.prepare_cached("POST", "/").head)
    assert not any(b"Content-Length" in h for h in lines(shared.prepare_cached("GET", "/").head))


def test_header_injection_is_refused() -> None:
    shared = HttpShared(Recorder(), base_url="http://h")
    with pytest.raises(ValueError, match="line break"):
        shared.prepare("GET", "/", params=None, headers={"X": "a\r\nB: c"}, json=None, data=None)


def test_caches_are_bounded() -> None:
    shared = HttpShared(Recorder(), base_url="http://h", cache_size=3)
    for i in range(10):
        shared.prepare_cached("GET", f"/{i}")
    assert 1 <= len(shared.prepared_for("GET")) <= 3


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        HttpShared(Recorder(), timeout=0)
    with pytest.raises(ConfigError):
        HttpShared(Recorder(), max_redirects=-1)
    with pytest.raises(ConfigError, match="ftp"):
        HttpShared(Recorder(), base_url="ftp://h")
