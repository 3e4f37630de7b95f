"""bench/http_cpu.py, optional molotov client: one GET / per run, no think time.

Runs in bench/.venv-locust (molotov is never installed into the project venv).
The target comes from the CANNONADE_BENCH_HOST environment variable.
"""

import os

import molotov

HOST = os.environ.get("CANNONADE_BENCH_HOST", "http://127.0.0.1:8080")


@molotov.scenario(weight=100)
async def get_root(session):
    async with session.get(HOST + "/") as resp:
        await resp.read()
        assert resp.status == 200
