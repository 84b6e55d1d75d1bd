"""Tables of people and governance: users, groups, tokens, the audit log, notifications."""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Float, Integer, String, Table, Text

from signoff.store._tables import metadata

users = Table(
    "users",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("email", String(320), nullable=True),
    Column("password_hash", Text, nullable=True),
    Column("roles", JSON, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("created_at", Float, nullable=False),
)

group_members = Table(
    "group_members",
    metadata,
    Column("group_name", String(200), primary_key=True),
    Column("user_name", String(200), primary_key=True),
)

# Machine tokens: shown once, stored as a sha256 hash, found by their prefix.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("prefix", String(16), primary_key=True),
    Column("token_hash", String(64), nullable=False),
    Column("user_name", String(200), nullable=False, index=True),
    Column("scopes", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=True),
    Column("revoked_at", Float, nullable=True),
)

# E-mailed decision links: only the hash of a link's token is kept; a link is used once.
link_tokens = Table(
    "link_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("gate_id", String(32), nullable=False, index=True),
    Column("user_name", String(200), nullable=False),
    Column("decision", String(16), nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("used_at", Float, nullable=True),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("at", Float, nullable=False),
    Column("event", String(32), nullable=False),
    Column("run_id", String(32), nullable=True, index=True),
    Column("gate_id", String(32), nullable=True),
    Column("actor", String(200), nullable=True),
    Column("data", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    # "hmac-sha256" (keyed); "sha256" for entries written before the log was keyed
    Column("scheme", String(16), nullable=False, server_default="sha256"),
)

# One row per message that must go out once (opened, reminder n): the key makes it idempotent.
notifications = Table(
    "notifications",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("gate_id", String(32), nullable=False, index=True),
    Column("user_name", String(200), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("at", Float, nullable=False),
    Column("detail", Text, nullable=True),
    Column("sent_at", Float, nullable=True),  # handed to its channel (None: claimed, not yet)
)

gate_policy = Table(
    "gate_policy",
    metadata,
    Column("gate_id", String(32), primary_key=True),
    Column("on_timeout", String(16), nullable=False),
    Column("remind_every", Integer, nullable=True),
    Column("supersede", Boolean, nullable=False),
    Column("auto_approve_if", Text, nullable=True),
    Column("reminded_at", Float, nullable=True),
    Column("announced_at", Float, nullable=True),  # supersede, rule and notices all done
)
