"""bench/http_cpu.py: Locust HttpUser (requests), GET / with no wait."""

from locust import HttpUser, constant, task


class GetRoot(HttpUser):
    wait_time = constant(0)

    @task
    def get_root(self) -> None:
        self.client.get("/")
