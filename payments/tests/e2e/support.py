"""What the end-to-end tests share: reading a donation's status over real HTTP, as the portal does; starting one
through the real API; waiting on the sandbox's records (always with a deadline, never a fixed sleep)."""

import time
from collections.abc import Callable
from typing import Any

import requests

DONATIONS_PATH = "/api/v1.0/donors/donations/"


def handle_of(reference: str) -> str:
    """The donation's public token, the donor's handle for reading it (by reference a guest gets 404)."""
    from donor.models import Donation

    return Donation.objects.values_list("public_token", flat=True).get(reference=reference)


def status_of(live_server, reference: str) -> dict:
    """The status API as the donor's page reads it: by the donation's public token."""
    url = f"{live_server.url}/api/v1.0/donors/donations/{handle_of(reference)}/status/"
    return requests.get(url, timeout=10).json()


def wait_for_status(live_server, reference: str, *, until=lambda s: s != "pending", seconds: float = 20) -> dict:
    """Poll the status API until `until(status)` holds or the time is up; the last answer either way."""
    deadline = time.monotonic() + seconds
    while True:
        body = status_of(live_server, reference)
        if until(body["status"]) or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def wait_until(predicate: Callable[[], Any], *, seconds: float = 15, interval: float = 0.05) -> Any:
    """Poll `predicate` until it returns something truthy or the time is up; its last value either way."""
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def donate_via_api(live_server, **fields: Any) -> dict:
    """POST /api/v1.0/donors/donations/ with these fields (a donor's e-mail and name added); the 201 body."""
    body = {"email": "donor@example.org", "name": "Nakato", **fields}
    response = requests.post(f"{live_server.url}{DONATIONS_PATH}", json=body, timeout=30)
    assert response.status_code == 201, response.text
    return response.json()


def refresh(live_server, reference: str) -> requests.Response:
    """The donor's "check now" (asks the provider when the per-donation interval allows)."""
    url = f"{live_server.url}/api/v1.0/donors/donations/{handle_of(reference)}/refresh/"
    return requests.post(url, timeout=10)


def sandbox_charges(sandbox, provider: str, **match: str) -> list[dict]:
    """The sandbox's charges of one provider whose JSON fields equal `match` (e.g. transactionId=...)."""
    return [
        charge
        for charge in sandbox.store.charges_json(provider=provider)
        if all(charge.get(key) == value for key, value in match.items())
    ]


def sandbox_charge(sandbox, provider: str, **match: str) -> dict:
    [charge] = sandbox_charges(sandbox, provider, **match)
    return charge


def wait_for_deliveries(sandbox, provider: str, count: int, *, seconds: float = 15, **match: str) -> list[dict]:
    """The charge's callback deliveries once there are `count` of them (or the time is up), in the order the
    sandbox sent them (`at`). It records a delivery when the site has answered it, so a callback whose handling
    takes longer (one that credits the donation and sends the email receipt with its PDF) is recorded after a later
    one that was answered at once."""
    wait_until(lambda: len(sandbox_charge(sandbox, provider, **match)["deliveries"]) >= count, seconds=seconds)
    return sorted(sandbox_charge(sandbox, provider, **match)["deliveries"], key=lambda delivery: delivery["at"])
