"""What happens around a gate besides decisions: opening (supersede, rule, e-mails), timers.

``GateService.after_open`` runs right after a gate opened: it closes older open gates of the
same flow (``supersede``), evaluates ``auto_approve_if`` (recorded like a decision), and sends
each approver an e-mail with signed decision links; a shared channel (the webhook) gets one
notice with the review page's address instead. ``expire_due`` and ``remind_due`` are the
timers: called by ``signoff server`` every few seconds, or by ``signoff gates tick``.
A timeout never approves.
"""

from __future__ import annotations

import dataclasses
import html
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from signoff.domain.gates import expand_targets
from signoff.domain.ports import Clock, Message, Notifier
from signoff.domain.records import AuditEvent, GateRecord, RunRecord
from signoff.domain.states import RunState, TaskRunState
from signoff.errors import ConflictError, SignoffError
from signoff.gates.decide import DecisionStore, decide_gate
from signoff.gates.links import LinkSigner
from signoff.gates.rules import evaluate_rule

__all__ = ["RULE_ACTOR", "SHARED", "GateService"]

RULE_ACTOR = "signoff:rule"
# Who a shared channel's notice is claimed for: everyone who reads the channel.
SHARED = "*"


@dataclass
class GateService:
    """Gate side effects, wired with the store, the clock, notifiers and the link signer."""

    store: DecisionStore
    clock: Clock
    signer: LinkSigner
    new_id: Callable[[], str]
    notifiers: Sequence[Notifier] = field(default_factory=tuple)

    # -------------------------------------------------------------------- opening
    def after_open(self, gate: GateRecord) -> None:
        """Supersede older gates, try the auto-approve rule, then notify the approvers.

        Marks the gate announced when done; a driver restarted after a crash calls this
        again for a gate not yet announced (notices are keyed, so none goes out twice).
        """
        policy = self.store.gate_policy(gate.id)
        run = self.store.get_run(gate.run_id)
        if policy.get("supersede", True):
            self._supersede_older(gate, run)
        rule = policy.get("auto_approve_if")
        if not (rule and self._auto_approve(gate, rule)):
            # Only this call, or one finishing a dead driver's, ever sends these: a claim
            # whose sending was never confirmed is the dead one's, and is taken over.
            self.notify(gate, kind="opened", retake_unsent=True)
        self.store.mark_gate_announced(gate.id, self.clock.now())

    def _supersede_older(self, gate: GateRecord, run: RunRecord) -> None:
        for older in self.store.waiting_gates():
            if older.run_id == gate.run_id or older.opened_at > gate.opened_at:
                continue  # a run's own other gates are not older runs' gates
            older_run = self.store.get_run(older.run_id)
            if older_run.flow_name != run.flow_name:
                continue
            if not self.store.gate_policy(older.id).get("supersede", True):
                continue
            tr = self.store.get_task_run(older.task_run_id)
            reason = f"superseded by run {run.id}"
            try:
                self.store.close_gate(
                    tr,
                    TaskRunState.CANCELLED,
                    older_run,
                    RunState.CANCELLED
                    if older_run.state is RunState.WAITING_FOR_APPROVAL
                    else None,
                    at=self.clock.now(),
                    reason=reason,
                    actor=None,
                    audit=[
                        AuditEvent("superseded", older.run_id, older.id, None, {"by_run": run.id})
                    ],
                )
            except ConflictError:
                continue  # decided meanwhile: the decision stands

    def _auto_approve(self, gate: GateRecord, rule: str) -> bool:
        report = _read_report(gate)
        verdict = evaluate_rule(rule, report)
        self.store.append_audit(
            [
                AuditEvent(
                    "rule_evaluated",
                    gate.run_id,
                    gate.id,
                    RULE_ACTOR,
                    {"rule": json.loads(rule), **verdict.to_json()},
                )
            ],
            at=self.clock.now(),
        )
        if not verdict.holds:
            return False
        tr = self.store.get_task_run(gate.task_run_id)
        summary = "; ".join(
            f"{c['check']} {c.get('delta', ''):+.4g}" if "delta" in c else str(c["check"])
            for c in verdict.checks
        )
        try:
            decide_gate(
                self.store,
                self.clock,
                gate,
                tr,
                actor=RULE_ACTOR,
                approve=True,
                comment=f"auto_approve_if held: {summary}",
                channel="rule",
                new_id=self.new_id,
                check_eligibility=False,
            )
        except SignoffError:
            return False
        return True

    # --------------------------------------------------------------- notifications
    def notify(self, gate: GateRecord, *, kind: str, retake_unsent: bool = False) -> list[str]:
        """Tell the approvers who have not decided yet; each message at most once per channel.

        A personal notifier (e-mail) gets one message per approver with that approver's own
        signed links. A shared one (a webhook into a team channel) gets one notice per gate
        event with the review page's address only: a link posted where others read it would
        let any reader decide as its owner.
        """
        if not self.notifiers:
            return []
        tr = self.store.get_task_run(gate.task_run_id)
        if tr.state is not TaskRunState.WAITING_FOR_APPROVAL:
            return []
        run = self.store.get_run(gate.run_id)
        decided = {d.actor for d in self.store.list_decisions(gate.id) if d.decision != "refused"}
        users = sorted(expand_targets(gate.targets, self.store.groups()) - decided)
        if not users:
            return []
        report = _read_report(gate)
        now = self.clock.now()
        stamp = int(now) if kind == "reminder" else 0
        personal = [n for n in self.notifiers if n.personal]
        shared = [n for n in self.notifiers if not n.personal]
        sent: list[str] = []
        for name in users if personal else ():
            key = f"{gate.id}:{name}:{kind}:{stamp}"
            message: Message | None = None
            for notifier in personal:
                if not self._claim(notifier, key, gate, name, kind, now, retake_unsent):
                    continue
                if message is None:  # links are minted and stored only for what is sent
                    message = self._personal_message(gate, run, name, report, kind, key)
                note = self._send(notifier, message, key, gate, name, kind, now)
                if note is not None:
                    sent.append(note)
        if shared:
            key = f"{gate.id}:{SHARED}:{kind}:{stamp}"
            review_url = f"{self.signer.base_url}/gates/{gate.id}"
            notice = _notice(gate, run, users, report, kind, review_url, key)
            for notifier in shared:
                if not self._claim(notifier, key, gate, SHARED, kind, now, retake_unsent):
                    continue
                note = self._send(notifier, notice, key, gate, None, kind, now)
                if note is not None:
                    sent.append(note)
        return sent

    def _personal_message(
        self,
        gate: GateRecord,
        run: RunRecord,
        name: str,
        report: dict[str, Any],
        kind: str,
        key: str,
    ) -> Message:
        links = {
            d: self.signer.mint(gate_id=gate.id, user=name, decision=d, expires_at=gate.expires_at)
            for d in ("approve", "reject")
        }
        self.store.add_link_tokens([link.record for link in links.values()])
        user = self.store.get_user(name)
        message = _message(gate, run, name, user.email if user else None, links, report, kind)
        return dataclasses.replace(message, key=key)

    def _claim(
        self,
        notifier: Notifier,
        key: str,
        gate: GateRecord,
        user: str,
        kind: str,
        now: float,
        retake_unsent: bool,
    ) -> bool:
        """Reserve ``key`` on the notifier's channel; False when it was already sent."""
        return self.store.claim_notification(
            key=f"{key}:{notifier.channel}",
            gate_id=gate.id,
            user=user,
            kind=kind,
            channel=notifier.channel,
            at=now,
            retake_unsent=retake_unsent,
        )

    def _send(
        self,
        notifier: Notifier,
        message: Message,
        key: str,
        gate: GateRecord,
        user: str | None,
        kind: str,
        now: float,
    ) -> str | None:
        """Deliver a claimed message and audit it; a failure gives the claim back."""
        try:
            note = notifier.send(message)
        except Exception as exc:  # a channel down must not stop the others
            self.store.release_notification(f"{key}:{notifier.channel}")
            error = {"channel": notifier.channel, "error": str(exc)[:500]}
            self.store.append_audit(
                [AuditEvent("notify_failed", gate.run_id, gate.id, user, error)], at=now
            )
            return None
        self.store.mark_notification_sent(f"{key}:{notifier.channel}", now)
        event = "notified" if kind == "opened" else "reminded"
        data = {"channel": notifier.channel, "note": note}
        self.store.append_audit([AuditEvent(event, gate.run_id, gate.id, user, data)], at=now)
        return note

    # ---------------------------------------------------------------------- timers
    def expire_due(self) -> list[str]:
        """End every gate past its timeout as ``expired`` (never approved); return run ids."""
        now = self.clock.now()
        ended = []
        for gate in self.store.waiting_gates():
            if gate.expires_at > now:
                continue
            tr = self.store.get_task_run(gate.task_run_id)
            run = self.store.get_run(gate.run_id)
            reason = "the gate timed out: nobody decided in time (a timeout never approves)"
            try:
                self.store.close_gate(
                    tr,
                    TaskRunState.EXPIRED,
                    run,
                    RunState.EXPIRED if run.state is RunState.WAITING_FOR_APPROVAL else None,
                    at=now,
                    reason=reason,
                    actor=None,
                    audit=[
                        AuditEvent(
                            "expired", gate.run_id, gate.id, None, {"expires_at": gate.expires_at}
                        )
                    ],
                )
            except ConflictError:
                continue  # decided at the same moment: the decision stands
            ended.append(gate.run_id)
        return ended

    def remind_due(self) -> list[str]:
        """Remind approvers of gates whose ``remind_every`` has passed since the last e-mail."""
        now = self.clock.now()
        reminded = []
        for gate in self.store.waiting_gates():
            policy = self.store.gate_policy(gate.id)
            every = policy.get("remind_every")
            if not every:
                continue
            last = policy.get("reminded_at") or gate.opened_at
            if now - last < every:
                continue
            self.store.set_reminded(gate.id, now)
            if self.notify(gate, kind="reminder"):
                reminded.append(gate.id)
        return reminded


