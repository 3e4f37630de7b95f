"""bench/vu_memory.py: every VU idles, so the run measures what an idle VU costs."""

from cannonade import scenario


@scenario
async def idle(vu):
    await vu.sleep(30)
