"""One known run, built from real recorder deltas, shared by the summary and report tests."""

from cannonade.model.aggregate import Aggregator
from cannonade.model.metrics import CHECKS, ITERATIONS, VUS, Key, SourceId
from cannonade.model.recorder import Recorder

T0 = 1_700_000_000
TB = 'Traceback (most recent call last):\n  File "user.py", line 3, in f\nKeyError: x'


def sample_run(
    cannons: int = 2, seconds: int = 2, *, open_model: bool = False, traceback: str = TB
) -> Aggregator:
    """Per cannon and second: /login POST 10 × 20 ms (1 is a 500), /home GET 5 × 1 ms
    (1 is a transport 'timeout'), 6 iterations, checks, vus = 3, one user error."""
    agg = Aggregator()
    for c in range(cannons):
        rec = Recorder(SourceId("agent-1", c))
        for s in range(seconds):
            login = rec.request_slot("/login", "POST")
            login.duration.extend([0.020] * 10)
            if open_model:
                login.uncorrected.extend([0.015] * 10)
            login.status.extend([200] * 9 + [500])
            login.sent += 1000
            login.received += 25_000
            home = rec.request_slot("/home", "GET")
            home.duration.extend([0.001] * 5)
            home.status.extend([200] * 4 + [0])
            home.error("timeout")
            rec.add(Key(ITERATIONS), 6)
            rec.rate(CHECKS, "status is 200", True)
            rec.rate(CHECKS, "body has token", s == 0)
            rec.gauge(Key(VUS), 3)
            rec.error("KeyError", "'token'", traceback)
            agg.add(rec.flush(T0 + s))
    return agg
