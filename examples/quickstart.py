"""The demo scenario: browse, read JSON, log in and use the token.

Run it against the embedded target:

    cannonade target --port 8080 &
    cannonade run examples/quickstart.py --host http://127.0.0.1:8080 -u 20 -d 20s
"""

from cannonade import scenario, vu_setup

thresholds = {
    "http_req_failed": ["rate<0.01"],
    "http_req_duration": ["p(95)<500"],
}


@vu_setup
async def log_in(vu):
    resp = await vu.http.post("/login", json={"user": f"user{vu.id}", "password": "secret"})
    vu.state["token"] = resp.json()["token"] if resp.ok else None


@scenario(weight=6)
async def browse(vu):
    resp = await vu.http.get("/")
    vu.check(resp.status == 200, "home is 200")
    await vu.http.get("/delay?ms=20", name="/delay 20ms")


@scenario(weight=3)
async def read_json(vu):
    resp = await vu.http.get("/json")
    vu.check(resp.ok and "token" in resp.json(), "json has a token")


@scenario(weight=1)
async def private_area(vu):
    with vu.timer("private_round_trip"):
        resp = await vu.http.get(
            "/private", headers={"Authorization": f"Bearer {vu.state['token']}"}
        )
    vu.check(resp.status == 200, "private is 200")
    vu.counter("private_visits").add(1)
