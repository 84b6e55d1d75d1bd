"""Tables of web sign-in: server-side sessions (only a hash of each id) and failed logins."""

from __future__ import annotations

from sqlalchemy import Column, Float, Integer, String, Table

from signoff.store._tables import metadata

# One row per signed-in browser. The cookie holds a random id; only its sha256 is kept, so a
# copy of the database does not let anyone sign in.
web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("user_name", String(200), nullable=False, index=True),
    Column("created_at", Float, nullable=False),
    Column("last_seen_at", Float, nullable=False),
    Column("client", String(64), nullable=True),
)

# Failed sign-ins, counted per user and per client address over a window. Kept in the store
# (not in memory) so every server process behind a load balancer sees the same counts.
login_failures = Table(
    "login_failures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_name", String(200), nullable=False, index=True),
    Column("client", String(64), nullable=False, index=True),
    Column("at", Float, nullable=False, index=True),
)
