"""The HQ's HTTP API (FastAPI): go-lo's endpoints, the native ``/api/v1``, Prometheus."""
