"""bench/http_cpu.py: one GET / per iteration, no think time, recorded as usual."""

from cannonade import scenario


@scenario
async def get_root(vu):
    await vu.http.get("/")
