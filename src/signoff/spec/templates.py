"""``{{ }}`` templates in task commands: which variables they use, and rendering them safely.

Templates run in a jinja2 sandbox with ``StrictUndefined``: a missing variable is an error,
never an empty string in a shell command.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, meta
from jinja2.sandbox import SandboxedEnvironment

from signoff.errors import ExecutionError

__all__ = ["TemplateRenderError", "render", "task_slug", "template_variables"]

_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


class TemplateRenderError(ExecutionError, ValueError):
    """A command template could not be rendered (missing variable, bad syntax, unsafe access)."""


def template_variables(template: str) -> set[str]:
    """The undeclared variables a template reads; raises ``ValueError`` on a syntax error."""
    try:
        parsed = _ENV.parse(template)
    except TemplateSyntaxError as exc:
        raise ValueError(_syntax_message(exc)) from None
    return set(meta.find_undeclared_variables(parsed))


def render(template: str, variables: Mapping[str, object]) -> str:
    """Render ``template`` with ``variables``; raises :class:`TemplateRenderError` on failure."""
    try:
        return _ENV.from_string(template).render(dict(variables))
    except TemplateSyntaxError as exc:
        raise TemplateRenderError(_syntax_message(exc)) from None
    except TemplateError as exc:
        message = exc.message or type(exc).__name__
        raise TemplateRenderError(f"cannot render template {template!r}: {message}") from None
    except Exception as exc:  # e.g. {{ a / 0 }}: any failure inside the template is the flow's
        raise TemplateRenderError(f"cannot render template {template!r}: {exc}") from exc


def task_slug(name: str) -> str:
    """A task name as a folder or variable name: ``"Train XGB"`` -> ``"train_xgb"``.

    Lowercase ASCII letters and digits; every run of other characters becomes one ``_``;
    leading and trailing ``_`` are stripped.
    """
    return _NON_ALNUM.sub("_", name.lower()).strip("_")


def _syntax_message(exc: TemplateSyntaxError) -> str:
    return f"template syntax error on line {exc.lineno}: {exc.message}"
