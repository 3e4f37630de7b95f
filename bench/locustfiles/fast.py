"""bench/http_cpu.py: Locust FastHttpUser (geventhttpclient), GET / with no wait."""

from locust import FastHttpUser, constant, task


class GetRoot(FastHttpUser):
    wait_time = constant(0)

    @task
    def get_root(self) -> None:
        self.client.get("/")
