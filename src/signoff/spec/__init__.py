"""Flow files and templates: YAML in, a validated :class:`~signoff.domain.specs.FlowSpec` out."""

from __future__ import annotations

from signoff.spec._json_schema import FLOW_SCHEMA_ID, FLOW_SCHEMA_VERSION, flow_json_schema
from signoff.spec._options import parse_rules
from signoff.spec.loader import (
    BUILTIN_VARIABLES,
    MAX_FLOW_BYTES,
    LoadedFlow,
    load_flow,
    parse_flow,
)
from signoff.spec.templates import TemplateRenderError, render, task_slug, template_variables

__all__ = [
    "BUILTIN_VARIABLES",
    "FLOW_SCHEMA_ID",
    "FLOW_SCHEMA_VERSION",
    "MAX_FLOW_BYTES",
    "LoadedFlow",
    "TemplateRenderError",
    "flow_json_schema",
    "load_flow",
    "parse_flow",
    "parse_rules",
    "render",
    "task_slug",
    "template_variables",
]
