"""Lazy response reading: head splitting, de-chunking, decompression, charsets."""

from __future__ import annotations

import gzip
import zlib

import orjson
import pytest

from cannonade.engine.http import ContentDecodeError, HttpStatusError, Response
from cannonade.engine.http.response import Headers, might_set_cookie, parse_head
from cannonade.errors import CannonadeError


def resp(raw: bytes, method: str = "GET", more: list[bytes] | None = None) -> Response:
    return Response(method, "http://h/x", int(raw[9:12]), 0.01, raw, more)


def head(field: bytes, length: int) -> bytes:
    return b"HTTP/1.1 200 OK\r\n" + field + b"\r\nContent-Length: %d\r\n\r\n" % length


def test_parse_head_skips_interim() -> None:
    data = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nA: 1\r\nb:  two \r\n\r\nbody"
    head = parse_head(data)
    assert head is not None
    assert head.status == 201
    assert head.headers == [(b"A", b"1"), (b"b", b"two")]
    assert data[head.body_offset :] == b"body"
    assert parse_head(b"HTTP/1.1 200 OK\r\nA: 1\r\n") is None


def test_headers_case_insensitive_and_repeated() -> None:
    h = Headers([(b"Set-Cookie", b"a=1"), (b"set-cookie", b"b=2"), (b"X-Y", b"z")])
    assert h["x-y"] == "z"
    assert h["SET-COOKIE"] == "a=1, b=2"
    assert h.get_all("Set-Cookie") == ["a=1", "b=2"]
    assert "X-y" in h
    assert 3 not in h
    assert len(h) == 2
    assert sorted(h) == ["set-cookie", "x-y"]
    assert h.raw[0] == ("Set-Cookie", "a=1")


def test_body_content_length_and_split_chunks() -> None:
    r = resp(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhe", more=[b"llo"])
    assert r.body == b"hello"
    assert r.text == "hello"
    assert r.raw_size == len(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")


def test_body_chunked() -> None:
    r = resp(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    assert r.body == b"abcde"


def test_gzip_and_deflate_are_decoded_lazily() -> None:
    payload = orjson.dumps({"k": [1, 2, 3]})
    gz = gzip.compress(payload)
    r = resp(head(b"Content-Encoding: gzip", len(gz)) + gz)
    assert r.json() == {"k": [1, 2, 3]}
    for body in (zlib.compress(payload), zlib.compress(payload)[2:-4]):  # zlib and raw deflate
        r = resp(head(b"Content-Encoding: deflate", len(body)) + body)
        assert r.body == payload


def test_bad_gzip_raises_decode_error() -> None:
    r = resp(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n\r\nnot")
    with pytest.raises(ContentDecodeError):
        _ = r.body


def test_unknown_encoding_is_left_alone() -> None:
    r = resp(b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 3\r\n\r\nabc")
    assert r.body == b"abc"


def test_text_charset() -> None:
    r = resp(head(b'Content-Type: text/plain; charset="latin-1"', 1) + b"\xe9")
    assert r.text == "é"
    r = resp(head(b"Content-Type: text/plain; charset=nope", 2) + b"\xc3\xa9")
    assert r.text == "é"


def test_head_response_has_no_body() -> None:
    r = resp(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", method="HEAD")
    assert r.body == b""
    assert r.headers["content-length"] == "100"


def test_error_response_and_raise_for_status() -> None:
    r = Response.failure("GET", "http://h/", 0.5, "refused", "nope")
    assert not r.ok
    assert r.body == b""
    assert len(r.headers) == 0
    with pytest.raises(HttpStatusError, match="refused") as info:
        r.raise_for_status()
    assert isinstance(info.value, CannonadeError)
    assert info.value.response is r
    bad = resp(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n")
    assert not bad.ok
    with pytest.raises(HttpStatusError, match="503"):
        bad.raise_for_status()
    good = resp(b"HTTP/1.1 204 No Content\r\n\r\n")
    assert good.raise_for_status() is good


@pytest.mark.parametrize("whole", [True, False])
def test_might_set_cookie(whole: bool) -> None:
    assert not might_set_cookie(b"HTTP/1.1 200 OK\r\nA: set-cookie:\r\n\r\nbody", whole)
    assert might_set_cookie(b"HTTP/1.1 200 OK\r\nSET-COOKIE: a=1\r\n\r\n", whole)
    assert might_set_cookie(b"HTTP/1.1 200 OK\r\nsEt-CoOkIe: a=1\r\n\r\n", whole)
    big = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000
    assert not might_set_cookie(big, whole)
    assert might_set_cookie(big.replace(b"Content", b"Set-Cookie: a=1\r\nContent"), whole)


def test_might_set_cookie_looks_properly_at_a_split_head() -> None:
    assert might_set_cookie(b"HTTP/1.1 200 OK\r\nA: 1", False)
    r = resp(b"HTTP/1.1 200 OK\r\nA: 1\r\n\r\nx\r\nSet-Cookie: no\r\n")
    assert r.set_cookie_values() == []


def test_set_cookie_values() -> None:
    r = resp(b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1; Path=/\r\nset-cookie: b=2\r\n\r\n")
    assert r.set_cookie_values() == ["a=1; Path=/", "b=2"]
