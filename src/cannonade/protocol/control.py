"""Control messages between the HQ and its agents, in OCT's JSON dialect.

Commands go HQ -> agents on PUB as one frame: a channel, a space, then
``{"command": ..., "msg": ...}``. The channel is empty for a broadcast (so the frame
starts with a space) or an agent's uuid for that agent alone — exactly what OCT's HQ
sends. cannonade's own commands put a :class:`RunRef` (run id + sequence number) in
``msg`` so an agent applies each at most once, in order, and the HQ can re-publish
them until acknowledged without harm.

Agents -> HQ on PUSH: OCT status messages (``turret``, ``status``, ``uuid``,
``rampup``, ``script``, ``cannons``) with cannonade's extra state under the key
``cannonade``; a plain OCT turret simply leaves it out. Interval deltas travel as
MessagePack (:mod:`cannonade.protocol.deltas`). The HQ's one decoder of everything
its PULL socket receives is :func:`cannonade.protocol.results.decode_result_frame`.

Every decoder here raises only :class:`ProtocolError`.
"""

from __future__ import annotations

import base64
import enum
from typing import Any

import msgspec

from cannonade.errors import ProtocolError
from cannonade.protocol.deltas import MAX_FRAME

VERSION = 1
MAX_CANNONS = 4096  # per agent: a larger number is a typo or an attack, not a machine
MAX_DEPTH = 64  # nesting of free-form values (command msgs, setup data)
MAX_NAME = 1000  # uuid, turret name, status, script: text a report shows, not a payload


class Command(enum.StrEnum):
    # OCT's own
    STATUS_REQUEST = "status_request"
    START = "start"
    STOP = "stop"
    KILL = "kill"
    # cannonade's
    PREPARE = "prepare"
    SETUP = "setup"
    TEARDOWN = "teardown"
    RELEASE = "release"
    ACK = "ack"


class AgentState(enum.StrEnum):
    """An agent's state, reported as the OCT ``status`` field.

    Legal moves (anything else is a bug in the agent):
    ``ready -> preparing -> prepared -> [setup -> setup_done] -> running -> done
    -> [teardown -> teardown_done] -> ready``; ``preparing -> failed -> ready``;
    ``running -> stopping -> done``; any run state -> ``ready`` on release.
    """

    READY = "ready"
    PREPARING = "preparing"
    PREPARED = "prepared"
    FAILED = "failed"
    SETUP = "setup"
    SETUP_DONE = "setup_done"
    RUNNING = "running"
    STOPPING = "stopping"
    DONE = "done"
    TEARDOWN = "teardown"
    TEARDOWN_DONE = "teardown_done"
    ABORTED = "Aborted"  # OCT: the agent itself is dying


# -- HQ -> agent ------------------------------------------------------------------------


class RunRef(msgspec.Struct, frozen=True, kw_only=True):
    run_id: str
    seq: int


class BundleWire(msgspec.Struct, frozen=True):
    filename: str
    sha256: str
    data: str  # base64: the bundle is bytes and JSON has no bytes

    def raw(self) -> bytes:
        try:
            return base64.b64decode(self.data, validate=True)
        except ValueError:
            raise ProtocolError("bundle data is not base64") from None


class PartitionWire(msgspec.Struct, frozen=True):
    """The agent's cannons are global partitions ``first .. first+cannons-1`` of
    ``total``; every cannon of every agent is one partition."""

    first: int
    cannons: int
    total: int


class Prepare(RunRef, frozen=True, kw_only=True):
    bundle: BundleWire
    options: dict[str, Any]
    partition: PartitionWire


class Start(RunRef, frozen=True, kw_only=True):
    start_at: float  # epoch seconds, the same for every agent
    setup_data: Any = None


class Teardown(RunRef, frozen=True, kw_only=True):
    setup_data: Any = None


class Ack(msgspec.Struct, frozen=True, kw_only=True):
    """Deltas ``0 .. upto`` of this agent for this run are stored; drop them."""

    run_id: str
    upto: int


SEQUENCED: dict[Command, type[RunRef]] = {
    Command.PREPARE: Prepare,
    Command.SETUP: RunRef,
    Command.START: Start,
    Command.STOP: RunRef,
    Command.KILL: RunRef,
    Command.TEARDOWN: Teardown,
    Command.RELEASE: RunRef,
}

AgentCommand = RunRef | Ack | Command  # a bare Command: OCT's form with a non-cannonade msg


class _Envelope(msgspec.Struct):
    command: str
    msg: Any = None


_json_encoder = msgspec.json.Encoder()
_envelope_decoder = msgspec.json.Decoder(_Envelope)


def encode_command(command: Command, msg: msgspec.Struct | str | None, channel: str = "") -> bytes:
    return channel.encode() + b" " + _json_encoder.encode({"command": command.value, "msg": msg})


def split_channel(frame: bytes) -> tuple[str, bytes]:
    """``b"<uuid> {json}"`` -> (uuid, json); a broadcast's channel is ``""``."""
    if frame.startswith(b"{"):  # a bare JSON command, as some turrets send
        return "", frame
    channel, sep, body = frame.partition(b" ")
    if not sep:
        raise ProtocolError("command frame has no channel separator")
    try:
        return channel.decode("ascii"), body
    except UnicodeDecodeError:
        raise ProtocolError("command channel is not ASCII") from None


