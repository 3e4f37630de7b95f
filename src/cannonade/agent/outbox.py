"""Deltas sent to the HQ but not yet acknowledged, kept for re-sending.

ZeroMQ reconnects by itself, but frames queued on a connection that dies die with it,
and a restarted HQ has never seen them. So the agent keeps every delta until the HQ
acknowledges it (the HQ drops duplicates by seq), re-sends what stays unacknowledged,
and bounds the buffer: when it is full the oldest delta is dropped and counted, so
memory stays bounded while the HQ is away and the loss is reported, never silent.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

DEFAULT_MAX_FRAMES = 7200  # two hours of one-second deltas
DEFAULT_MAX_BYTES = 256 * 1024 * 1024


class Outbox:
    def __init__(
        self,
        send: Callable[[bytes], bool],
        max_frames: int = DEFAULT_MAX_FRAMES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        resend_after: float = 2.0,
    ) -> None:
        self._send = send
        self._entries: OrderedDict[int, tuple[bytes, float]] = OrderedDict()
        self._bytes = 0
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.resend_after = resend_after
        self.dropped = 0
        self.dropped_upto = -1  # the highest seq given up on; the HQ must stop waiting
        self.acked = -1

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, seq: int, frame: bytes, now: float) -> None:
        self._entries[seq] = (frame, now if self._send(frame) else -1.0)
        self._bytes += len(frame)
        while len(self._entries) > self.max_frames or (
            self._bytes > self.max_bytes and len(self._entries) > 1
        ):
            lost, (old, _) = self._entries.popitem(last=False)
            self._bytes -= len(old)
            self.dropped += 1
            self.dropped_upto = max(self.dropped_upto, lost)

    def ack(self, upto: int) -> None:
        """The HQ holds every delta up to and including ``upto``."""
        self.acked = max(self.acked, upto)
        while self._entries:
            seq = next(iter(self._entries))
            if seq > upto:
                break
            frame, _ = self._entries.popitem(last=False)[1]
            self._bytes -= len(frame)

    def resend(self, now: float) -> int:
        """Send again what has waited ``resend_after`` without an ack; how many went."""
        sent = 0
        for seq, (frame, at) in list(self._entries.items()):
            if at < 0 or now - at >= self.resend_after:
                if not self._send(frame):
                    break  # no connection: try again next time
                self._entries[seq] = (frame, now)
                sent += 1
        return sent
