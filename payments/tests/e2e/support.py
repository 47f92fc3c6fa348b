"""What the end-to-end tests share: reading a donation's status over real HTTP, as the portal does."""

import time

import requests


def status_of(live_server, reference: str) -> dict:
    return requests.get(f"{live_server.url}/api/v1.0/donors/donations/{reference}/status/", timeout=10).json()


def wait_for_status(live_server, reference: str, *, until=lambda s: s != "pending", seconds: float = 20) -> dict:
    """Poll the status API until `until(status)` holds or the time is up; the last answer either way."""
    deadline = time.monotonic() + seconds
    while True:
        body = status_of(live_server, reference)
        if until(body["status"]) or time.monotonic() > deadline:
            return body
        time.sleep(0.1)