def _read_report(gate: GateRecord) -> dict[str, Any]:
    if not gate.report_path:
        return {}
    try:
        data = json.loads(Path(gate.report_path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _headline(report: dict[str, Any]) -> str:
    summary = report.get("summary") if isinstance(report.get("summary"), dict) else {}
    head = summary.get("headline") if isinstance(summary, dict) else None
    if isinstance(head, dict) and head.get("metric"):
        champion = head.get("champion")
        if champion is None:
            return f"{head['metric']} {head.get('challenger')} (no model in production yet)"
        return (
            f"{head['metric']} {head.get('challenger'):.4g} vs {champion:.4g} in production "
            f"({head.get('delta', 0):+.4g})"
        )
    challenger = report.get("challenger") or {}
    metrics = challenger.get("metrics", {}) if isinstance(challenger, dict) else {}
    return ", ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items())[:3]) or "see the review"


def _message(
    gate: GateRecord,
    run: RunRecord,
    user: str,
    address: str | None,
    links: dict[str, Any],
    report: dict[str, Any],
    kind: str,
) -> Message:
    challenger = report.get("challenger") or {}
    label = challenger.get("label", "the challenger") if isinstance(challenger, dict) else ""
    headline = _headline(report)
    prefix = "Reminder: " if kind == "reminder" else ""
    subject = f"{prefix}Approval needed: {run.flow_name} {label} (run {run.id})"
    approve, reject = links["approve"].url, links["reject"].url
    text = (
        f"Hello {user},\n\n"
        f"Run {run.id} of flow {run.flow_name}, started by {run.started_by}, waits for your "
        f"decision before {label} goes to production.\n\n"
        f"{headline}\n\n"
        f"Review and approve: {approve}\n"
        f"Review and reject:  {reject}\n\n"
        "Each link opens the review and asks you to confirm; nothing is decided until you do.\n"
        "The links are yours only, work once, and expire with the gate.\n"
    )
    e = html.escape
    html_body = (
        f"<p>Hello {e(user)},</p>"
        f"<p>Run <code>{e(run.id)}</code> of flow <b>{e(run.flow_name)}</b>, started by "
        f"{e(run.started_by)}, waits for your decision before <b>{e(str(label))}</b> goes to "
        f"production.</p><p>{e(headline)}</p>"
        f'<p><a href="{e(approve)}">Review and approve</a> &middot; '
        f'<a href="{e(reject)}">Review and reject</a></p>'
        "<p>Each link opens the review and asks you to confirm; nothing is decided until you "
        "do. The links are yours only, work once, and expire with the gate.</p>"
    )
    return Message(
        to_user=user,
        to_address=address,
        subject=subject,
        text=text,
        html=html_body,
        key=f"{gate.id}:{user}:{kind}",
    )


def _notice(
    gate: GateRecord,
    run: RunRecord,
    waiting_for: list[str],
    report: dict[str, Any],
    kind: str,
    review_url: str,
    key: str,
) -> Message:
    """The notice for a shared channel: the review page's address, no one's decision links."""
    challenger = report.get("challenger") or {}
    label = challenger.get("label", "the challenger") if isinstance(challenger, dict) else ""
    headline = _headline(report)
    prefix = "Reminder: " if kind == "reminder" else ""
    who = ", ".join(waiting_for)
    text = (
        f"Run {run.id} of flow {run.flow_name}, started by {run.started_by}, waits for a "
        f"decision by {who} before {label} goes to production.\n\n"
        f"{headline}\n\n"
        f"Review (sign in to decide): {review_url}\n"
        "Each approver also has personal decision links by e-mail.\n"
    )
    e = html.escape
    html_body = (
        f"<p>Run <code>{e(run.id)}</code> of flow <b>{e(run.flow_name)}</b>, started by "
        f"{e(run.started_by)}, waits for a decision by {e(who)} before <b>{e(str(label))}</b> "
        f'goes to production.</p><p>{e(headline)}</p><p><a href="{e(review_url)}">Review '
        "(sign in to decide)</a></p>"
    )
    return Message(
        to_user=SHARED,
        to_address=None,
        subject=f"{prefix}Approval needed: {run.flow_name} {label} (run {run.id})",
        text=text,
        html=html_body,
        key=key,
    )
