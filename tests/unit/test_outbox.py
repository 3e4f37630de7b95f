"""Outbox: the agent's deltas kept until the HQ acknowledges them."""

from hypothesis import given, settings
from hypothesis import strategies as st

from cannonade.agent.outbox import Outbox


class Link:
    """A fake PUSH socket: records frames, fails while ``up`` is False."""

    def __init__(self) -> None:
        self.up = True
        self.frames: list[bytes] = []
        self.attempts = 0

    def send(self, frame: bytes) -> bool:
        self.attempts += 1
        if self.up:
            self.frames.append(frame)
        return self.up


def frame(seq: int, size: int = 10) -> bytes:
    return f"d{seq}".encode().ljust(size, b".")


def test_put_sends_at_once_and_keeps_until_acked():
    link = Link()
    box = Outbox(link.send, resend_after=2.0)
    for seq in range(5):
        box.put(seq, frame(seq), now=100.0)
    assert link.frames == [frame(s) for s in range(5)]
    assert len(box) == 5
    box.ack(2)
    assert len(box) == 2
    assert box.acked == 2
    box.ack(1)  # an old ack changes nothing
    assert (len(box), box.acked) == (2, 2)
    box.ack(4)
    assert len(box) == 0
    assert box._bytes == 0
    box.ack(10)  # acks beyond what is held are harmless
    assert (len(box), box.acked) == (0, 10)


def test_resend_only_after_resend_after():
    link = Link()
    box = Outbox(link.send, resend_after=2.0)
    box.put(0, frame(0), now=100.0)
    box.put(1, frame(1), now=101.0)
    link.frames.clear()
    assert box.resend(101.9) == 0
    assert box.resend(102.0) == 1  # seq 0 waited 2 s
    assert link.frames == [frame(0)]
    assert box.resend(102.5) == 0  # seq 0 was just sent again; seq 1 waited 1.5 s
    assert box.resend(103.0) == 1
    assert link.frames == [frame(0), frame(1)]
    box.ack(1)
    assert box.resend(1000.0) == 0
    assert link.frames == [frame(0), frame(1)]


def test_a_failed_send_is_retried_next_time_in_order():
    link = Link()
    box = Outbox(link.send, resend_after=5.0)
    link.up = False
    box.put(0, frame(0), now=100.0)
    box.put(1, frame(1), now=100.1)
    assert link.frames == []
    assert len(box) == 2
    assert box.resend(100.2) == 0  # still down: stops at the first failure
    assert link.attempts == 3
    link.up = True
    box.put(2, frame(2), now=100.3)
    assert box.resend(100.4) == 2  # the failed ones go at once, not after resend_after
    assert link.frames == [frame(2), frame(0), frame(1)]
    assert box.resend(100.5) == 0  # and then wait like the others
    assert box.resend(105.4) == 3
    assert box.dropped == 0


def test_frame_limit_drops_the_oldest_and_counts_them():
    link = Link()
    box = Outbox(link.send, max_frames=3)
    for seq in range(7):
        box.put(seq, frame(seq), now=100.0)
    assert len(box) == 3
    assert box.dropped == 4
    link.frames.clear()
    assert box.resend(200.0) == 3
    assert link.frames == [frame(4), frame(5), frame(6)]
    assert box._bytes == 30
    box.ack(6)
    assert box.dropped == 4  # acked frames are not drops
    assert box._bytes == 0


def test_byte_limit_drops_the_oldest_but_keeps_the_newest():
    link = Link()
    box = Outbox(link.send, max_bytes=100)
    box.put(0, frame(0, 60), now=1.0)
    box.put(1, frame(1, 30), now=1.0)
    assert (len(box), box.dropped) == (2, 0)
    box.put(2, frame(2, 20), now=1.0)  # 110 bytes: seq 0 goes
    assert (len(box), box.dropped, box._bytes) == (2, 1, 50)
    box.put(3, frame(3, 500), now=1.0)  # alone larger than the limit: kept, alone
    assert (len(box), box.dropped, box._bytes) == (1, 3, 500)
    link.frames.clear()
    box.resend(10.0)
    assert link.frames == [frame(3, 500)]


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 8),
    st.integers(20, 200),
    st.lists(
        st.tuples(st.sampled_from(["put", "ack", "resend", "down", "up"]), st.integers(1, 60)),
        max_size=60,
    ),
)
def test_memory_bound_and_accounting_hold(max_frames, max_bytes, ops):
    link = Link()
    box = Outbox(link.send, max_frames=max_frames, max_bytes=max_bytes, resend_after=1.0)
    seq = 0
    now = 0.0
    held: dict[int, bytes] = {}
    dropped = 0
    for op, n in ops:
        now += 0.5
        if op == "put":
            f = frame(seq, n)
            box.put(seq, f, now)
            held[seq] = f
            seq += 1
            while len(held) > max_frames or (
                sum(map(len, held.values())) > max_bytes and len(held) > 1
            ):
                del held[min(held)]
                dropped += 1
        elif op == "ack":
            upto = seq - 1 - n % 4
            box.ack(upto)
            held = {s: f for s, f in held.items() if s > upto}
        elif op == "resend":
            box.resend(now)
        else:
            link.up = op == "up"
        assert len(box) == len(held) <= max_frames
        assert box._bytes == sum(map(len, held.values()))
        assert box._bytes <= max_bytes or len(box) == 1
        assert box.dropped == dropped
    # everything still held reaches the HQ once the link is up
    link.up = True
    link.frames.clear()
    box.resend(now + 10)
    assert link.frames == [held[s] for s in sorted(held)]
