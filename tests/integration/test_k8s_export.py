"""The Kubernetes exports through the real CLI, on a real store, and what their pods would run.

An endpoint with a canary is recorded in the store as the deployer records it; ``signoff
endpoints export`` and ``signoff kube manifests`` then write YAML that passes the same
offline schema checks as the unit tests. The commands the pods would run are run here too:
the migration Job's program on a fresh database, the endpoint's arguments through its own
argument parser, and the server's health route the probes use.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner

from k8s_schemas import check_document
from s3_server import free_port, s3_server
from signoff.bootstrap import Settings, build_app
from signoff.cli.commands import app as cli_app
from signoff.deployment.cluster import MIGRATE
from signoff.deployment.manifests import EndpointExport, ExportFormat, endpoint_documents
from signoff.domain.records import (
    ArtifactRecord,
    DeploymentKind,
    DeploymentRecord,
    EndpointRecord,
    ModelVersionRecord,
    RunRecord,
    TaskOutputs,
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
            params={}, state=TaskRunState.RUNNING, version=0, attempt=1,
            work_dir=str(tmp_path), created_at=1.0,
        )  # fmt: skip
        store.create_run(run, [tr])
        output = tmp_path / "runs" / run.id / "train" / "output"
        versions = [
            ModelVersionRecord(
                new_id(),
                "churn",
                n,
                "sklearn",
                str(output / "models" / f"churn-v{n}"),
                f"{n}" * 64,
                [],
                {},
                {},
                run.id,
                tr.id,
                float(n),
            )
            for n in (1, 2)
        ]
        files = [
            ArtifactRecord(tr.id, f"models/churn-v{n}/{name}", f"{n}{k}" * 32, 10)
            for n in (1, 2)
            for k, name in enumerate(("model.pkl", "signoff-model.json"))
        ]
        files.append(ArtifactRecord(tr.id, "metrics.json", "ee" * 32, 10))
        outputs = TaskOutputs(artifacts=files, models=versions)
        store.transition_task_run(tr, TaskRunState.SUCCEEDED, at=2.0, outputs=outputs)
        ids = {f"v{mv.version}": mv.id for mv in versions}
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
    (fetch,) = deployment["spec"]["template"]["spec"]["initContainers"]
    files = json.loads(next(e["value"] for e in fetch["env"] if e["name"] == "SIGNOFF_MODEL_FILES"))
    assert files == {"model.pkl": "10" * 32, "signoff-model.json": "11" * 32}  # v1's, only
    (kserve_fetch,) = predictor["initContainers"]
    canary_files = next(
        e["value"] for e in kserve_fetch["env"] if e["name"] == "SIGNOFF_MODEL_FILES"
    )
    assert json.loads(canary_files) == {"model.pkl": "20" * 32, "signoff-model.json": "21" * 32}
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


def test_the_pod_fetches_the_model_by_digest_and_serves_its_health_route(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The init container's program and the endpoint container's command, run as written."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from signoff.artifacts import open_artifact_store
    from signoff.registry.flavors import folder_digest, save_model

    source = tmp_path / "model"
    fit = LogisticRegression().fit(np.array([[0.0], [1.0], [0.2], [0.9]]), [0, 1, 0, 1])
    save_model(fit, source, input_example={"x": [0.0, 1.0]})
    with s3_server() as s3:
        url = f"s3://{s3.bucket}/signoff"
        environ = {**os.environ, **s3.env}
        environ = {k: v for k, v in environ.items() if not k.startswith("SIGNOFF_")}
        for key, value in s3.env.items():
            monkeypatch.setenv(key, value)  # the client reads the endpoint from the environment
        open_artifact_store(url).put_tree(source)  # each file under its sha256, as a run does
        digest = folder_digest(source)  # what the model version records
        model = ModelVersionRecord(
            "m1", "churn", 1, "sklearn", str(source), digest, [], {}, {}, "r", "t", 1.0
        )
        files = {
            p.relative_to(source).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in source.rglob("*")
            if p.is_file()
        }
        export = EndpointExport("churn", model, IMAGE, artifacts_url=url, model_files=files)
        (deployment, _) = endpoint_documents(export, ExportFormat.DEPLOYMENT)
        pod = deployment["spec"]["template"]["spec"]
        (fetch,) = pod["initContainers"]
        target = tmp_path / "pod" / "models" / "model"
        fetch_env = {e["name"]: e["value"] for e in fetch["env"]}
        fetch_env["SIGNOFF_MODEL_DIR"] = str(target)  # the volume, at a path of this machine
        done = subprocess.run(
            [sys.executable, *fetch["command"][1:]], env={**environ, **fetch_env},
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    assert folder_digest(target) == digest

    (container,) = pod["containers"]
    args = list(container["args"])
    port = free_port()
    args[args.index("--model-dir") + 1] = str(target)
    args[args.index("--port") + 1] = str(port)
    args[args.index("--host") + 1] = "127.0.0.1"
    home = {"SIGNOFF_HOME": str(tmp_path / "pod" / "home")}
    proc = subprocess.Popen(  # the container's command, with this interpreter
        [sys.executable, *container["command"][1:], *args], env={**environ, **home},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        probe = container["readinessProbe"]["httpGet"]["path"]
        deadline = time.monotonic() + 60
        answer = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}{probe}", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert answer is not None, proc.stderr.read().decode() if proc.stderr else ""
        assert answer.status_code == 200
        assert answer.json() == {"status": "ready", "model_version": "churn:v1"}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
