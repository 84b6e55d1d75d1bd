"""Auto-approval rules: evaluated over the review report's figures, recorded like a decision."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["RuleVerdict", "evaluate_rule"]


@dataclass(frozen=True, slots=True)
class RuleVerdict:
    """Whether the rule holds, and each check that made it so (for the audit log)."""

    holds: bool
    checks: tuple[dict[str, Any], ...]

    def to_json(self) -> dict[str, Any]:
        return {"holds": self.holds, "checks": list(self.checks)}


def _metrics(section: Any) -> dict[str, float]:
    if not isinstance(section, dict):
        return {}
    values = section.get("metrics", section)
    return {k: float(v) for k, v in values.items() if isinstance(v, int | float)}


def evaluate_rule(rule_json: str, report: dict[str, Any]) -> RuleVerdict:
    """Check ``beats_champion_on`` (every metric, by ``margin``) and ``no_drift``.

    The challenger and champion figures come from the report: the select task's comparison
    on the same held-out data when there is one, else each model's recorded metrics. With no
    champion in production the rule does not hold: a first deployment is decided by people.
    """
    rule = json.loads(rule_json)
    checks: list[dict[str, Any]] = []
    comparison = report.get("comparison") if isinstance(report.get("comparison"), dict) else None
    if comparison and comparison.get("champion"):
        challenger = _metrics(comparison.get("challenger"))
        champion = _metrics(comparison.get("champion"))
        basis = "same held-out data" if comparison.get("same_holdout") else "recorded metrics"
    else:
        challenger = _metrics(report.get("challenger") or {})
        champion = _metrics(report.get("champion") or {})
        basis = "recorded metrics"
    margin = float(rule.get("margin", 0.0))
    if not champion:
        checks.append({"check": "champion", "ok": False, "why": "no model in production"})
    for metric in rule.get("beats_champion_on", []):
        a, b = challenger.get(metric), champion.get(metric)
        if a is None or b is None:
            checks.append({"check": metric, "ok": False, "why": "metric missing", "basis": basis})
            continue
        ok = a - b >= margin
        checks.append(
            {
                "check": metric,
                "ok": ok,
                "challenger": a,
                "champion": b,
                "delta": a - b,
                "margin": margin,
                "basis": basis,
            }
        )
    if rule.get("no_drift"):
        raw = report.get("drift")
        drift: dict[str, Any] = raw if isinstance(raw, dict) else {}
        flagged = bool(drift.get("flag"))
        known = "flag" in drift and drift.get("computed", True) is not False
        checks.append(
            {
                "check": "no_drift",
                "ok": known and not flagged,
                "why": "drift flagged" if flagged else ("no drift" if known else "drift unknown"),
            }
        )
    return RuleVerdict(holds=bool(checks) and all(c["ok"] for c in checks), checks=tuple(checks))
