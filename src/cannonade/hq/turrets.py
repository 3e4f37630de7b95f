"""A run for OCT turrets that bring their own scripts (what OCT's ``oct run`` does).

The HQ waits for ``min_agents`` turrets reporting ``ready`` (in any letter case),
broadcasts OCT's ``start``, lets them fire for the run's duration, broadcasts ``stop``
and collects the last results for a moment. OCT turrets acknowledge nothing, and the
0.2.8 Python turret crashes on a frame with a channel, so every command is a plain
broadcast; ``status_request`` goes out every second so that a turret busy firing still
proves it is alive. A turret that reports ``Aborted`` is lost from the run at that time.

Same surface as :class:`cannonade.hq.run.RunController`, so the HQ drives either.
"""

from __future__ import annotations

from dataclasses import dataclass

from cannonade.hq.membership import Liveness
from cannonade.hq.run import Controller, Outgoing, Phase, Slot
from cannonade.protocol.control import Command

COLLECT = 2.0  # seconds after ``stop`` for results still in flight
STATUS_EVERY = 1.0
# ``start`` goes out again at these seconds after the first: a turret's status can
# reach the HQ before its subscription reaches the HQ's PUB, and it would miss a single
# send. A turret ignores ``start`` while it is firing (OCT's guide: start fires; it is
# not a restart).
START_REPEATS = (0.5, 1.5)


@dataclass(slots=True)
class TurretRunController(Controller):
    duration: float = 0.0
    _last_status_request: float = -1e9
    _starts_sent: int = 0
    _kill_sent: bool = False

    def tick(self) -> list[Outgoing]:
        now = self.clock.monotonic()
        out: list[Outgoing] = []
        self._watch()
        if self.phase in (Phase.WAITING, Phase.RUNNING) and (
            now - self._last_status_request >= STATUS_EVERY
        ):
            self._last_status_request = now
            out.append(Outgoing("", Command.STATUS_REQUEST, None))
        if self.phase is Phase.WAITING:
            out += self._waiting(now)
        elif self.phase is Phase.RUNNING:
            out += self._running(now)
        elif self.phase is Phase.RELEASING:
            if self._stop_requested is Command.KILL and not self._kill_sent:
                self._kill_sent = True  # a second Ctrl-C after the first's stop
                out.append(Outgoing("", Command.KILL, None))
            if now - self._phase_since >= COLLECT:
                self._move(Phase.FINISHED)
        return out

    def _watch(self) -> None:
        """A turret lost or Aborted leaves the run at that moment."""
        for slot in self.slots.values():
            m = self.roster.members.get(slot.uuid)
            if m is None or slot.lost_at is not None:
                continue
            if m.liveness is Liveness.MISSING or m.status.lower() == "aborted":
                slot.lost_at = self.clock.wall()
                slot.losses += 1

    def _waiting(self, now: float) -> list[Outgoing]:
        if self._stop_requested is not None:
            self._move(Phase.FINISHED)
            return []
        ready = [m for m in self.roster.ready() if not m.is_cannonade]
        if len(ready) < self.spec.min_agents:
            if now - self._created > self.spec.wait_agents:
                self.error = (
                    f"only {len(ready)} of {self.spec.min_agents} turrets were ready "
                    f"after {self.spec.wait_agents:g}s"
                )
                self._move(Phase.FINISHED)
            return []
        for i, m in enumerate(ready):
            self.slots[m.uuid] = Slot(m.uuid, m.name, m.cannons, i, reports_totals=False)
        self.start_at = self.clock.wall()
        self._move(Phase.RUNNING)
        self._starts_sent = 1
        return [Outgoing("", Command.START, "open fire")]

    def _running(self, now: float) -> list[Outgoing]:
        if self._stop_requested is Command.KILL:
            self._kill_sent = True
            self._move(Phase.RELEASING)
            return [Outgoing("", Command.KILL, None)]
        if self._stop_requested is not None:
            self._move(Phase.RELEASING)
            return [Outgoing("", Command.STOP, "premature stop")]
        if not self.live():
            self.error = "every turret was lost"
            self._move(Phase.RELEASING)
            return [Outgoing("", Command.STOP, "stop")]
        if now - self._phase_since >= self.duration:
            self._move(Phase.RELEASING)
            return [Outgoing("", Command.STOP, "stop")]
        repeats = START_REPEATS[self._starts_sent - 1 :] if self._starts_sent else ()
        if repeats and now - self._phase_since >= repeats[0]:
            self._starts_sent += 1
            return [Outgoing("", Command.START, "open fire")]
        return []
