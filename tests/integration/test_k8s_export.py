"""The Kubernetes exports through the real CLI, on a real store, and what their pods would run.

An endpoint with a canary is recorded in the store as the deployer records it; ``signoff
endpoints export`` and ``signoff kube manifests`` then write YAML that passes the same
offline schema checks as the unit tests. The commands the pods would run are run here too:
the migration Job's program on a fresh database, the endpoint's arguments through its own
argument parser, and the server's health route the probes use.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner

from k8s_schemas import check_document
from signoff.bootstrap import Settings, build_app
from signoff.cli.commands import app as cli_app
from signoff.deployment.cluster import MIGRATE
from signoff.domain.records import (
    DeploymentKind,
    DeploymentRecord,
    EndpointRecord,
    ModelVersionRecord,
    RunRecord,
    TaskRunRecord,
)
from signoff.domain.specs import DeploySpec, FlowSpec, Resources, TaskKind, TaskSpec
from signoff.domain.states import RunState, TaskRunState
from signoff.engine.engine import new_id
from signoff.serving.__main__ import parse_args
from signoff.store.sql import open_store

pytestmark = pytest.mark.timeout(120)
IMAGE = "registry.example/ml/signoff:0.1.0"


def _record_canary(database_url: str, tmp_path: Path) -> dict[str, str]:
    """Versions v1 (stable) and v2 (canary at 20%) of churn, deployed by a flow's deploy task."""
    store = open_store(database_url)
    try:
        deploy = TaskSpec(
            "deploy",
            TaskKind.DEPLOY,
            deploy=DeploySpec("churn", traffic=20),
            resources=Resources(cpu=2, memory_mb=1024),
        )
        spec = FlowSpec(name="train-churn", tasks=(deploy,))
        store.save_flow(spec, None)
        run = RunRecord(
            id=new_id(), flow_name=spec.name, flow_hash=spec.spec_hash, state=RunState.SUCCEEDED,
            version=0, params={}, started_by="carol", work_dir=str(tmp_path), created_at=1.0,
            updated_at=1.0,
        )  # fmt: skip
        tr = TaskRunRecord(
            id=new_id(), run_id=run.id, task_name="deploy", index=-1, kind=TaskKind.DEPLOY,
            params={}, state=TaskRunState.SUCCEEDED, version=0, attempt=1,
            work_dir=str(tmp_path), created_at=1.0,
        )  # fmt: skip
        store.create_run(run, [tr])
        ids = {}
        for n in (1, 2):
            mv = ModelVersionRecord(
                new_id(), "churn", n, "sklearn", str(tmp_path / f"v{n}"), f"{n}" * 64, [], {}, {},
                run.id, tr.id, float(n),
            )  # fmt: skip
            store.add_model_version(mv)
            ids[f"v{n}"] = mv.id
        store.save_endpoint(
            EndpointRecord("churn", "http://127.0.0.1:1", 1, None, ids["v1"], "stopped", 1.0)
        )
        store.add_deployment(
            DeploymentRecord(new_id(), "churn", ids["v1"], run.id, None, "dana", 1.0)
        )
        store.add_deployment(
            DeploymentRecord(
                new_id(),
                "churn",
                ids["v2"],
                run.id,
                None,
                "dana",
                2.0,
                kind=DeploymentKind.CANARY,
                traffic=20,
                previous_model_version_id=ids["v1"],
            )
        )
        return ids
    finally:
        store.close()


