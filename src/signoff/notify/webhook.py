"""A webhook notifier: posts Slack-compatible JSON (``{"text": ...}``) to a URL.

A webhook feeds a shared channel, so it is not ``personal``: it is only ever given the gate's
notice with the review page's address, never anyone's decision links. Its URL often is the
secret (Slack's incoming webhooks), so notes and errors name only its host.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from signoff.domain.ports import Message
from signoff.errors import SignoffError

__all__ = ["WebhookError", "WebhookNotifier"]


class WebhookError(SignoffError):
    """The webhook could not be reached or refused the notice (its URL is not repeated)."""


class WebhookNotifier:
    """POSTs each message; a non-2xx answer is a failure (retried by the next reminder)."""

    channel = "webhook"
    personal = False  # a channel many people read

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url
        self.timeout = timeout
        self.host = urlsplit(url).hostname or "the webhook"

    def send(self, message: Message) -> str:
        payload = {
            "text": f"*{message.subject}*\n{message.text}",
            "signoff": {"key": message.key},
        }
        try:
            with httpx.Client(timeout=self.timeout, trust_env=False) as client:
                response = client.post(self.url, json=payload)
        except httpx.HTTPError as exc:
            # httpx's messages carry the whole URL; say what failed without it
            raise WebhookError(f"{self.host}: {type(exc).__name__}") from None
        if not response.is_success:
            raise WebhookError(f"{self.host} answered {response.status_code}")
        return f"{self.host} {response.status_code}"
