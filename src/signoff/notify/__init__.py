"""Notifiers: how approvers hear about a gate (SMTP e-mail, the local outbox, a webhook)."""

from signoff.notify.outbox import OutboxNotifier
from signoff.notify.smtp import SmtpNotifier
from signoff.notify.webhook import WebhookNotifier

__all__ = ["OutboxNotifier", "SmtpNotifier", "WebhookNotifier"]
