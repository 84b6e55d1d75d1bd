"""A webhook notifier: posts Slack-compatible JSON (``{"text": ...}``) to a URL."""

from __future__ import annotations

import httpx

from signoff.domain.ports import Message

__all__ = ["WebhookNotifier"]


class WebhookNotifier:
    """POSTs each message; a non-2xx answer is a failure (retried by the next reminder)."""

    channel = "webhook"

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url
        self.timeout = timeout

    def send(self, message: Message) -> str:
        payload = {
            "text": f"*{message.subject}*\n{message.text}",
            "signoff": {"user": message.to_user, "key": message.key},
        }
        with httpx.Client(timeout=self.timeout, trust_env=False) as client:
            response = client.post(self.url, json=payload)
        response.raise_for_status()
        return f"{self.url} {response.status_code}"
