"""Endpoint names: the one rule every channel applies (flow files, SDK, CLI, API, runner).

An endpoint name becomes a folder under the home (``endpoints/<name>/``), a Kubernetes object
name and a URL path segment, so it must be safe in all three: lowercase ASCII letters, digits,
``-`` and ``_``, starting with a letter or a digit, at most 63 characters (a DNS label, with
``_`` allowed). Nothing else is ever accepted, so a name can never climb out of a folder
(``..``, ``/``), hide a character (NUL, look-alike letters) or differ only in case.
"""

from __future__ import annotations

import re
import unicodedata

from signoff.errors import SignoffError

__all__ = [
    "ENDPOINT_NAME_PATTERN",
    "ENDPOINT_NAME_RULE",
    "MAX_ENDPOINT_NAME",
    "InvalidNameError",
    "check_endpoint_name",
    "endpoint_name_problem",
    "suggest_endpoint_name",
]

MAX_ENDPOINT_NAME = 63
"""The longest endpoint name (a DNS label's limit)."""

ENDPOINT_NAME_PATTERN = rf"^[a-z0-9][a-z0-9_-]{{0,{MAX_ENDPOINT_NAME - 1}}}$"
"""The rule as a regular expression (also the JSON Schema pattern of flow files)."""

ENDPOINT_NAME_RULE = (
    "use lowercase letters, digits, '-' and '_', starting with a letter or a digit, "
    f"at most {MAX_ENDPOINT_NAME} characters"
)
"""The rule in words, for messages."""

# re.ASCII: \Z and the classes never stretch to other scripts; fullmatch: no trailing "\n"
_VALID = re.compile(r"[a-z0-9][a-z0-9_-]*", re.ASCII)
_INVALID_RUN = re.compile(r"[^a-z0-9_-]+", re.ASCII)
_SHOWN = 80  # longest part of a refused name repeated in a message


class InvalidNameError(SignoffError, ValueError):
    """An endpoint name breaks the naming rule; the message says why and suggests a name."""


def endpoint_name_problem(name: object) -> str | None:
    """Why ``name`` is not a valid endpoint name (with a suggestion), or None when it is."""
    if not isinstance(name, str):
        return f"an endpoint name must be a string, got {type(name).__name__}"
    if len(name) <= MAX_ENDPOINT_NAME and _VALID.fullmatch(name):
        return None
    shown = ascii(name[:_SHOWN]) + ("..." if len(name) > _SHOWN else "")
    if not name:
        problem = "an endpoint name must not be empty"
    elif len(name) > MAX_ENDPOINT_NAME:
        problem = f"endpoint name {shown} is {len(name)} characters long"
    else:
        problem = f"invalid endpoint name {shown}"
    suggestion = suggest_endpoint_name(name)
    hint = f" (for example {suggestion!r})" if suggestion else ""
    return f"{problem}: {ENDPOINT_NAME_RULE}{hint}"


def check_endpoint_name(name: str) -> str:
    """Return ``name`` when it follows the rule; raise :class:`InvalidNameError` otherwise."""
    problem = endpoint_name_problem(name)
    if problem is not None:
        raise InvalidNameError(problem)
    return name


def suggest_endpoint_name(text: str) -> str | None:
    """A valid name close to ``text`` (``"../Churn Model"`` -> ``"churn-model"``), or None."""
    # NFKD splits accented letters ("é" -> "e" + accent); what is still not ASCII is dropped
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    slug = _INVALID_RUN.sub("-", folded).strip("-_")
    slug = slug[:MAX_ENDPOINT_NAME].rstrip("-_")
    return slug if slug and _VALID.fullmatch(slug) else None
