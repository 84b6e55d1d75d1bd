"""Store parts for people and governance: users, groups, tokens, the audit chain, notices."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from signoff.domain.audit import GENESIS, KEYED, AuditEntry, Checkpoint, entry_hash, make_checkpoint
from signoff.domain.records import AuditEvent, LinkToken, UserRecord
from signoff.errors import ConflictError, LinkUsedError, NotFoundError, SignoffError
from signoff.store import _gate_tables as g
from signoff.store import _rows as rows
from signoff.store._base import AUDIT_HEAD, SqlBase

__all__ = ["AuditAnchor", "GovernanceStore"]

log = logging.getLogger("signoff.store.audit")

# PostgreSQL: one appender at a time (a transaction-scoped advisory lock); SQLite writers are
# already serialized by BEGIN IMMEDIATE.
_AUDIT_LOCK = 0x5167_0FF0


class AuditAnchor(Protocol):
    """Somewhere outside the database that keeps the log's signed checkpoints."""

    def record(self, checkpoint: Checkpoint) -> None: ...


class GovernanceStore(SqlBase):
    """Users, groups, API and link tokens, the keyed audit chain, notifications.

    The audit key and anchors come from :meth:`configure_audit` (``bootstrap`` does it); a
    store without a key reads the log but refuses to append to it.
    """

    audit_key: bytes | None = None
    audit_anchors: tuple[AuditAnchor, ...] = ()

    def configure_audit(self, key: bytes, anchors: Sequence[AuditAnchor] = ()) -> None:
        """Sign new audit entries with ``key``; write a checkpoint to each anchor per commit."""
        if len(key) < 16:
            raise SignoffError("the audit key must be at least 16 bytes")
        self.audit_key = key
        self.audit_anchors = tuple(anchors)

    # ------------------------------------------------------------------------ users
    def add_user(self, user: UserRecord, password_hash: str | None = None) -> None:
        with self._tx() as conn:
            exists = conn.execute(
                sa.select(g.users.c.name).where(g.users.c.name == user.name)
            ).first()
            if exists is not None:
                raise ConflictError(f"user {user.name} already exists")
            conn.execute(
                g.users.insert().values(
                    name=user.name,
                    email=user.email,
                    password_hash=password_hash,
                    roles=list(user.roles),
                    active=user.active,
                    created_at=user.created_at,
                )
            )

    def get_user(self, name: str) -> UserRecord | None:
        found = self._all(sa.select(g.users).where(g.users.c.name == name))
        return rows.USER(found[0]) if found else None

    def list_users(self) -> list[UserRecord]:
        return rows.USER.many(self._all(sa.select(g.users).order_by(g.users.c.name)))

    def has_password_users(self) -> bool:
        """Whether any user can sign in with a password (a team's store, not a laptop's)."""
        q = sa.select(g.users.c.name).where(g.users.c.password_hash.is_not(None)).limit(1)
        return bool(self._all(q))

    def password_hash(self, name: str) -> str | None:
        rows = self._all(sa.select(g.users.c.password_hash).where(g.users.c.name == name))
        return rows[0].password_hash if rows else None

    def set_password_hash(self, name: str, password_hash: str) -> None:
        with self._tx() as conn:
            res = conn.execute(
                g.users.update().where(g.users.c.name == name).values(password_hash=password_hash)
            )
            if res.rowcount != 1:
                raise NotFoundError(f"no user {name!r}")

    def update_user(self, name: str, **changes: Any) -> None:
        allowed = {"email", "roles", "active"}
        if set(changes) - allowed:
            raise ValueError(f"cannot change {sorted(set(changes) - allowed)} of a user")
        if "roles" in changes:
            changes["roles"] = list(changes["roles"])
        with self._tx() as conn:
            res = conn.execute(g.users.update().where(g.users.c.name == name).values(**changes))
            if res.rowcount != 1:
                raise NotFoundError(f"no user {name!r}")

    # ----------------------------------------------------------------------- groups
    def set_group(self, group: str, members: Sequence[str]) -> None:
        with self._tx() as conn:
            conn.execute(g.group_members.delete().where(g.group_members.c.group_name == group))
            if members:
                conn.execute(
                    g.group_members.insert(),
                    [{"group_name": group, "user_name": m} for m in sorted(set(members))],
                )

    def groups(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        q = sa.select(g.group_members).order_by(
            g.group_members.c.group_name, g.group_members.c.user_name
        )
        for r in self._all(q):
            found.setdefault(r.group_name, []).append(r.user_name)
        return found

    # ------------------------------------------------------------------- api tokens
    def add_api_token(
        self,
        *,
        prefix: str,
        token_hash: str,
        user: str,
        scopes: Sequence[str],
        created_at: float,
        expires_at: float | None,
    ) -> None:
        with self._tx() as conn:
            conn.execute(
                g.api_tokens.insert().values(
                    prefix=prefix,
                    token_hash=token_hash,
                    user_name=user,
                    scopes=list(scopes),
                    created_at=created_at,
                    expires_at=expires_at,
                    revoked_at=None,
                )
            )

    def api_token(self, prefix: str) -> dict[str, Any] | None:
        rows = self._all(sa.select(g.api_tokens).where(g.api_tokens.c.prefix == prefix))
        return dict(rows[0]._mapping) if rows else None

    def api_tokens_of(self, user: str) -> list[dict[str, Any]]:
        q = sa.select(g.api_tokens).where(g.api_tokens.c.user_name == user)
        return [dict(r._mapping) for r in self._all(q.order_by(g.api_tokens.c.created_at))]

    def revoke_api_token(self, prefix: str, at: float) -> None:
        with self._tx() as conn:
            conn.execute(
                g.api_tokens.update().where(g.api_tokens.c.prefix == prefix).values(revoked_at=at)
            )

    # ------------------------------------------------------------------ link tokens
    def add_link_tokens(self, tokens: Sequence[LinkToken]) -> None:
        if not tokens:
            return
        with self._tx() as conn:
            conn.execute(
                g.link_tokens.insert(),
                [
                    {
                        "token_hash": tk.token_hash,
                        "gate_id": tk.gate_id,
                        "user_name": tk.user,
                        "decision": tk.decision,
                        "expires_at": tk.expires_at,
                        "used_at": tk.used_at,
                    }
                    for tk in tokens
                ],
            )

    def link_token(self, token_hash: str) -> LinkToken | None:
        q = sa.select(g.link_tokens).where(g.link_tokens.c.token_hash == token_hash)
        found = self._all(q)
        return rows.LINK_TOKEN(found[0]) if found else None

    @staticmethod
    def _use_link_token(conn: Connection, token_hash: str, at: float) -> None:
        res = conn.execute(
            g.link_tokens.update()
            .where(g.link_tokens.c.token_hash == token_hash, g.link_tokens.c.used_at.is_(None))
            .values(used_at=at)
        )
        if res.rowcount != 1:
            raise LinkUsedError("this link was already used")

    # ------------------------------------------------------------------------ audit
    def _append_audit(self, conn: Connection, at: float, events: Sequence[AuditEvent]) -> None:
        """Chain events onto the log inside the caller's transaction (fails with it)."""
        if not events:
            return
        key = self.audit_key
        if key is None:
            raise SignoffError("this store was opened without an audit key; cannot audit")
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _AUDIT_LOCK})
        last = conn.execute(
            sa.select(g.audit_log.c.seq, g.audit_log.c.hash).order_by(g.audit_log.c.seq.desc())
        ).first()
        seq, prev = (last.seq, last.hash) if last else (0, GENESIS)
        rows = []
        for ev in events:
            seq += 1
            digest = entry_hash(
                prev,
                key=key,
                seq=seq,
                at=at,
                event=ev.event,
                run_id=ev.run_id,
                gate_id=ev.gate_id,
                actor=ev.actor,
                data=ev.data,
            )
            rows.append(
                {
                    "seq": seq,
                    "at": at,
                    "event": ev.event,
                    "run_id": ev.run_id,
                    "gate_id": ev.gate_id,
                    "actor": ev.actor,
                    "data": ev.data,
                    "prev_hash": prev,
                    "hash": digest,
                    "scheme": KEYED,
                }
            )
            prev = digest
        conn.execute(g.audit_log.insert(), rows)
        conn.info[AUDIT_HEAD] = (seq, prev, at)

    def _after_audit_commit(self, seq: int, head: str, at: float) -> None:
        """Make the commit durable, then write a signed checkpoint of the new head.

        SQLite in WAL mode with ``synchronous=NORMAL`` syncs the WAL only at its checkpoints,
        so a power cut may drop the last commits; the audit entries (and the decision in the
        same transaction) are synced here before a checkpoint claims they exist. An anchor
        that fails is logged, not raised: the entry is committed, the chain still protects
        it, and the next checkpoint covers it.
        """
        if self.engine.dialect.name == "sqlite":
            _fsync_sqlite(self.engine.url.database)
        if not self.audit_anchors or self.audit_key is None:
            return
        checkpoint = make_checkpoint(self.audit_key, seq, head, at)
        for anchor in self.audit_anchors:
            try:
                anchor.record(checkpoint)
            except Exception as exc:  # an anchor down must not undo what committed
                log.warning("audit checkpoint %d not written to %s: %s", seq, anchor, exc)

    def append_audit(self, events: Sequence[AuditEvent], *, at: float) -> None:
        with self._tx() as conn:
            self._append_audit(conn, at, events)

    def list_audit(self, run_id: str | None = None) -> list[AuditEntry]:
        q = sa.select(g.audit_log).order_by(g.audit_log.c.seq)
        if run_id is not None:
            q = q.where(g.audit_log.c.run_id == run_id)
        return rows.AUDIT_ENTRY.many(self._all(q))

    # ---------------------------------------------------------------- notifications
    def claim_notification(
        self,
        *,
        key: str,
        gate_id: str,
        user: str,
        kind: str,
        channel: str,
        at: float,
        detail: str | None = None,
        retake_unsent: bool = False,
    ) -> bool:
        """Reserve a message to send; False when it was already sent (effectively once).

        ``retake_unsent``: a reservation whose sending was never confirmed
        (:meth:`mark_notification_sent`) is taken over, for a process finishing what a dead
        one began (the only duplicate: a crash after the channel took it, before the mark).
        """
        try:
            with self._tx() as conn:
                conn.execute(
                    g.notifications.insert().values(
                        key=key,
                        gate_id=gate_id,
                        user_name=user,
                        kind=kind,
                        channel=channel,
                        at=at,
                        detail=detail,
                        sent_at=None,
                    )
                )
        except sa.exc.IntegrityError:
            if not retake_unsent:
                return False
            with self._tx() as conn:
                res = conn.execute(
                    g.notifications.update()
                    .where(g.notifications.c.key == key, g.notifications.c.sent_at.is_(None))
                    .values(at=at)
                )
            return res.rowcount == 1
        return True

    def mark_notification_sent(self, key: str, at: float) -> None:
        """The channel took the message: it is never sent again."""
        with self._tx() as conn:
            conn.execute(
                g.notifications.update().where(g.notifications.c.key == key).values(sent_at=at)
            )

    def release_notification(self, key: str) -> None:
        """Give a reservation back when the message could not be sent (it will be retried)."""
        with self._tx() as conn:
            conn.execute(g.notifications.delete().where(g.notifications.c.key == key))

    def notifications_of(self, gate_id: str) -> list[dict[str, Any]]:
        q = sa.select(g.notifications).where(g.notifications.c.gate_id == gate_id)
        return [dict(r._mapping) for r in self._all(q.order_by(g.notifications.c.at))]

    # ------------------------------------------------------------------ gate policy
    def gate_policy(self, gate_id: str) -> dict[str, Any]:
        rows = self._all(sa.select(g.gate_policy).where(g.gate_policy.c.gate_id == gate_id))
        if not rows:
            return {
                "on_timeout": "reject",
                "remind_every": None,
                "supersede": True,
                "auto_approve_if": None,
                "reminded_at": None,
                "announced_at": None,
            }
        return dict(rows[0]._mapping)

    def mark_gate_announced(self, gate_id: str, at: float) -> None:
        """The gate's follow-up after opening is done (a restarted driver need not redo it)."""
        with self._tx() as conn:
            conn.execute(
                g.gate_policy.update()
                .where(g.gate_policy.c.gate_id == gate_id)
                .values(announced_at=at)
            )

    def set_reminded(self, gate_id: str, at: float) -> None:
        with self._tx() as conn:
            conn.execute(
                g.gate_policy.update()
                .where(g.gate_policy.c.gate_id == gate_id)
                .values(reminded_at=at)
            )

    @staticmethod
    def _save_gate_policy(conn: Connection, gate_id: str, policy: dict[str, Any]) -> None:
        conn.execute(
            g.gate_policy.insert().values(
                gate_id=gate_id,
                on_timeout=policy.get("on_timeout", "reject"),
                remind_every=policy.get("remind_every"),
                supersede=bool(policy.get("supersede", True)),
                auto_approve_if=policy.get("auto_approve_if"),
                reminded_at=None,
                announced_at=None,
            )
        )


def _fsync_sqlite(database: str | None) -> None:
    if not database or database == ":memory:":
        return
    for path in (Path(f"{database}-wal"), Path(database)):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return