def decode_command(body: bytes) -> tuple[Command, AgentCommand]:
    """The command and its typed message. OCT commands whose ``msg`` is not one of
    cannonade's (``"open fire"``, ``null``) decode to the bare :class:`Command`."""
    if len(body) > MAX_FRAME:
        raise ProtocolError(f"command of {len(body)} bytes exceeds {MAX_FRAME}")
    try:
        env = _envelope_decoder.decode(body)
    except (msgspec.MsgspecError, ValueError, RecursionError) as e:
        # RecursionError: ``msg`` is Any, so msgspec nests as deep as the peer does.
        raise ProtocolError(f"malformed command: {e}") from None
    try:
        command = Command(env.command)
    except ValueError:
        raise ProtocolError(f"unknown command {env.command!r}") from None
    if too_deep(env.msg, MAX_DEPTH + 1):  # + 1: msg itself, then e.g. setup data
        raise ProtocolError(f"command {command.value}: msg is nested deeper than {MAX_DEPTH}")
    if not isinstance(env.msg, dict):
        return command, command
    try:
        if command is Command.ACK:
            return command, msgspec.convert(env.msg, Ack)
        cls = SEQUENCED.get(command)
        if cls is None:
            return command, command
        return command, msgspec.convert(env.msg, cls)
    except msgspec.ValidationError as e:
        raise ProtocolError(f"command {command.value}: {e}") from None


# -- agent -> HQ ------------------------------------------------------------------------


class SetupResult(msgspec.Struct, frozen=True):
    ok: bool
    data: Any = None
    error: str = ""


class AgentTotals(msgspec.Struct, frozen=True):
    """What an agent sent for a run, to check the HQ's stored series against."""

    deltas: int  # agent deltas sent: seqs 0 .. deltas-1
    counters: dict[str, float]  # per metric, summed over every key
    trend_counts: dict[str, int]  # samples per trend metric
    dropped_deltas: int = 0  # lost to a full buffer while the HQ was away
    cannon_gaps: int = 0  # cannon deltas that never reached the agent


class AgentReport(msgspec.Struct, frozen=True, kw_only=True):
    """cannonade's part of a status message."""

    version: int = VERSION
    hostname: str = ""
    pid: int = 0
    run_id: str | None = None
    ack: int = -1  # highest command seq applied for run_id
    hooks: list[str] = []
    setup: SetupResult | None = None
    totals: AgentTotals | None = None
    error: str = ""
    buffered: int = 0  # deltas waiting for the HQ's ack
    dropped_upto: int = -1  # deltas up to this seq that a full buffer gave up on


class Status(msgspec.Struct, frozen=True, kw_only=True):
    """An OCT status message; numbers may arrive as strings (OCT's own docs show them so)."""

    turret: str = ""
    status: str
    uuid: str
    rampup: float | str = 0
    script: str = ""
    cannons: int | str = 0
    cannonade: AgentReport | None = None

    @property
    def cannon_count(self) -> int:
        try:
            return max(0, int(self.cannons))
        except ValueError:
            return 0


_status_decoder = msgspec.json.Decoder(Status)


def encode_status(status: Status) -> bytes:
    return _json_encoder.encode(status)


def decode_status(frame: bytes) -> Status:
    if len(frame) > MAX_FRAME:
        raise ProtocolError(f"status message of {len(frame)} bytes exceeds {MAX_FRAME}")
    try:
        status = _status_decoder.decode(frame)
    except (msgspec.MsgspecError, ValueError, RecursionError) as e:
        raise ProtocolError(f"malformed status message: {e}") from None
    if not status.uuid or len(status.uuid) > MAX_NAME:
        raise ProtocolError("status message without a usable uuid")
    if status.cannon_count > MAX_CANNONS:
        raise ProtocolError(f"status claims {status.cannon_count} cannons (at most {MAX_CANNONS})")
    for name, value in (
        ("turret", status.turret),
        ("status", status.status),
        ("script", status.script),
    ):
        if len(value) > MAX_NAME:
            raise ProtocolError(f"status field {name!r} is longer than {MAX_NAME} characters")
    setup = status.cannonade.setup if status.cannonade is not None else None
    if setup is not None and too_deep(setup.data, MAX_DEPTH):
        raise ProtocolError(f"setup data is nested deeper than {MAX_DEPTH}")
    return status


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether a free-form value nests lists/objects more than ``limit`` levels deep.

    msgspec decodes ``Any`` as deep as the interpreter's recursion limit allows, and a
    value that barely decoded fails to encode again a few frames deeper (the HQ puts
    setup data into ``start``, the agent passes it on to its cannons): a RecursionError
    in a loop that must not die. Such values are refused here, with room to spare."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth >= limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def bundle_wire(filename: str, sha256: str, data: bytes) -> BundleWire:
    return BundleWire(filename, sha256, base64.b64encode(data).decode("ascii"))
