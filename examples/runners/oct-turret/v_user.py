"""An OCT script: each cannon makes its own ``Transaction`` and calls ``run()`` in a loop.

One HTTP request per transaction to ``$TARGET`` (default http://127.0.0.1:8080): ``GET /``
four times out of five, timed as the custom timer ``home_page``; every fifth
transaction of a cannon asks for ``/status/500``, which urllib raises as an
``HTTPError``, so the turret reports that transaction's error. Standard library only.
"""

import os
import time
import urllib.request

TARGET = os.environ.get("TARGET", "http://127.0.0.1:8080").rstrip("/")
THINK = 0.02  # seconds between transactions of a cannon

# No proxies: the target is usually on loopback.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Transaction:
    def __init__(self):
        self.custom_timers = {}
        self.runs = 0

    def setup(self):
        """Called once per cannon before the first run() (optional)."""
        self.home = TARGET + "/"

    def run(self):
        self.runs += 1
        self.custom_timers = {}
        time.sleep(THINK)
        if self.runs % 5 == 0:
            # HTTPError: HTTP Error 500: Internal Server Error
            OPENER.open(TARGET + "/status/500", timeout=10).read()
        start = time.perf_counter()
        with OPENER.open(self.home, timeout=10) as r:
            body = r.read()
        self.custom_timers["home_page"] = time.perf_counter() - start
        assert body == b"ok\n", body
