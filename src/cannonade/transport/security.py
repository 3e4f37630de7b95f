"""CURVE encryption and authentication for the HQ <-> agent sockets.

Keys are ZeroMQ certificate files as ``zmq.auth.create_certificates`` writes them:
``NAME.key`` holds the public key, ``NAME.key_secret`` both. The HQ (server) loads
its secret certificate and a directory of allowed agents' public certificates; an
agent (client) loads its own secret certificate and pins the HQ's public one. A
connection from a key outside the allow-list fails the handshake: not one frame of it
reaches the HQ, and the refusal is counted.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from cannonade.errors import ConfigError

ZAP_DOMAIN = "cannonade"


@dataclass(frozen=True, slots=True)
class Curve:
    public: bytes
    secret: bytes
    server_public: bytes = b""  # a client's pin of the HQ's key
    allowed: frozenset[bytes] = frozenset()  # a server's allow-list


@dataclass(slots=True)
class Refusals:
    """Handshakes the HQ refused, by client key (z85), for the report."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    by_key: dict[str, int] = field(default_factory=dict)

    def add(self, key: str) -> None:
        with self.lock:
            self.by_key[key] = self.by_key.get(key, 0) + 1

    def total(self) -> int:
        with self.lock:
            return sum(self.by_key.values())


def generate(directory: Path, name: str) -> tuple[Path, Path]:
    """Write ``NAME.key`` and ``NAME.key_secret`` (mode 0600) in ``directory``."""
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"key name {name!r} must be a plain file name")
    directory.mkdir(parents=True, exist_ok=True)
    public, secret = Path(directory, f"{name}.key"), Path(directory, f"{name}.key_secret")
    for p in (public, secret):
        if p.exists():
            raise ConfigError(f"{p} exists; refusing to overwrite a key")
    pub_file, sec_file = zmq.auth.create_certificates(str(directory), name)
    Path(sec_file).chmod(0o600)
    return Path(pub_file), Path(sec_file)


def _load(path: str, want_secret: bool) -> tuple[bytes, bytes | None]:
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: not a readable CURVE certificate ({e})") from None
    if want_secret and not secret:
        raise ConfigError(f"{path}: holds no secret key (use the .key_secret file)")
    return public, secret


def server_curve(secret_file: str, allow_dir: str) -> Curve:
    public, secret = _load(secret_file, want_secret=True)
    d = Path(allow_dir)
    if not d.is_dir():
        raise ConfigError(f"--curve-allow {allow_dir}: not a directory")
    allowed = frozenset(_load(str(p), want_secret=False)[0] for p in sorted(d.glob("*.key")))
    if not allowed:
        raise ConfigError(f"--curve-allow {allow_dir}: holds no *.key public certificates")
    assert secret is not None
    return Curve(public, secret, allowed=allowed)


def client_curve(secret_file: str, server_public_file: str) -> Curve:
    public, secret = _load(secret_file, want_secret=True)
    server_public, _ = _load(server_public_file, want_secret=False)
    assert secret is not None
    return Curve(public, secret, server_public=server_public)


class Gatekeeper:
    """The HQ's ZAP handler: admits only allow-listed client keys, counts the rest."""

    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]], curve: Curve) -> None:
        self.refusals = Refusals()
        self._allowed = {zmq.utils.z85.encode(k) if len(k) == 32 else k for k in curve.allowed}
        self._auth = ThreadAuthenticator(ctx)
        self._auth.start()
        # The callback must be registered for the domain the sockets announce: pyzmq
        # has no wildcard for callbacks and answers "Unknown domain" otherwise.
        self._auth.configure_curve_callback(ZAP_DOMAIN, credentials_provider=self)

    def callback(self, domain: str, key: bytes) -> bool:
        if key in self._allowed:
            return True
        self.refusals.add(key.decode("ascii", "replace"))
        return False

    def stop(self) -> None:
        self._auth.stop()


def apply_server(sock: zmq.Socket[bytes], curve: Curve) -> None:
    sock.setsockopt(zmq.CURVE_SERVER, 1)
    sock.setsockopt(zmq.CURVE_SECRETKEY, curve.secret)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, curve.public)
    sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN.encode())


def apply_client(sock: zmq.Socket[bytes], curve: Curve) -> None:
    sock.setsockopt(zmq.CURVE_SERVERKEY, curve.server_public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, curve.secret)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, curve.public)
