"""The per-VU cookie jar: parsing, matching, expiry and the header cache."""

from __future__ import annotations

import math

from cannonade.engine.http.cookies import CookieJar, default_path, parse_set_cookie, path_matches


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_parse_attributes() -> None:
    c = parse_set_cookie(
        "sid=abc; Domain=.Example.com; Path=/app; Secure; HttpOnly; Max-Age=60",
        "www.example.com",
        "/x",
        100.0,
    )
    assert c is not None
    assert (c.name, c.value, c.domain, c.host_only, c.path, c.secure) == (
        "sid",
        "abc",
        "example.com",
        False,
        "/app",
        True,
    )
    assert c.expires == 160.0


def test_parse_rejects_foreign_domain_and_garbage() -> None:
    assert parse_set_cookie("a=b; Domain=other.com", "example.com", "/", 0) is None
    assert parse_set_cookie("a=b; Domain=1.2.3", "4.1.2.3", "/", 0) is None
    assert parse_set_cookie("novalue", "h", "/", 0) is None
    assert parse_set_cookie("=v", "h", "/", 0) is None


def test_expires_and_max_age_priority() -> None:
    c = parse_set_cookie("a=b; Expires=Wed, 21 Oct 2015 07:28:00 GMT", "h", "/", 0)
    assert c is not None
    assert c.expires == 1445412480.0
    c = parse_set_cookie("a=b; Max-Age=0; Expires=Wed, 21 Oct 2035 07:28:00 GMT", "h", "/", 5)
    assert c is not None
    assert c.expires == -math.inf


def test_default_path_and_matching() -> None:
    assert default_path("/a/b/c") == "/a/b"
    assert default_path("/a") == "/"
    assert default_path("") == "/"
    assert path_matches("/a/b", "/a")
    assert path_matches("/a", "/a")
    assert path_matches("/a/b", "/a/")
    assert not path_matches("/ab", "/a")


def test_jar_round_trip_and_scoping() -> None:
    clock = Clock()
    jar = CookieJar(now=clock)
    assert not jar
    jar.update(["sid=1; Path=/", "pref=x; Path=/app", "sec=s; Secure"], "h.test", "/login")
    assert len(jar) == 3
    assert jar.header("k1", "h.test", "/app/page", False) == b"pref=x; sid=1"
    assert jar.header("k2", "h.test", "/", True) == b"sid=1; sec=s"
    assert jar.header("k3", "other.test", "/", True) is None
    assert jar.get("sid") == "1"


def test_jar_cache_invalidates_on_change_and_expiry() -> None:
    clock = Clock()
    jar = CookieJar(now=clock)
    jar.update(["a=1; Max-Age=10"], "h", "/")
    assert jar.header("k", "h", "/", False) == b"a=1"
    jar.update(["b=2"], "h", "/")
    assert jar.header("k", "h", "/", False) == b"a=1; b=2"
    clock.now += 11
    assert jar.header("k", "h", "/", False) == b"b=2"
    jar.update(["b=gone; Max-Age=0"], "h", "/")
    assert jar.header("k", "h", "/", False) is None
    assert not jar


def test_domain_cookie_reaches_subdomains_host_only_does_not() -> None:
    jar = CookieJar()
    jar.update(["d=1; Domain=example.com", "h=2"], "example.com", "/")
    assert jar.header("a", "api.example.com", "/", False) == b"d=1"
    assert jar.header("b", "example.com", "/", False) == b"d=1; h=2"


def test_manual_set_and_clear() -> None:
    jar = CookieJar()
    jar.set("tok", "v", domain="H")
    assert jar.header("x", "h", "/", False) == b"tok=v"
    jar.clear()
    assert jar.header("x", "h", "/", False) is None
