"""ZeroMQ sockets as cannonade uses them; the only module that imports ``zmq``.

Every socket is one-frame-per-message: a multipart message (which no cannonade peer
sends) is read whole and handed up as :data:`REJECTED_MULTIPART` so the receiver counts
it instead of mis-parsing its parts. Receives never block longer than asked; sends
never block at all (a full queue is the caller's to count).
"""

from __future__ import annotations

import struct

import zmq
import zmq.asyncio
import zmq.utils.monitor

from cannonade.errors import ConfigError
from cannonade.protocol.deltas import MAX_FRAME
from cannonade.transport.security import Curve, Gatekeeper, apply_client, apply_server

REJECTED_MULTIPART = b""  # never a valid single frame, so it cannot be confused
# What ZeroMQ lets through, above the protocol's own cap (MAX_FRAME, checked by every
# decoder): a frame between the two is read and then refused *by name*, counted with
# its size and source; only one beyond this ceiling makes ZeroMQ drop the connection
# (the peer reconnects) without the receiver ever seeing it.
CEILING = 4 * MAX_FRAME
LINGER_MS = 1000


class Socket:
    """A blocking-style ZeroMQ socket with timeouts, for the HQ's and agent's loops."""

    def __init__(self, sock: zmq.Socket[bytes]) -> None:
        self._sock = sock

    @property
    def endpoint(self) -> str:
        return str(self._sock.getsockopt_string(zmq.LAST_ENDPOINT))

    @property
    def port(self) -> int:
        return int(self.endpoint.rsplit(":", 1)[1])

    def send(self, frame: bytes) -> bool:
        """Queue one frame; False when the queue is full (the peer is slow or gone)."""
        try:
            self._sock.send(frame, zmq.NOBLOCK, copy=len(frame) < 65536)
        except zmq.Again:
            return False
        return True

    def recv(self) -> bytes | None:
        """One message if one is waiting, else None."""
        try:
            frames = self._sock.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return None
        if len(frames) != 1:
            return REJECTED_MULTIPART
        return frames[0]

    def recv_routed(self) -> tuple[bytes, bytes] | None:
        """ROUTER: (peer identity, frame) if a message is waiting."""
        try:
            frames = self._sock.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return None
        if len(frames) != 2:
            return (frames[0] if frames else b""), REJECTED_MULTIPART
        return frames[0], frames[1]

    def send_routed(self, peer: bytes, frame: bytes) -> bool:
        try:
            self._sock.send_multipart([peer, frame], zmq.NOBLOCK)
        except (zmq.Again, zmq.ZMQError):
            return False  # peer gone (ROUTER_MANDATORY) or queue full
        return True

    def close(self) -> None:
        self._sock.close(linger=LINGER_MS)


class Poller:
    def __init__(self, *sockets: Socket) -> None:
        self._poller = zmq.Poller()
        self._by_raw: dict[zmq.Socket[bytes], Socket] = {}
        for s in sockets:
            self.add(s)

    def add(self, s: Socket) -> None:
        self._poller.register(s._sock, zmq.POLLIN)
        self._by_raw[s._sock] = s

    def poll(self, timeout: float) -> list[Socket]:
        """Sockets with a message waiting, after at most ``timeout`` seconds."""
        ready = self._poller.poll(max(0, int(timeout * 1000)))
        return [self._by_raw[raw] for raw, _ in ready if raw in self._by_raw]


