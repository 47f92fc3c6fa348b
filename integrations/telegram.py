"""Telegram's Bot API `sendMessage`: donor receipts and operator alerts (the sandbox's Telegram in the demo).

Settings: TELEGRAM_BOT_TOKEN, TELEGRAM_API_URL. Facts: docs/providers/telegram.md.
"""

import logging

import requests
from django.conf import settings

logger = logging.getLogger("payments.notifications")
TELEGRAM_TIMEOUT_SECONDS = 10


def telegram_send(chat_id: str | int, text: str) -> bool:
    """Send one message. Never raises: a receipt that cannot be sent must not undo a payment."""
    token = getattr(settings, "TELEGRAM_BOT_TOKEN", "")
    api_url = getattr(settings, "TELEGRAM_API_URL", "https://api.telegram.org").rstrip("/")
    if not token or not chat_id:
        logger.info("Telegram message not sent: %s", "no bot token" if not token else "no chat id")
        return False
    try:
        response = requests.post(
            f"{api_url}/bot{token}/sendMessage",
            json={"chat_id": chat_id, "text": text},
            timeout=TELEGRAM_TIMEOUT_SECONDS,
        )
        body = response.json() if response.content else {}
    except Exception as exc:  # noqa: BLE001 - a receipt must never break the caller
        logger.warning("Telegram message to chat %s failed: %s", chat_id, type(exc).__name__)
        return False
    if response.status_code != 200 or not body.get("ok"):
        logger.warning(
            "Telegram refused a message to chat %s: HTTP %s %s",
            chat_id,
            response.status_code,
            body.get("description", ""),
        )
        return False
    return True
