"""Flow files and templates: YAML in, a validated :class:`~signoff.domain.specs.FlowSpec` out."""

from __future__ import annotations

from signoff.spec.loader import BUILTIN_VARIABLES, LoadedFlow, load_flow, parse_flow
from signoff.spec.templates import TemplateRenderError, render, task_slug, template_variables

__all__ = [
    "BUILTIN_VARIABLES",
    "LoadedFlow",
    "TemplateRenderError",
    "load_flow",
    "parse_flow",
    "render",
    "task_slug",
    "template_variables",
]
