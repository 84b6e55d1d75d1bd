"""Serving commands: deploy, rollback, promote, and the ``endpoints`` group.

``signoff endpoints`` lists endpoints; ``endpoints stop``, ``endpoints history`` and
``endpoints export`` act on one. ``deploy``, ``rollback`` and ``promote`` change what an
endpoint serves through the same code as the deploy task
(:class:`signoff.deployment.Deployer`): digest check, load beside, warm-up, atomic switch,
and one recorded deployment per change.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from signoff._version import __version__
from signoff.bootstrap import App, build_app
from signoff.cli import views
from signoff.cli.auth import identify
from signoff.cli.console import JsonOpt, err, out, print_json, read_settings, settings_user
from signoff.deployment import Deployer, approval_of, resolve_model_version, why_unapproved
from signoff.deployment.kube import check_image, default_image
from signoff.deployment.manifests import ExportFormat, build_manifests, is_remote_store
from signoff.domain.names import check_endpoint_name
from signoff.domain.records import DeploymentKind, EndpointRecord, ModelVersionRecord
from signoff.domain.specs import Resources
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
@endpoints_app.command("export")
def endpoints_export(
    endpoint: Annotated[str, typer.Argument(help="Endpoint name.")],
    format_: Annotated[
        ExportFormat,
        typer.Option(
            "--format",
            help="deployment (Deployment + Service; 'kubernetes' is the same), kserve "
            "(InferenceService) or rayservice (KubeRay RayService).",
        ),
    ] = ExportFormat.DEPLOYMENT,
    image: Annotated[
        str | None,
        typer.Option(
            "--image",
            help=f"Container image with signoff installed, pinned to a tag or digest "
            f"[default: {default_image(__version__)}].",
        ),
    ] = None,
    replicas: Annotated[int, typer.Option("--replicas", min=1, max=1000)] = 1,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Write manifests that serve ENDPOINT's current model version on Kubernetes (YAML)."""
    check_endpoint_name(endpoint)
    pinned = check_image(image or default_image(__version__))
    settings = read_settings()
    app_ = build_app(settings)
    try:
        ep = app_.store.get_endpoint(endpoint)
        if ep is None:
            raise NotFoundError(f"no endpoint {endpoint!r}")
        if ep.model_version_id is None:
            raise SignoffError(f"endpoint {endpoint} serves no model version yet")
        model, canary, traffic, resources = _serving_state(app_, ep)
        url = settings.resolved_artifacts_url
        files = _model_files(app_, model)
        canary_files = _model_files(app_, canary) if canary is not None else None
        remote = is_remote_store(url) and files is not None
        remote = remote and (canary is None or canary_files is not None)
        text = build_manifests(
            ep,
            model,
            format_,
            image=pinned,
            artifacts_url=url if remote else None,
            model_files=files,
            canary_files=canary_files,
            canary=canary,
            canary_traffic=traffic,
            resources=resources,
            replicas=replicas,
        )
    finally:
        app_.close()
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        message = f"wrote {format_.value} manifests for {endpoint} ({model.label}) to {output}"
        out.print(Text(message))


def _serving_state(
    app_: App, ep: EndpointRecord
) -> tuple[ModelVersionRecord, ModelVersionRecord | None, int, Resources | None]:
    """The stable version, the canary and its share (if any), and the deploy task's resources."""
    rows = app_.store.list_deployments(ep.name)
    last = rows[-1] if rows else None
    stable_id = ep.model_version_id
    canary: ModelVersionRecord | None = None
    traffic = 0
    if last is not None and last.kind is DeploymentKind.CANARY and last.previous_model_version_id:
        canary = app_.store.get_model_version(last.model_version_id)
        traffic = last.traffic
        stable_id = last.previous_model_version_id
    if stable_id is None:
        raise SignoffError(f"endpoint {ep.name} serves no model version yet")
    model = app_.store.get_model_version(stable_id)
    resources = None
    placed = next((r for r in reversed(rows) if r.model_version_id == stable_id), last)
    if placed is not None and placed.run_id is not None:
        resources = _deploy_resources(app_, placed.run_id, ep.name)
    return model, canary, traffic, resources


def _model_files(app_: App, model: ModelVersionRecord) -> dict[str, str] | None:
    """Each file of the model's folder (relative path -> sha256), from its task run's records.

    The records name files relative to the task run's output folder; the model folder is
    the longest tail of ``model.path`` that some of them sit under. None when the version
    has no stored files (registered from a folder outside a run).
    """
    records = app_.store.list_artifacts(model.task_run_id)
    parts = Path(model.path).parts
    for start in range(1, len(parts)):
        prefix = "/".join(parts[start:]) + "/"
        found = {r.path[len(prefix) :]: r.sha256 for r in records if r.path.startswith(prefix)}
        if found:
            return found
    return None


def _deploy_resources(app_: App, run_id: str, endpoint: str) -> Resources | None:
    """The ``resources:`` of the deploy task of ``run_id`` that targets ``endpoint``."""
    run = app_.store.get_run(run_id)
    flow = app_.store.get_flow(run.flow_hash)
    for task in flow.tasks:
        if task.deploy is not None and task.deploy.endpoint == endpoint:
            return task.resources
    return None
