"""The audit log: every gate event, newest first, with whether the hash chain is intact.

The chain is always verified over the whole log (a filter by run only narrows what is
listed), the same check ``signoff audit verify`` makes.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from signoff.server.deps import AppDep, SignedInDep
from signoff.server.ui.layout import PageRoute, show

__all__ = ["router"]

router = APIRouter(route_class=PageRoute, include_in_schema=False)

_SHOWN = 500
_HIDDEN = ("model_digest", "report_digest")


def _details(data: dict[str, object]) -> str:
    shown = {k: v for k, v in data.items() if k not in _HIDDEN}
    text = json.dumps(shown, sort_keys=True, default=str, separators=(", ", ": "))
    return text if len(text) <= 300 else text[:297] + "..."


@router.get("/audit")
def audit_page(
    app: AppDep,
    who: SignedInDep,
    run: str = Query("", max_length=64),
) -> HTMLResponse:
    """The audit log (or one run's entries) and the chain's verdict."""
    entries = app.store.list_audit()
    breaks = app.verify_audit().breaks
    chosen = [e for e in entries if not run or e.run_id == run]
    chosen.reverse()
    return show(
        "audit.html",
        who,
        entries=[(e, _details(e.data)) for e in chosen[:_SHOWN]],
        total=len(chosen),
        shown=min(len(chosen), _SHOWN),
        breaks=breaks,
        count=len(entries),
        run=run,
    )
