"""Serving commands: deploy, rollback, promote, and the ``endpoints`` group.

``signoff endpoints`` lists endpoints; ``endpoints stop``, ``endpoints history`` and
``endpoints export`` act on one. ``deploy``, ``rollback`` and ``promote`` change what an
endpoint serves through the same code as the deploy task
(:class:`signoff.deployment.Deployer`): digest check, load beside, warm-up, atomic switch,
and one recorded deployment per change.
"""

from __future__ import annotations

import importlib.metadata
import io
import re
import sys
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text
from ruamel.yaml import YAML

from signoff.bootstrap import App, build_app
from signoff.cli import views
from signoff.cli.auth import identify
from signoff.cli.console import JsonOpt, err, out, print_json, read_settings, settings_user
from signoff.deployment import Deployer, approval_of, resolve_model_version, why_unapproved
from signoff.domain.names import check_endpoint_name
from signoff.domain.records import EndpointRecord, ModelVersionRecord
from signoff.engine.engine import new_id
from signoff.errors import NotFoundError, SignoffError
from signoff.views import inventory

__all__ = ["ExportFormat", "build_manifests", "endpoints_app", "register"]

endpoints_app = typer.Typer(help="Prediction endpoints.", invoke_without_command=True)

ActorOpt = Annotated[
    str | None,
    typer.Option(
        "--as", help="Who does it: an admin (default: SIGNOFF_USER or your login), recorded."
    ),
]
_CONTAINER_PORT = 8080
_IMAGE = "python:3.11-slim"
_PLACEHOLDER = "REPLACE-ME"


def register(cli: typer.Typer) -> None:
    """Add ``deploy``, ``rollback`` and ``promote`` to ``cli`` (``endpoints`` is a group)."""
    cli.command("deploy")(deploy_command)
    cli.command("rollback")(rollback_command)
    cli.command("promote")(promote_command)


def _deployer(app_: App) -> Deployer:
    return Deployer(app_.store, app_.engine.clock, app_.endpoints, new_id)


def _actor(app_: App, as_user: str | None) -> str:
    """Who changes an endpoint: a proven admin, or on a laptop without accounts the local user.

    On a store with users with passwords the admin must be signed in (``signoff login``,
    ``SIGNOFF_TOKEN``, or ``--as`` and a password on a terminal), as for decisions.
    """
    settings = read_settings()
    if not app_.store.list_users():
        return as_user or settings_user(settings)
    fallback = None if app_.store.has_password_users() else settings_user(settings)
    actor = identify(app_, settings, as_user or fallback, scope="admin").user
    user = app_.store.get_user(actor)
    if user is None or not user.active or "admin" not in user.roles:
        raise SignoffError(f"{actor} may not change endpoints: that takes the admin role")
    return actor