class Transport:
    """One ZeroMQ context per process, and the sockets it makes."""

    def __init__(self) -> None:
        self._ctx = zmq.Context()

    def secure(self, curve: Curve) -> Gatekeeper:
        """Start admitting only allow-listed CURVE clients; call before binding."""
        return Gatekeeper(self._ctx, curve)

    def _socket(self, kind: int, max_message: int) -> zmq.Socket[bytes]:
        s: zmq.Socket[bytes] = self._ctx.socket(kind)
        s.setsockopt(zmq.LINGER, LINGER_MS)
        # A peer can send nothing bigger than this: zmq drops the connection instead of
        # buffering a hostile multi-gigabyte frame (see CEILING).
        s.setsockopt(zmq.MAXMSGSIZE, max_message)
        return s

    def bind(
        self, kind: str, host: str, port: int, curve: Curve | None, max_message: int = CEILING
    ) -> Socket:
        """``kind``: "pub" or "pull". ``port`` 0 picks a free port."""
        s = self._socket(_KINDS[kind], max_message)
        if ":" in host:
            s.setsockopt(zmq.IPV6, 1)
        if kind == "pub":
            # Commands are small and re-sent every second; never let a slow
            # subscriber make the HQ hold an unbounded backlog.
            s.setsockopt(zmq.SNDHWM, 10_000)
        else:
            s.setsockopt(zmq.RCVHWM, 100_000)
        if curve is not None:
            apply_server(s, curve)
        addr = f"tcp://{_host(host)}:{'*' if port == 0 else port}"
        try:
            s.bind(addr)
        except zmq.ZMQError as e:
            s.close(linger=0)
            raise ConfigError(f"cannot listen on {addr}: {e}") from None
        return Socket(s)

    def connect(
        self,
        kind: str,
        host: str,
        port: int,
        curve: Curve | None,
        identity: str = "",
        max_message: int = CEILING,
    ) -> Socket:
        """``kind``: "sub" (subscribed to ``""``, which includes every channel) or "push"."""
        s = self._socket(_KINDS[kind], max_message)
        if ":" in host:
            s.setsockopt(zmq.IPV6, 1)
        s.setsockopt(zmq.RECONNECT_IVL, 100)
        s.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        if kind == "sub":
            s.setsockopt(zmq.SUBSCRIBE, b"")
            if identity:
                # OCT turrets subscribe to their uuid as well; "" already matches it.
                s.setsockopt(zmq.SUBSCRIBE, identity.encode())
        else:
            s.setsockopt(zmq.SNDHWM, 10_000)
            # Only deliver to a live connection: buffered frames for a dead HQ would be
            # lost with it, and the agent's own buffer resends what was not acked.
            s.setsockopt(zmq.IMMEDIATE, 1)
        if curve is not None:
            apply_client(s, curve)
        addr = f"tcp://{_host(host)}:{port}"
        try:
            s.connect(addr)
        except zmq.ZMQError as e:
            s.close(linger=0)
            raise ConfigError(f"cannot connect to {addr}: {e}") from None
        return Socket(s)

    def bind_ipc(self, path: str) -> Socket:
        """The agent's end of its cannons' channel (ROUTER)."""
        s = self._socket(zmq.ROUTER, CEILING)
        s.setsockopt(zmq.ROUTER_MANDATORY, 1)
        s.setsockopt(zmq.RCVHWM, 0)  # local and acknowledged upstream: never drop
        s.bind(f"ipc://{path}")
        return Socket(s)

    def watch_handshakes(self, s: Socket) -> Socket:
        """A socket that receives ``s``'s failed-handshake events (see
        :func:`handshake_failure`), so a refused agent can say why it never joins."""
        events = zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
        events |= zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
        return Socket(s._sock.get_monitor_socket(events))

    def close(self) -> None:
        self._ctx.destroy(linger=LINGER_MS)


def handshake_failure(monitor: Socket) -> str | None:
    """Read one event from a :meth:`Transport.watch_handshakes` socket: why the
    handshake failed, in words, or None if nothing is waiting."""
    try:
        frames = monitor._sock.recv_multipart(zmq.NOBLOCK)
    except zmq.Again:
        return None
    try:
        event = zmq.utils.monitor.parse_monitor_message(frames)["event"]
    except (ValueError, KeyError, struct.error):
        return None
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return (
            "the HQ refused this agent's CURVE key "
            "(is its .key file in the HQ's --curve-allow directory?)"
        )
    if event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        return "the CURVE handshake failed (does --curve-hq hold the HQ's public key?)"
    return "the HQ spoke a protocol this agent does not (a different ZeroMQ or CURVE setting?)"


class AsyncDealer:
    """A cannon's end of its agent's channel, for the cannon's asyncio loop."""

    def __init__(self, path: str, identity: bytes) -> None:
        self._ctx = zmq.asyncio.Context()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.IDENTITY, identity)
        self._sock.setsockopt(zmq.LINGER, 5000)
        self._sock.setsockopt(zmq.SNDHWM, 0)
        self._sock.connect(f"ipc://{path}")

    def send(self, frame: bytes) -> None:
        # With no high-water mark the send cannot block; the future is already done.
        self._sock.send(frame, copy=len(frame) < 65536)

    async def recv(self) -> bytes:
        frames = await self._sock.recv_multipart()
        return frames[0] if len(frames) == 1 else REJECTED_MULTIPART

    def close(self) -> None:
        self._sock.close()
        self._ctx.term()


class AsyncPull:
    """Where loads runners started by a cannon push their messages (``ipc://PATH``)."""

    def __init__(self, path: str, max_message: int = CEILING) -> None:
        self._ctx = zmq.asyncio.Context()
        self._sock = self._ctx.socket(zmq.PULL)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.MAXMSGSIZE, max_message)
        self._sock.bind(f"ipc://{path}")
        self.endpoint = f"ipc://{path}"

    async def recv(self) -> bytes:
        frames = await self._sock.recv_multipart()
        return frames[0] if len(frames) == 1 else REJECTED_MULTIPART

    def close(self) -> None:
        self._sock.close()
        self._ctx.term()


_KINDS = {"pub": zmq.PUB, "pull": zmq.PULL, "sub": zmq.SUB, "push": zmq.PUSH}


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