async def _get(asgi: Any, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://signoff") as client:
        return await client.get(path)


def _cli(env: dict[str, str], *args: str) -> Any:
    return CliRunner().invoke(cli_app, list(args), env=env, catch_exceptions=True)


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    if doc["kind"] == "InferenceService":
        return list(doc["spec"]["predictor"]["containers"])
    return list(doc["spec"]["template"]["spec"]["containers"])


def test_export_of_a_deployed_endpoint_through_the_cli(tmp_path: Path, database_url: str) -> None:
    _record_canary(database_url, tmp_path)
    env = {
        "SIGNOFF_HOME": str(tmp_path / "home"),
        "SIGNOFF_DATABASE_URL": database_url,
        "SIGNOFF_ARTIFACTS_URL": "s3://models/signoff",
    }
    kinds = {"deployment": ["Deployment", "Service"], "kubernetes": ["Deployment", "Service"]}
    kinds |= {"kserve": ["InferenceService"], "rayservice": ["RayService"]}
    for fmt, expected in kinds.items():
        target = tmp_path / f"{fmt}.yaml"
        result = _cli(
            env,
            "endpoints",
            "export",
            "churn",
            "--format",
            fmt,
            "--image",
            IMAGE,
            "-o",
            str(target),
        )
        assert result.exit_code == 0, result.output
        docs = list(YAML(typ="safe").load_all(target.read_text()))
        assert [d["kind"] for d in docs] == expected
        for doc in docs:
            check_document(doc)
            assert (
                doc["metadata"]["annotations"]["signoff.dev/artifacts-url"] == "s3://models/signoff"
            )
    (isvc,) = YAML(typ="safe").load_all((tmp_path / "kserve.yaml").read_text())
    predictor = isvc["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 20
    assert isvc["metadata"]["annotations"]["signoff.dev/model-version"] == "churn:v2"
    assert isvc["metadata"]["annotations"]["signoff.dev/stable-model-version"] == "churn:v1"
    deployment = next(YAML(typ="safe").load_all((tmp_path / "deployment.yaml").read_text()))
    (container,) = _containers(deployment)
    assert container["resources"]["requests"] == {"cpu": "2", "memory": "1024Mi"}
    # the endpoint's own parser accepts what the manifest passes it
    parsed = parse_args(container["args"])
    assert (parsed.name, parsed.model_version, parsed.digest) == ("churn", "churn:v1", "1" * 64)
    assert parsed.port == container["ports"][0]["containerPort"]


def test_export_refuses_unpinned_images_and_unknown_formats(tmp_path: Path) -> None:
    env = {"SIGNOFF_HOME": str(tmp_path / "home")}
    latest = _cli(env, "endpoints", "export", "churn", "--image", "ghcr.io/signoff/signoff:latest")
    assert latest.exit_code == 1
    assert ":latest changes under you" in str(latest.exception)
    untagged = _cli(env, "kube", "manifests", "--image", "signoff")
    assert untagged.exit_code == 1
    assert "has no tag" in str(untagged.exception)
    unknown = _cli(env, "endpoints", "export", "churn", "--format", "helm")
    assert unknown.exit_code == 2
    assert "helm" in unknown.output


def test_kube_manifests_run_what_they_claim(tmp_path: Path) -> None:
    env = {"SIGNOFF_HOME": str(tmp_path / "home")}
    target = tmp_path / "signoff.yaml"
    result = _cli(env, "kube", "manifests", "--replicas", "3", "--image", IMAGE, "-o", str(target))
    assert result.exit_code == 0, result.output
    docs = list(YAML(typ="safe").load_all(target.read_text()))
    for doc in docs:
        check_document(doc)
    job, server, _, workers = docs
    assert workers["spec"]["replicas"] == 3

    # the Job's program migrates a fresh database and exits 0
    (migrate,) = _containers(job)
    db = tmp_path / "fresh.db"
    environ = {**os.environ, "SIGNOFF_DATABASE_URL": f"sqlite:///{db}"}
    done = subprocess.run(  # the Job's own command, with this interpreter
        [sys.executable, *migrate["command"][1:]], env=environ, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "store is up to date" in done.stdout
    assert migrate["command"][-1] == MIGRATE
    store = open_store(f"sqlite:///{db}", migrate=False)
    try:
        assert store.list_endpoints() == []  # the tables exist
    finally:
        store.close()

    # the server's probes hit a route the server answers
    (srv,) = _containers(server)
    path = srv["readinessProbe"]["httpGet"]["path"]
    from signoff.server import create_app

    app_ = build_app(Settings(home=tmp_path / "server", database_url=f"sqlite:///{db}"))
    try:
        answer = asyncio.run(_get(create_app(app_), path))
        assert answer.status_code == 200
        assert answer.json()["status"] == "ok"
    finally:
        app_.close()