def _print_change(verb: str, result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(result)
        return
    split = ", ".join(f"{v} {p}%" for v, p in result["traffic"].items())
    before = result["previous_model_version"]
    # built as Text: labels and URLs are data, never markup
    out.print(
        Text.assemble(
            "endpoint ",
            (str(result["endpoint"]), "bold"),
            f" {verb} {result['model_version']}",
            f" (before: {before})" if before else "",
            f"; traffic: {split}; switched in {result['switch_seconds']:.3f}s; {result['url']}",
        )
    )


# --------------------------------------------------------------------- changes
def deploy_command(
    endpoint: Annotated[str, typer.Argument(help="Endpoint name.")],
    model_version: Annotated[str, typer.Argument(help="Model version: id, NAME:vN or NAME@ALIAS.")],
    traffic: Annotated[
        int, typer.Option(help="Percent of requests for it; below 100 makes a canary.")
    ] = 100,
    probation: Annotated[
        float, typer.Option(help="Seconds to watch its error rate after the switch.")
    ] = 0.0,
    max_error_rate: Annotated[
        float, typer.Option(help="Error rate (0..1) above which it is rolled back.")
    ] = 0.05,
    port: Annotated[int | None, typer.Option(help="Port for a newly started endpoint.")] = None,
    break_glass: Annotated[
        bool,
        typer.Option(
            "--break-glass",
            help="Serve it although no gate approved it (admins only, with --reason; audited "
            "and shown as an override).",
        ),
    ] = False,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why the override (with --break-glass).")
    ] = None,
    as_user: ActorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Serve MODEL_VERSION on ENDPOINT (an admin's deploy outside a flow).

    Only a version a gate approved, with the digest it approved, unless --break-glass
    --reason TEXT. The model folder must still have its registered digest. A running
    endpoint rolls over in place with zero failed requests; a stopped one is started.
    """
    check_endpoint_name(endpoint)
    if not 0.0 <= max_error_rate <= 1.0:
        raise SignoffError("--max-error-rate must be between 0 and 1")
    if probation < 0:
        raise SignoffError("--probation must be zero or more seconds")
    override = (reason or "").strip() or None
    if break_glass and override is None:
        raise SignoffError("--break-glass needs --reason TEXT: why no approval can wait")
    if override is not None and not break_glass:
        raise SignoffError("--reason is for --break-glass deploys")
    app_ = build_app(read_settings())
    try:
        actor = _actor(app_, as_user)
        model = resolve_model_version(app_.store, model_version)
        gate = approval_of(app_.store, model)
        if gate is None and not break_glass:
            raise SignoffError(
                f"{model.label} was not approved: {why_unapproved(app_.store, model)}. Approve "
                "it through its gate, or in an emergency deploy with --break-glass --reason "
                "TEXT (admins only; recorded and shown as an override)"
            )
        if gate is not None:
            override = None  # approved: no override to record
        else:
            err.print(Text(f"break-glass: {actor} serves {model.label}, which no gate approved"))
        approved = ""
        if gate is not None:
            who = sorted(
                {d.actor for d in app_.store.list_decisions(gate.id) if d.decision == "approve"}
            )
            approved = f", approved by {', '.join(who)}"
        result = _deployer(app_).deploy_version(
            endpoint,
            model,
            actor=actor,
            traffic=traffic,
            probation=probation,
            max_error_rate=max_error_rate,
            port=port,
            gate_id=gate.id if gate else None,
            why=f"deployed to {endpoint} by {actor}{approved}",
            override=override,
        )
        verb = "serves" if result["kind"] == "rollover" else "runs a canary of"
        _print_change(verb, result, as_json)
    finally:
        app_.close()


def _change(
    endpoint: str,
    as_user: str | None,
    as_json: bool,
    verb: str,
    act: Callable[[Deployer, str, str], dict[str, Any]],
) -> None:
    """One admin change of ENDPOINT by the deployer (``act(deployer, endpoint, actor)``)."""
    check_endpoint_name(endpoint)
    app_ = build_app(read_settings())
    try:
        result = act(_deployer(app_), endpoint, _actor(app_, as_user))
        _print_change(verb, result, as_json)
    finally:
        app_.close()


def rollback_command(
    endpoint: Annotated[str, typer.Argument(help="Endpoint name.")],
    as_user: ActorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Return ENDPOINT to the version it served before (or abort its canary)."""
    _change(endpoint, as_user, as_json, "is back on", lambda d, e, a: d.rollback(e, actor=a))


def promote_command(
    endpoint: Annotated[str, typer.Argument(help="Endpoint name.")],
    as_user: ActorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Give ENDPOINT's canary all traffic (above its error-rate rule, abort it instead)."""
    _change(endpoint, as_user, as_json, "promoted", lambda d, e, a: d.promote(e, actor=a))


# ------------------------------------------------------------------- endpoints
@endpoints_app.callback()
def endpoints(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List endpoints with their URL and the model version they serve."""
    if ctx.invoked_subcommand is not None:
        return
    app_ = build_app(read_settings())
    try:
        rows = inventory.endpoint_rows(app_.store, app_.endpoints.is_alive)
        if as_json:
            print_json(rows)
        else:
            views.print_endpoints(out, rows)
    finally:
        app_.close()


@endpoints_app.command("stop")
def endpoints_stop(name: Annotated[str, typer.Argument(help="Endpoint name.")]) -> None:
    """Stop an endpoint's serving process."""
    app_ = build_app(read_settings())
    try:
        ep = app_.store.get_endpoint(name)
        if ep is None:
            raise SignoffError(f"no endpoint {name!r}")
        if ep.pid and app_.endpoints.is_alive(ep.pid):
            app_.endpoints.stop(ep.pid)
        app_.store.save_endpoint(
            EndpointRecord(
                name=ep.name,
                url=ep.url,
                port=ep.port,
                pid=None,
                model_version_id=ep.model_version_id,
                state="stopped",
                updated_at=time.time(),
            )
        )
        out.print(f"endpoint {name} stopped")
    finally:
        app_.close()


# --------------------------------------------------------------------- history
@endpoints_app.command("history")
def endpoints_history(
    endpoint: Annotated[str, typer.Argument(help="Endpoint name.")],
    as_json: JsonOpt = False,
) -> None:
    """Every deployment of ENDPOINT: when, which kind, which version, who, which approval."""
    check_endpoint_name(endpoint)
    app_ = build_app(read_settings())
    try:
        rows = inventory.deployment_history(app_.store, endpoint)
        if as_json:
            print_json(rows)
            return
        table = Table()
        for col in ("when", "kind", "model version", "traffic", "by", "approval", "reason"):
            table.add_column(col)
        for r in rows:
            approval = ""
            if r.gate_id:
                approval = f"gate {r.gate_id}"
                if r.approved_by:
                    approval += f" ({', '.join(r.approved_by)})"
            if r.override:
                approval = f"BREAK-GLASS: {r.override}"
            cells = (
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.at)),
                r.kind + (" (override)" if r.override else ""),
                r.model_version or "",
                f"{r.traffic}%",
                r.deployed_by,
                approval,
                r.reason or "",
            )
            table.add_row(*(Text(str(c)) for c in cells))  # data, never markup
        out.print(table)
    finally:
        app_.close()


# ---------------------------------------------------------------------- export
class ExportFormat(StrEnum):
    """Manifest kinds ``endpoints export`` writes."""

    KUBERNETES = "kubernetes"
    KSERVE = "kserve"


@endpoints_app.command("export")
def endpoints_export(
    endpoint: Annotated[str, typer.Argument(help="Endpoint name.")],
    format_: Annotated[
        ExportFormat, typer.Option("--format", help="kubernetes (Deployment + Service) or kserve.")
    ] = ExportFormat.KUBERNETES,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Write manifests that serve ENDPOINT's current model version elsewhere (YAML)."""
    check_endpoint_name(endpoint)
    app_ = build_app(read_settings())
    try:
        ep = app_.store.get_endpoint(endpoint)
        if ep is None:
            raise NotFoundError(f"no endpoint {endpoint!r}")
        if ep.model_version_id is None:
            raise SignoffError(f"endpoint {endpoint} serves no model version yet")
        model = app_.store.get_model_version(ep.model_version_id)
        text = build_manifests(ep, model, format_)
    finally:
        app_.close()
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        message = f"wrote {format_.value} manifests for {endpoint} ({model.label}) to {output}"
        out.print(Text(message))


def build_manifests(ep: EndpointRecord, model: ModelVersionRecord, fmt: ExportFormat) -> str:
    """YAML documents serving ``model`` with ``python -m signoff.serving`` in a container.

    The model folder itself is not in the manifests: it is mounted from a volume
    (Kubernetes) or fetched from a storage URI (KServe), both marked ``REPLACE-ME``. The
    endpoint checks the folder's digest at start and refuses any other files.
    """
    name = _dns_name(f"signoff-{ep.name}")
    metadata = {
        "name": name,
        "labels": {
            "app.kubernetes.io/name": "signoff-endpoint",
            "app.kubernetes.io/instance": name,
            "signoff.dev/endpoint": _label_value(ep.name),
            "signoff.dev/model-version": _label_value(model.label),
        },
        "annotations": {
            "signoff.dev/endpoint": ep.name,
            "signoff.dev/model-version": model.label,
            "signoff.dev/model-version-id": model.id,
            "signoff.dev/model-digest": model.digest,
            "signoff.dev/model-source": model.path,
        },
    }
    kserve = fmt is ExportFormat.KSERVE
    model_dir = "/mnt/models" if kserve else "/models/model"
    container: dict[str, Any] = {
        "name": "kserve-container" if kserve else "endpoint",
        "image": _IMAGE,
        "command": ["sh", "-c", _start_script(ep.name, model, model_dir)],
        "ports": [{"containerPort": _CONTAINER_PORT, "name": "http", "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": {"path": "/health", "port": _CONTAINER_PORT},
            "periodSeconds": 5,
        },
    }
    if kserve:
        docs = _kserve_documents(metadata, container)
        where = "the storage URI in STORAGE_URI (KServe copies it to /mnt/models)"
    else:
        docs = _deployment_documents(metadata, container, model_dir)
        where = f"the volume claim {_PLACEHOLDER}-model-folder (mounted at {model_dir})"
    header = (
        f"# signoff endpoint {ep.name}: model version {model.label}\n"
        f"# digest {model.digest}\n"
        f"# {_PLACEHOLDER}: put the model folder {model.path} at {where};\n"
        "# the endpoint checks its digest at start and refuses any other files.\n"
    )
    return header + _yaml_documents(docs)


def _kserve_documents(metadata: dict[str, Any], container: dict[str, Any]) -> list[Any]:
    """An InferenceService whose one container fetches the model from ``STORAGE_URI``."""
    container["env"] = [
        {"name": "STORAGE_URI", "value": f"{_PLACEHOLDER}: s3://bucket/path/to/model-folder"}
    ]
    return [
        {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": metadata,
            "spec": {"predictor": {"containers": [container]}},
        }
    ]


def _deployment_documents(
    metadata: dict[str, Any], container: dict[str, Any], model_dir: str
) -> list[Any]:
    """A Deployment mounting the model folder from a volume claim, and its Service."""
    container["livenessProbe"] = {
        "httpGet": {"path": "/health", "port": _CONTAINER_PORT},
        "initialDelaySeconds": 120,
        "periodSeconds": 10,
    }
    container["volumeMounts"] = [{"name": "model", "mountPath": model_dir, "readOnly": True}]
    selector = {"app.kubernetes.io/instance": metadata["name"]}
    claim = {"claimName": f"{_PLACEHOLDER}-model-folder", "readOnly": True}
    pod = {
        "metadata": {"labels": metadata["labels"], "annotations": metadata["annotations"]},
        "spec": {
            "containers": [container],
            "volumes": [{"name": "model", "persistentVolumeClaim": claim}],
        },
    }
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata,
            "spec": {"replicas": 1, "selector": {"matchLabels": selector}, "template": pod},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata,
            "spec": {
                "selector": selector,
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        },
    ]


def _yaml_documents(docs: list[Any]) -> str:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.width = 4096  # keep the start command on one line
    buffer = io.StringIO()
    yaml.dump_all(docs, buffer)
    return buffer.getvalue()


def _start_script(name: str, model: ModelVersionRecord, model_dir: str) -> str:
    try:
        version = importlib.metadata.version("signoff")
    except importlib.metadata.PackageNotFoundError:
        version = "0.1.0"
    return (
        f"pip install --no-cache-dir 'signoff[ml]=={version}' && "
        f"exec python -m signoff.serving --name {_shell_word(name)} "
        f"--model-dir {model_dir} --digest {model.digest} "
        f"--model-version {_shell_word(model.label)} --port {_CONTAINER_PORT} --host 0.0.0.0"
    )


def _shell_word(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def _dns_name(text: str) -> str:
    """A Kubernetes object name: lower case letters, digits and '-', at most 63 characters."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return name[:63].rstrip("-") or "signoff-endpoint"


def _label_value(text: str) -> str:
    """A label value: letters, digits, '-', '_', '.', at most 63, alphanumeric at both ends."""
    value = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:63]
    return value.strip("-_.") or "unnamed"
