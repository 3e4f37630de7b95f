"""Each endpoint of the embedded target, over real HTTP against the subprocess fixture."""

from __future__ import annotations

import gzip
import http.client
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from cannonade.target.process import TargetProcess

pytestmark = pytest.mark.e2e


class Reply:
    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.status = response.status
        self.headers = response.headers
        self.body = response.read()

    def json(self) -> Any:
        assert self.headers["content-type"] == "application/json"
        return json.loads(self.body)


@pytest.fixture
def conn(target: TargetProcess) -> Iterator[http.client.HTTPConnection]:
    connection = http.client.HTTPConnection("127.0.0.1", target.port, timeout=10)
    yield connection
    connection.close()


def call(
    conn: http.client.HTTPConnection,
    path: str,
    method: str = "GET",
    body: Any = None,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> Reply:
    conn.request(method, path, body=body, headers=headers or {}, **kwargs)
    return Reply(conn.getresponse())


def pattern(n: int) -> bytes:
    return bytes(i % 256 for i in range(n))


def test_root(conn: http.client.HTTPConnection) -> None:
    reply = call(conn, "/")
    assert reply.status == 200
    assert reply.body == b"ok\n"
    assert reply.headers["content-type"].startswith("text/plain")
    assert reply.headers["date"] is None


def test_keep_alive_reuses_one_connection(
    conn: http.client.HTTPConnection, target: TargetProcess
) -> None:
    for _ in range(20):
        assert call(conn, "/").status == 200
    stats = target.stats()
    assert stats["paths"] == {"/": 20}
    # The stats request itself comes on a connection of its own.
    assert stats["connections"]["opened"] == 2


def test_head_has_headers_but_no_body(conn: http.client.HTTPConnection) -> None:
    reply = call(conn, "/", method="HEAD")
    assert reply.status == 200
    assert reply.headers["content-length"] == "3"
    assert reply.body == b""
    assert call(conn, "/").body == b"ok\n"  # the connection is still in step
    for path in ("/echo", "/nowhere", "/status/503", "/delay?ms=1"):
        reply = call(conn, path, method="HEAD")
        assert reply.body == b""
    assert call(conn, "/").body == b"ok\n"


def test_unknown_path_is_404_and_wrong_method_405(conn: http.client.HTTPConnection) -> None:
    assert call(conn, "/no/such/thing").status == 404
    reply = call(conn, "/", method="DELETE")
    assert reply.status == 405
    assert "GET" in reply.headers["allow"]
    reply = call(conn, "/echo")
    assert reply.status == 405
    assert reply.headers["allow"] == "POST, PUT"


def test_fixed_delay(conn: http.client.HTTPConnection, target: TargetProcess) -> None:
    started = time.monotonic()
    reply = call(conn, "/delay?ms=150")
    elapsed = time.monotonic() - started
    assert reply.status == 200
    assert reply.json() == {"delay_ms": 150.0, "dist": "fixed"}
    assert elapsed >= 0.15  # never early; lateness is not asserted
    assert target.delays() == [150.0]
    assert target.stats()["delays"]["count"] == 1


@pytest.mark.parametrize(
    ("query", "dist"),
    [
        ("dist=fixed&ms=5", "fixed"),
        ("dist=uniform&min=1&max=8", "uniform"),
        ("dist=lognormal&median=3&p99=10", "lognormal"),
        ("dist=bimodal&fast=1&slow=9&p_slow=0.5", "bimodal"),
        ("dist=exponential&mean=3", "exponential"),
    ],
)
def test_delay_distributions_record_what_they_inject(
    conn: http.client.HTTPConnection, target: TargetProcess, query: str, dist: str
) -> None:
    answered = []
    for _ in range(10):
        reply = call(conn, f"/delay?{query}")
        assert reply.status == 200
        doc = reply.json()
        assert doc["dist"] == dist
        answered.append(doc["delay_ms"])
    assert target.delays() == answered
    stats = target.stats()
    assert stats["delays"]["count"] == 10
    assert stats["delays"]["sum_ms"] == pytest.approx(sum(answered))
    assert stats["delays"]["by_dist"][dist]["count"] == 10
    assert stats["paths"] == {"/delay": 10}


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("", "ms"),
        ("ms=x", "ms"),
        ("dist=uniform&min=9&max=1", "max"),
        ("dist=nope", "dist"),
        ("dist=lognormal&median=20", "p99"),
    ],
)
def test_delay_bad_parameters(
    conn: http.client.HTTPConnection, target: TargetProcess, query: str, param: str
) -> None:
    reply = call(conn, f"/delay?{query}")
    assert reply.status == 400
    assert f"'{param}'" in reply.body.decode()
    assert target.delays() == []


