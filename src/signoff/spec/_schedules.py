"""Checks of a flow's ``schedule`` (a cron string or a mapping) and its ``triggers`` list.

Mixed into the loader's checker: the same one pass, the same issues with file, line, column
and field path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from signoff.domain.specs import ScheduleSpec, TriggerKind, TriggerSpec
from signoff.spec._schema import TRIGGER_KEYS, ScheduleModel, TriggerModel
from signoff.spec._values import DECAY_METRICS, cron_parser
from signoff.spec._yaml import Loc, type_name

__all__ = ["ScheduleChecks"]

_M = TypeVar("_M", bound=BaseModel)


class ScheduleChecks:
    """``schedule``/``recurring`` and ``triggers``: shapes, keys per kind, defaults."""

    if TYPE_CHECKING:  # provided by the loader's checker

        def error(
            self,
            loc: Loc,
            message: str,
            *,
            at_key: bool = False,
            pos: Loc | None = None,
            severity: str = "error",
        ) -> None: ...

        def line_of(self, loc: Loc) -> int: ...

        def validate(
            self, model: type[_M], raw: object, loc: Loc
        ) -> tuple[_M | None, set[str]]: ...

    def check_schedule(self, data: dict[str, Any]) -> tuple[str | None, ScheduleSpec | None]:
        """``schedule`` (or ``recurring``): a cron string, or a mapping with its policies.

        Returns the cron line and, when the mapping sets anything but the defaults (UTC,
        catchup none, overlap skip), the whole schedule.
        """
        key = "schedule" if data.get("schedule") is not None else "recurring"
        raw = data.get(key)
        if isinstance(raw, str):
            try:
                return cron_parser(key)(raw), None
            except ValueError:
                return None, None  # reported by the schema pass
        if not isinstance(raw, dict):
            return None, None
        model, _ = self.validate(ScheduleModel, raw, (key,))
        if model is None:
            return None, None
        spec = model.to_spec()
        return spec.cron, None if spec == ScheduleSpec(cron=spec.cron) else spec

    def check_triggers(self, raw: object) -> tuple[TriggerSpec, ...]:
        """Each trigger: its keys for its kind, what it needs, and no rule given twice."""
        found: list[TriggerSpec] = []
        first: dict[TriggerSpec, int] = {}
        for i, item in enumerate(raw if isinstance(raw, list) else []):
            loc: Loc = ("triggers", i)
            if not isinstance(item, dict):
                got = type_name(item)
                self.error(loc, f"a trigger must be a mapping like {{on: drift, ...}}, got {got}")
                continue
            model, broken = self.validate(TriggerModel, item, loc)
            if model is None or "on" in broken:
                continue
            allowed = TRIGGER_KEYS[model.on] | {"on"}
            bad = [k for k in item if k in TriggerModel.model_fields and k not in allowed]
            for key in bad:
                message = f"key '{key}' is not allowed on a trigger on '{model.on.value}'"
                self.error((*loc, key), message, at_key=True)
            if bad or broken:
                continue
            trigger = self.trigger_spec(loc, item, model)
            if trigger is None:
                continue
            if trigger in first:
                line = self.line_of(("triggers", first[trigger]))
                self.error(loc, f"the same trigger as the one at line {line}")
                continue
            first[trigger] = i
            found.append(trigger)
        webhooks = [i for i, t in enumerate(found) if t.kind is TriggerKind.WEBHOOK]
        if len(webhooks) > 1:
            self.error(("triggers", webhooks[1]), "a flow has at most one webhook trigger")
        return tuple(found)

    def trigger_spec(self, loc: Loc, raw: dict[str, Any], m: TriggerModel) -> TriggerSpec | None:
        """The domain trigger with its defaults, or None after reporting what is missing."""
        kind = m.on
        if kind is TriggerKind.WEBHOOK:
            return TriggerSpec(kind)
        if kind is TriggerKind.DATA:
            if m.path is None:
                self.error((*loc, "path"), "a data trigger needs a 'path'", pos=loc)
                return None
            return TriggerSpec(kind, path=m.path, every_seconds=m.every or 60.0)
        if m.endpoint is None:
            self.error((*loc, "endpoint"), f"a {kind.value} trigger needs an 'endpoint'", pos=loc)
            return None
        common: dict[str, Any] = {
            "endpoint": m.endpoint,
            "min_events": m.min_events or 100,
            "every_seconds": m.every or 300.0,
            "window_seconds": m.window or (3600.0 if kind is TriggerKind.ERROR_RATE else 604800.0),
        }
        if kind is TriggerKind.ERROR_RATE:
            if m.above is None or not 0 <= m.above < 1:
                message = "an error_rate trigger needs 'above': a share from 0 to 1, like 0.05"
                self.error((*loc, "above"), message, pos=(*loc, "above") if "above" in raw else loc)
                return None
            return TriggerSpec(kind, above=m.above, **common)
        metric = m.metric
        if kind is TriggerKind.DRIFT:
            metric = metric or "psi"
            if metric not in DECAY_METRICS[kind]:
                self.error((*loc, "metric"), f"a drift trigger measures psi or ks, not {metric}")
                return None
            threshold = (
                m.threshold if m.threshold is not None else (0.2 if metric == "psi" else 0.1)
            )
            return TriggerSpec(
                kind, metric=metric, threshold=threshold, features=m.features or (), **common
            )
        return self.quality_spec(loc, raw, m, common)

    def quality_spec(
        self, loc: Loc, raw: dict[str, Any], m: TriggerModel, common: dict[str, Any]
    ) -> TriggerSpec | None:
        """A quality rule: a known metric with the bound on the right side."""
        metric = m.metric
        if metric is None or metric not in DECAY_METRICS[TriggerKind.QUALITY]:
            allowed = ", ".join(DECAY_METRICS[TriggerKind.QUALITY])
            message = f"a quality trigger needs a 'metric': one of {allowed}"
            self.error((*loc, "metric"), message, pos=(*loc, "metric") if metric else loc)
            return None
        lower_is_better = metric == "rmse"
        want, other = ("above", "below") if lower_is_better else ("below", "above")
        if raw.get(other) is not None:
            what = "an error (lower is better)" if lower_is_better else "a score (higher is better)"
            message = f"{metric} is {what}: the rule fires {want} a bound; use '{want}'"
            self.error((*loc, other), message, at_key=True)
            return None
        bound = m.above if lower_is_better else m.below
        if bound is None:
            self.error((*loc, want), f"a quality trigger on {metric} needs '{want}'", pos=loc)
            return None
        if metric != "ndcg":
            for key in ("group_by", "k"):
                if raw.get(key) is not None:
                    self.error((*loc, key), f"'{key}' is for ndcg only", at_key=True)
                    return None
        return TriggerSpec(
            TriggerKind.QUALITY,
            metric=metric,
            below=m.below,
            above=m.above,
            group_by=m.group_by,
            k=m.k,
            **common,
        )
