"""AzamPay's hosted checkout (PostCheckout): the payer's page with Pay and Fail buttons, and the redirect back.

A mixin of AzamPaySimulator (simulator.py): a browser-facing job beside the JSON API, kept apart.
"""

import html
import logging
import re
import time
from typing import Any
from urllib.parse import urlsplit

from payments.sandbox.azampay.checks import (
    API_PREFIX,
    HOSTED_OPERATOR,
    MAX_HOSTED_EXTERNAL_ID,
    PROVIDER,
    UNAUTHORIZED,
    Problem,
    amount_field,
    external_id_field,
    json_object,
)
from payments.sandbox.outcomes import CARD_FAILED, CARD_PAID, Outcome, Result
from payments.sandbox.protocol import (
    BadRequestBody,
    SandboxRequest,
    SandboxResponse,
    html_response,
    json_response,
    redirect_response,
    text_response,
)
from payments.sandbox.store import Charge

logger = logging.getLogger("payments.sandbox.azampay")


class HostedCheckoutRoutes:
    """The simulator's store, client id and charge-making come from AzamPaySimulator."""

    store: Any
    client_id: str
    app_name: str

    def _authorized(self, request: SandboxRequest) -> bool:
        raise NotImplementedError

    def _new_charge(
        self,
        *,
        external_id: str,
        msisdn: str,
        amount: str,
        channel: str,
        outcome: Outcome | None,
        kind: str,
        extra: dict[str, Any] | None = None,
    ) -> Charge:
        raise NotImplementedError

    def _schedule_callbacks(self, charge: Charge, outcome: Outcome) -> None:
        raise NotImplementedError

    def post_checkout(self, request: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        # AzamPay's own sample sends no bearer token here (docs/providers/azampay.md): accept none, refuse a bad one.
        if request.header("authorization") and not self._authorized(request):
            return json_response(401, UNAUTHORIZED)
        data = json_object(request)
        errors: dict[str, list[str]] = {}
        amount = amount_field(data, "amount", errors)
        if data.get("currency") != "TZS":
            errors["currency"] = ['Only "TZS" is supported.']
        external_id = external_id_field(data, "externalId", MAX_HOSTED_EXTERNAL_ID, errors)
        if data.get("clientId") != self.client_id:
            errors["clientId"] = ["clientId does not belong to a registered application."]
        urls = {}
        for key in ("redirectSuccessURL", "redirectFailURL"):
            value = data.get(key)
            if not isinstance(value, str) or urlsplit(value).scheme not in ("http", "https"):
                errors[key] = [f"{key} must be an absolute http(s) URL."]
            urls[key] = value
        cart = data.get("cart")
        items = cart.get("items") if isinstance(cart, dict) else None
        if not isinstance(items, list) or not items or not all(isinstance(i, dict) and i.get("name") for i in items):
            errors["cart"] = ["cart.items must list at least one item with a name."]
        if errors:
            raise Problem(errors)
        charge = self._new_charge(
            external_id=external_id,
            msisdn="",
            amount=amount,
            channel=HOSTED_OPERATOR,
            outcome=None,
            kind="hosted",
            extra={
                "redirect_success_url": urls["redirectSuccessURL"],
                "redirect_fail_url": urls["redirectFailURL"],
                "vendor_name": str(data.get("vendorName") or data.get("appName") or self.app_name),
                "items": [str(i["name"]) for i in items or []],
            },
        )
        host = request.host or "127.0.0.1"
        return text_response(200, f"http://{host}{API_PREFIX}/checkout/{charge.transaction_id}")

    def checkout_page(self, request: SandboxRequest, found: re.Match[str]) -> SandboxResponse:
        charge = self.store.get_charge(PROVIDER, found["transaction_id"])
        if charge is None or charge.extra.get("kind") != "hosted":
            return html_response(
                404, _page("Checkout not found", "<p>This checkout does not exist (or the sandbox was reset).</p>")
            )
        if request.method == "GET":
            return html_response(200, self._checkout_html(charge))
        try:
            decision = request.form().get("decision", "")
        except BadRequestBody:
            decision = ""
        if decision not in ("pay", "fail"):
            return html_response(400, _page("Bad request", "<p>Press Pay or Fail.</p>"))
        with self.store.lock:
            if charge.outcome is None:  # the first press decides; a second press (back button) changes nothing
                charge.outcome = CARD_PAID if decision == "pay" else CARD_FAILED
                charge.decide_at = time.monotonic()
                self._schedule_callbacks(charge, charge.outcome)
                logger.info("AzamPay sandbox hosted checkout %s: payer pressed %s", charge.transaction_id, decision)
            paid = charge.outcome.result == Result.SUCCESS
        return redirect_response(charge.extra["redirect_success_url" if paid else "redirect_fail_url"])

    def _checkout_html(self, charge: Charge) -> str:
        esc = html.escape
        items = "".join(f"<li>{esc(name)}</li>" for name in charge.extra.get("items", []))
        summary = (
            f"<p><strong>{esc(charge.extra.get('vendor_name', ''))}</strong></p>"
            f"<p>Amount: <strong>TZS {esc(charge.amount)}</strong><br>Reference: {esc(charge.external_id)}</p>"
            f"<ul>{items}</ul>"
        )
        if charge.outcome is not None:
            done = "paid" if charge.outcome.result == Result.SUCCESS else "failed"
            return _page("AzamPay sandbox checkout", f"{summary}<p>This checkout is already {done}.</p>")
        buttons = (
            '<form method="post"><input type="hidden" name="decision" value="pay">'
            '<button type="submit">Pay</button></form>'
            '<form method="post"><input type="hidden" name="decision" value="fail">'
            '<button type="submit">Fail</button></form>'
        )
        return _page("AzamPay sandbox checkout", summary + buttons)


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:28rem;margin:2rem auto;padding:0 1rem}"
        "form{display:inline-block;margin-right:1rem}button{font-size:1.2rem;padding:.5rem 1.5rem}</style>"
        f"</head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