@pytest.mark.parametrize("code", [200, 201, 299, 302, 404, 418, 500, 503, 599])
def test_status(conn: http.client.HTTPConnection, code: int) -> None:
    reply = call(conn, f"/status/{code}")
    assert reply.status == code
    assert reply.body.startswith(str(code).encode())


def test_status_without_body(conn: http.client.HTTPConnection) -> None:
    for code in (204, 304):
        reply = call(conn, f"/status/{code}")
        assert reply.status == code
        assert reply.body == b""
    assert call(conn, "/").status == 200


def test_status_any_method(conn: http.client.HTTPConnection) -> None:
    assert call(conn, "/status/201", method="POST", body=b"x").status == 201
    assert call(conn, "/status/202", method="PATCH").status == 202


@pytest.mark.parametrize("code", ["100", "199", "600", "abc", "20x", ""])
def test_status_out_of_range(conn: http.client.HTTPConnection, code: str) -> None:
    assert call(conn, f"/status/{code}").status in (400, 404)


@pytest.mark.parametrize("n", [0, 1, 1000, 65_536, 1_000_000])
def test_bytes(conn: http.client.HTTPConnection, n: int) -> None:
    reply = call(conn, f"/bytes/{n}")
    assert reply.status == 200
    assert reply.headers["content-length"] == str(n)
    assert reply.body == pattern(n)


def test_bytes_limit(conn: http.client.HTTPConnection) -> None:
    assert call(conn, f"/bytes/{100 * 1024 * 1024 + 1}").status == 400
    assert call(conn, "/bytes/-1").status == 400
    reply = call(conn, f"/bytes/{100 * 1024 * 1024}", method="HEAD")
    assert reply.status == 200
    assert reply.headers["content-length"] == str(100 * 1024 * 1024)


@pytest.mark.parametrize("n", [0, 5000, 3_000_000])
def test_bytes_gzip(conn: http.client.HTTPConnection, n: int) -> None:
    reply = call(conn, f"/bytes/{n}?gzip=1", headers={"Accept-Encoding": "gzip"})
    assert reply.status == 200
    assert reply.headers["content-encoding"] == "gzip"
    assert gzip.decompress(reply.body) == pattern(n)
    assert len(reply.body) < n + 100


def test_bytes_gzip_needs_accept_encoding(conn: http.client.HTTPConnection) -> None:
    reply = call(conn, "/bytes/5000?gzip=1", headers={"Accept-Encoding": "identity"})
    assert reply.headers["content-encoding"] is None
    assert reply.body == pattern(5000)


@pytest.mark.parametrize("n", [0, 10, 100_000, 1_000_000])
def test_chunked_response(conn: http.client.HTTPConnection, n: int) -> None:
    reply = call(conn, f"/chunked/{n}")
    assert reply.status == 200
    assert reply.headers["transfer-encoding"] == "chunked"
    assert reply.headers["content-length"] is None
    assert reply.body == pattern(n)


def test_echo(conn: http.client.HTTPConnection) -> None:
    reply = call(conn, "/echo", "POST", b'{"a": 1}', {"Content-Type": "application/json"})
    assert reply.status == 200
    assert reply.body == b'{"a": 1}'
    assert reply.headers["content-type"] == "application/json"
    reply = call(conn, "/echo", "PUT", b"\x00\xff" * 1000, {"Content-Type": "x/y"})
    assert reply.body == b"\x00\xff" * 1000
    assert reply.headers["content-type"] == "x/y"
    reply = call(conn, "/echo", "POST", b"")
    assert reply.status == 200
    assert reply.body == b""


def test_echo_chunked_request_body(conn: http.client.HTTPConnection) -> None:
    pieces = [b"first,", b"", b"second," * 1000, b"third"]
    reply = call(
        conn,
        "/echo",
        "POST",
        iter([p for p in pieces if p]),
        {"Content-Type": "text/plain", "Transfer-Encoding": "chunked"},
        encode_chunked=True,
    )
    assert reply.status == 200
    assert reply.body == b"".join(pieces)


