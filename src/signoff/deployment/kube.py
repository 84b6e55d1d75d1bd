"""Kubernetes building blocks shared by every manifest signoff writes.

Object names and label values, the pinned image rule, the security context every container
gets, and YAML output. Nothing here talks to a cluster: manifests are plain data.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

from ruamel.yaml import YAML

from signoff.errors import SignoffError

__all__ = [
    "DEFAULT_IMAGE_REPOSITORY",
    "ImageError",
    "check_image",
    "container_security",
    "default_image",
    "dns_name",
    "label_value",
    "pod_security",
    "yaml_documents",
]

DEFAULT_IMAGE_REPOSITORY = "ghcr.io/signoff/signoff"
RUN_AS_USER = 10001  # any non-zero uid; the image's files must be readable by it
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class ImageError(SignoffError, ValueError):
    """A container image that is not pinned (no tag, ``:latest``) or is not an image name."""


def default_image(version: str) -> str:
    """The signoff image of this signoff version (what ``--image`` defaults to)."""
    return f"{DEFAULT_IMAGE_REPOSITORY}:{version}"


def check_image(image: str) -> str:
    """Return ``image`` if it is pinned to a tag or a digest; else raise :class:`ImageError`.

    A pod restarted next month must run the same bytes: an untagged image means ``:latest``,
    and ``:latest`` moves.
    """
    text = image.strip()
    if not text or any(c.isspace() for c in text):
        raise ImageError(f"image {image!r} is not an image name")
    if "@" in text:
        name, digest = text.split("@", 1)
        if not name or not _DIGEST.match(digest):
            raise ImageError(f"image {image!r}: a digest must be sha256:<64 hex digits>")
        return text
    last = text.rsplit("/", 1)[-1]
    if ":" not in last:
        raise ImageError(
            f"image {image!r} has no tag: pin a version (e.g. {text}:1.2.3) or a digest "
            "(@sha256:...), an untagged image is :latest and changes under you"
        )
    tag = last.rsplit(":", 1)[1]
    if tag == "latest":
        raise ImageError(
            f"image {image!r} is not pinned: :latest changes under you; give a version tag "
            "or a digest (@sha256:...)"
        )
    if not _TAG.match(tag):
        raise ImageError(f"image {image!r}: {tag!r} is not a valid tag")
    return text


def dns_name(text: str, *, limit: int = 63) -> str:
    """A Kubernetes object name: lower case letters, digits and '-', at most ``limit``."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return name[:limit].rstrip("-") or "signoff"


def label_value(text: str) -> str:
    """A label value: letters, digits, '-', '_', '.', at most 63, alphanumeric at both ends."""
    value = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:63]
    return value.strip("-_.") or "unnamed"


def pod_security() -> dict[str, Any]:
    """The pod-level security context: not root, default seccomp profile."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "fsGroup": RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security(*, read_only_root: bool = True) -> dict[str, Any]:
    """The container-level security context: no privilege escalation, no capabilities."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": read_only_root,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def yaml_documents(docs: list[dict[str, Any]], header: str = "") -> str:
    """``docs`` as one YAML stream (``---`` between documents), after a comment ``header``."""
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.width = 4096  # keep long commands on one line
    buffer = io.StringIO()
    # a copy without shared objects, so the YAML has no anchors and aliases
    yaml.dump_all(json.loads(json.dumps(docs)), buffer)
    return header + buffer.getvalue()
