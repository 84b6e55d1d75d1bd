"""Store part for web sign-in: sessions (kept as hashes of their ids) and failed logins."""

from __future__ import annotations

import sqlalchemy as sa

from signoff.domain.ports_store import WebSession
from signoff.store import _rows as rows
from signoff.store import _session_tables as s
from signoff.store._base import SqlBase

__all__ = ["SqlSessionStore"]


class SqlSessionStore(SqlBase):
    """Server-side web sessions and the failed-login counts the rate limit reads."""

    # --------------------------------------------------------------------- sessions
    def add_web_session(self, id_hash: str, user: str, *, at: float, client: str | None) -> None:
        """Record a new session (the caller made the id; only its hash arrives here)."""
        with self._tx() as conn:
            conn.execute(
                s.web_sessions.insert().values(
                    id_hash=id_hash,
                    user_name=user,
                    created_at=at,
                    last_seen_at=at,
                    client=(client or "")[:64] or None,
                )
            )

    def web_session(self, id_hash: str) -> WebSession | None:
        q = sa.select(s.web_sessions).where(s.web_sessions.c.id_hash == id_hash)
        found = self._all(q)
        return rows.WEB_SESSION(found[0]) if found else None

    def touch_web_session(self, id_hash: str, at: float) -> None:
        """Move a session's idle clock (sessions expire when idle too long)."""
        with self._tx() as conn:
            conn.execute(
                s.web_sessions.update()
                .where(s.web_sessions.c.id_hash == id_hash)
                .values(last_seen_at=at)
            )

    def delete_web_session(self, id_hash: str) -> None:
        with self._tx() as conn:
            conn.execute(s.web_sessions.delete().where(s.web_sessions.c.id_hash == id_hash))

    def delete_web_sessions(
        self,
        *,
        user: str | None = None,
        idle_before: float | None = None,
        created_before: float | None = None,
    ) -> int:
        """End every session of ``user``, or every one idle or created before a time."""
        c = s.web_sessions.c
        where = []
        if user is not None:
            where.append(c.user_name == user)
        if idle_before is not None:
            where.append(c.last_seen_at < idle_before)
        if created_before is not None:
            where.append(c.created_at < created_before)
        if not where:
            raise ValueError("say which sessions to end")
        with self._tx() as conn:
            res = conn.execute(s.web_sessions.delete().where(sa.or_(*where)))
            return int(res.rowcount or 0)

    # ---------------------------------------------------------------- failed logins
    def add_login_failure(
        self, user: str, client: str, at: float, *, forget_before: float | None = None
    ) -> None:
        """Count a failed login; failures older than ``forget_before`` are dropped meanwhile."""
        with self._tx() as conn:
            if forget_before is not None:
                conn.execute(s.login_failures.delete().where(s.login_failures.c.at < forget_before))
            conn.execute(
                s.login_failures.insert().values(user_name=user[:200], client=client[:64], at=at)
            )

    def count_login_failures(self, *, user: str, client: str, since: float) -> tuple[int, int]:
        """Failed logins since ``since``: (for this user name, from this client address)."""
        c = s.login_failures.c
        count = sa.func.count()
        q_user = sa.select(count).where(c.user_name == user[:200], c.at >= since)
        q_client = sa.select(count).where(c.client == client[:64], c.at >= since)
        with self.engine.connect() as conn:
            by_user = conn.execute(q_user).scalar_one()
            by_client = conn.execute(q_client).scalar_one()
        return int(by_user), int(by_client)

    def clear_login_failures(self, user: str, *, before: float | None = None) -> None:
        """Forget a user's failures (after a good login), or everyone's older than ``before``."""
        c = s.login_failures.c
        with self._tx() as conn:
            conn.execute(s.login_failures.delete().where(c.user_name == user[:200]))
            if before is not None:
                conn.execute(s.login_failures.delete().where(c.at < before))