def test_echo_large_body(conn: http.client.HTTPConnection) -> None:
    body = pattern(5_000_000)
    reply = call(conn, "/echo", "POST", body, {"Content-Type": "application/octet-stream"})
    assert reply.body == body


def test_headers(conn: http.client.HTTPConnection) -> None:
    reply = call(conn, "/headers", headers={"X-Test": "one", "Cookie": "a=b"})
    doc = reply.json()
    assert doc["x-test"] == "one"
    assert doc["cookie"] == "a=b"
    assert doc["host"] == f"127.0.0.1:{conn.port}"


def test_cookies(conn: http.client.HTTPConnection) -> None:
    reply = call(conn, "/cookies/set?session=abc123&theme=dark")
    assert reply.status == 200
    assert reply.headers.get_all("set-cookie") == ["session=abc123; Path=/", "theme=dark; Path=/"]
    reply = call(conn, "/cookies", headers={"Cookie": "session=abc123; theme=dark"})
    assert reply.json() == {"session": "abc123", "theme": "dark"}
    assert call(conn, "/cookies").json() == {}


@pytest.mark.parametrize("query", ["", "a=b%0d%0aX-Evil:%201", "a%20b=c", "a=b;c"])
def test_cookies_set_rejects_what_would_break_the_header(
    conn: http.client.HTTPConnection, query: str
) -> None:
    reply = call(conn, f"/cookies/set?{query}")
    assert reply.status == 400
    assert reply.headers["set-cookie"] is None
    assert reply.headers["x-evil"] is None


def test_redirect_chain(conn: http.client.HTTPConnection) -> None:
    path, hops = "/redirect/3", []
    while True:
        reply = call(conn, path)
        if reply.status != 302:
            break
        path = reply.headers["location"]
        hops.append(path)
    assert hops == ["/redirect/2", "/redirect/1", "/"]
    assert reply.body == b"ok\n"
    assert call(conn, "/redirect/0").status == 400


def test_redirect_to(conn: http.client.HTTPConnection) -> None:
    reply = call(conn, "/redirect-to?url=" + quote("/status/201?x=1", safe=""))
    assert reply.status == 302
    assert reply.headers["location"] == "/status/201?x=1"
    assert call(conn, "/redirect-to").status == 400
    assert call(conn, "/redirect-to?url=/a%0d%0aX-Evil:1").status == 400


def test_json(conn: http.client.HTTPConnection) -> None:
    first = call(conn, "/json").json()
    second = call(conn, "/json").json()
    assert first["token"].startswith("tok-")
    assert first["token"] != second["token"]
    assert first["user"] == {"name": "ada"}
    assert [item["id"] for item in first["items"]] == [1, 2, 3]


def test_login_and_private(conn: http.client.HTTPConnection) -> None:
    assert call(conn, "/private").status == 401
    login = call(
        conn,
        "/login",
        "POST",
        json.dumps({"username": "ada", "password": "lovelace"}),
        {"Content-Type": "application/json"},
    )
    assert login.status == 200
    token = login.json()["token"]
    reply = call(conn, "/private", headers={"Authorization": f"Bearer {token}"})
    assert reply.status == 200
    assert reply.json()["user"] == "ada"
    assert call(conn, "/private", headers={"Authorization": "Bearer forged"}).status == 401
    assert call(conn, "/private", headers={"Authorization": f"Basic {token}"}).status == 401


def test_login_with_a_form_and_a_wrong_password(conn: http.client.HTTPConnection) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    reply = call(conn, "/login", "POST", "username=bob&password=secret", form)
    assert reply.status == 200
    assert reply.json()["user"] == "bob"
    assert call(conn, "/login", "POST", "username=bob&password=wrong", form).status == 401
    wrong = json.dumps({"password": "wrong"})
    json_ct = {"Content-Type": "application/json"}
    assert call(conn, "/login", "POST", wrong, json_ct).status == 401
    assert call(conn, "/login", "POST", "{not json", json_ct).status == 400
    assert call(conn, "/login").status == 405


def test_stats_does_not_count_itself(target: TargetProcess) -> None:
    for _ in range(3):
        target.stats()
        target.delays()
    target.reset()
    assert target.stats()["requests"] == 0
