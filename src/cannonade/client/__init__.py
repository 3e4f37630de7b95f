"""A client of the HQ's HTTP API (``cannonade hq --api``): upload, queue, follow.

Nothing is imported here: ``cannonade.client.connect`` is read while the command
line is parsed, and must not pull in httpx (``cannonade.client.http``) for that.
"""
