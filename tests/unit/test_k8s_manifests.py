"""Kubernetes manifests: built-in objects pass the API schemas, custom resources their CRDs.

Every emitted object goes through ``k8s_schemas.check_document`` (the Kubernetes API schemas
in strict mode for built-ins, closed CRD field schemas for KServe and KubeRay); objects
broken on purpose show that those checks refuse an unknown field and a wrong type.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from ruamel.yaml import YAML

from k8s_schemas import check_document
from signoff._version import __version__
from signoff.deployment.cluster import ClusterSpec, cluster_documents
from signoff.deployment.kube import ImageError, check_image, default_image
from signoff.deployment.manifests import (
    RAY_SERVE_APP,
    EndpointExport,
    ExportFormat,
    build_manifests,
    endpoint_documents,
    is_remote_store,
    load_serve_config,
)
from signoff.domain.records import EndpointRecord, ModelVersionRecord
from signoff.domain.specs import Resources
from signoff.errors import SignoffError

STABLE = ModelVersionRecord(
    "m1", "churn", 7, "sklearn", "/models/churn/7", "ab" * 32, [], {}, {}, "r", "t", 1.0
)
CANARY = ModelVersionRecord(
    "m2", "churn", 8, "sklearn", "/models/churn/8", "cd" * 32, [], {}, {}, "r", "t", 2.0
)
IMAGE = "registry.example/ml/signoff:0.1.0"
FILES = {"model.pkl": "11" * 32, "signoff-model.json": "22" * 32}
CANARY_FILES = {"model.pkl": "33" * 32, "signoff-model.json": "44" * 32}
S3 = {"artifacts_url": "s3://models/signoff", "model_files": FILES}


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every container (and init container) of an emitted object, wherever it sits."""
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("containers", "initContainers"):
                    found.extend(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(doc)
    return found


def _export(fmt: ExportFormat, **options: Any) -> list[dict[str, Any]]:
    return endpoint_documents(EndpointExport("Churn_EU", STABLE, IMAGE, **options), fmt)


VARIANTS = {
    "local": {},
    "s3": S3,
    "canary": {**S3, "canary": CANARY, "canary_traffic": 10, "canary_files": CANARY_FILES},
    "resources": {"resources": Resources(cpu=0.5, gpu=1, memory_mb=2048), "replicas": 3},
}
FORMATS = [ExportFormat.DEPLOYMENT, ExportFormat.KSERVE, ExportFormat.RAYSERVICE]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("fmt", FORMATS, ids=str)
def test_every_endpoint_manifest_passes_its_schema(fmt: ExportFormat, variant: str) -> None:
    docs = _export(fmt, **VARIANTS[variant])
    assert docs
    for doc in docs:
        check_document(doc)
        for container in _containers(doc):
            assert check_image(container["image"]) == IMAGE
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert "pip install" not in " ".join(container.get("command", []))


def test_the_yaml_text_parses_back_to_the_same_objects() -> None:
    ep = EndpointRecord("Churn_EU", "http://127.0.0.1:1", 1, None, "m1", "serving", 1.0)
    for fmt in FORMATS:
        text = build_manifests(ep, STABLE, fmt, image=IMAGE, **S3)
        assert "&id" not in text  # no YAML anchors
        docs = list(YAML(typ="safe").load_all(text))
        assert docs == _export(fmt, **S3)
        assert text.startswith(f"# signoff endpoint Churn_EU: model version {STABLE.label}\n")


def test_kubernetes_is_the_same_as_deployment() -> None:
    assert _export(ExportFormat.KUBERNETES) == _export(ExportFormat.DEPLOYMENT)


def test_deployment_probes_the_endpoints_health_route_and_uses_task_resources() -> None:
    deployment, service = _export(
        ExportFormat.DEPLOYMENT, resources=Resources(cpu=2, gpu=0.5, memory_mb=512)
    )
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": 8080}
    assert container["resources"] == {
        "requests": {"cpu": "2", "memory": "512Mi"},
        "limits": {"memory": "512Mi", "nvidia.com/gpu": "1"},
    }
    args = container["args"]
    assert args[args.index("--digest") + 1] == STABLE.digest
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_a_remote_store_is_fetched_file_by_file_before_the_endpoint_starts() -> None:
    (deployment, _) = _export(ExportFormat.DEPLOYMENT, **S3)
    pod = deployment["spec"]["template"]["spec"]
    (fetch,) = pod["initContainers"]
    env = {e["name"]: e.get("value") for e in fetch["env"]}
    assert env["SIGNOFF_ARTIFACTS_URL"] == "s3://models/signoff"
    assert env["SIGNOFF_MODEL_DIGEST"] == STABLE.digest
    assert json.loads(env["SIGNOFF_MODEL_FILES"]) == FILES
    assert "store.fetch(digest" in fetch["command"][-1]
    assert {"name": "model", "emptyDir": {}} in pod["volumes"]
    annotations = deployment["metadata"]["annotations"]
    assert annotations["signoff.dev/artifacts-url"] == "s3://models/signoff"
    assert annotations["signoff.dev/model-digest"] == STABLE.digest
    manifest = json.dumps({"files": FILES}, sort_keys=True, separators=(",", ":")).encode()
    assert annotations["signoff.dev/model-files"] == hashlib.sha256(manifest).hexdigest()
    local, _ = _export(ExportFormat.DEPLOYMENT)
    assert "initContainers" not in local["spec"]["template"]["spec"]
    assert local["metadata"]["annotations"]["signoff.dev/model-source"] == STABLE.path


def test_kserve_canary_serves_the_new_version_at_its_share() -> None:
    (isvc,) = _export(ExportFormat.KSERVE, canary=CANARY, canary_traffic=25)
    predictor = isvc["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 25
    args = predictor["containers"][0]["args"]
    assert args[args.index("--digest") + 1] == CANARY.digest
    assert isvc["metadata"]["annotations"]["signoff.dev/stable-model-version"] == STABLE.label
    (plain,) = _export(ExportFormat.KSERVE)
    assert "canaryTrafficPercent" not in plain["spec"]["predictor"]


def test_rayservice_names_the_serve_application_and_the_model() -> None:
    (ray,) = _export(
        ExportFormat.RAYSERVICE, **S3, canary=CANARY, canary_traffic=5, canary_files=CANARY_FILES
    )
    config = load_serve_config(ray["spec"]["serveConfigV2"])
    (application,) = config["applications"]
    assert application["import_path"] == RAY_SERVE_APP == "signoff.serving.ray_app:app"
    assert application["args"]["digest"] == STABLE.digest
    assert application["args"]["artifacts_url"] == "s3://models/signoff"
    assert application["args"]["files"] == FILES
    assert application["args"]["canary"] == {
        "model_version": CANARY.label,
        "digest": CANARY.digest,
        "traffic": 5,
        "files": CANARY_FILES,
    }
    assert ray["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["groupName"] == "endpoint"


def test_a_remote_store_without_the_model_files_is_refused() -> None:
    with pytest.raises(SignoffError, match="needs the files of every version"):
        _export(ExportFormat.DEPLOYMENT, artifacts_url="s3://b/p")
    with pytest.raises(SignoffError, match="needs the files of every version"):
        _export(ExportFormat.KSERVE, **S3, canary=CANARY, canary_traffic=10)
    with pytest.raises(SignoffError, match=r"1\.\.99 percent"):
        _export(ExportFormat.KSERVE, canary=CANARY, canary_traffic=100)


# ----------------------------------------------------- broken on purpose: the checks bite
def _deployment_container(doc: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = doc["spec"]["template"]["spec"]["containers"][0]
    return container


BREAKAGES = [
    ("deployment unknown field", ExportFormat.DEPLOYMENT, lambda d: d["spec"].update(replica=1)),
    ("deployment wrong type", ExportFormat.DEPLOYMENT, lambda d: d["spec"].update(replicas="1")),
    (
        "container unknown field",
        ExportFormat.DEPLOYMENT,
        lambda d: _deployment_container(d).update(imagePullPolicyy="Always"),
    ),
    (
        "probe wrong type",
        ExportFormat.DEPLOYMENT,
        lambda d: _deployment_container(d)["livenessProbe"].update(periodSeconds="10s"),
    ),
    (
        "isvc unknown field",
        ExportFormat.KSERVE,
        lambda d: d["spec"]["predictor"].update(canaryTraficPercent=10),
    ),
    (
        "isvc wrong type",
        ExportFormat.KSERVE,
        lambda d: d["spec"]["predictor"].update(canaryTrafficPercent="10"),
    ),
    (
        "isvc container unknown field",
        ExportFormat.KSERVE,
        lambda d: d["spec"]["predictor"]["containers"][0].update(ports_=[]),
    ),
    (
        "rayservice unknown field",
        ExportFormat.RAYSERVICE,
        lambda d: d["spec"]["rayClusterConfig"].update(enableInTreeAutoscalin=True),
    ),
    (
        "rayservice wrong type",
        ExportFormat.RAYSERVICE,
        lambda d: d["spec"]["rayClusterConfig"]["workerGroupSpecs"][0].update(replicas="2"),
    ),
    (
        "serve config unknown field",
        ExportFormat.RAYSERVICE,
        lambda d: d["spec"].update(
            serveConfigV2=d["spec"]["serveConfigV2"].replace("route_prefix", "route_prefx")
        ),
    ),
    (
        "ray pod wrong type",
        ExportFormat.RAYSERVICE,
        lambda d: d["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"].update(
            containers={"name": "x"}
        ),
    ),
]


@pytest.mark.parametrize(("what", "fmt", "breaking"), BREAKAGES, ids=[b[0] for b in BREAKAGES])
def test_a_broken_manifest_is_refused(what: str, fmt: ExportFormat, breaking: Any) -> None:
    doc = copy.deepcopy(_export(fmt, **S3)[0])
    check_document(doc)  # sound before the change
    breaking(doc)
    refused = (kubernetes_validate.ValidationError, jsonschema.ValidationError)
    reason = "was unexpected" if "unknown field" in what else "is not of type"
    with pytest.raises(refused) as caught:
        check_document(doc)
    assert reason in str(caught.value)


# ------------------------------------------------------------------- images
@pytest.mark.parametrize(
    "image", ["signoff", "ghcr.io/signoff/signoff", "signoff:latest", "host:5000/signoff", ""]
)
def test_unpinned_images_are_refused_with_a_reason(image: str) -> None:
    with pytest.raises(ImageError, match=r"tag|pinned|not an image"):
        check_image(image)
    with pytest.raises(ImageError):
        endpoint_documents(EndpointExport("e", STABLE, image), ExportFormat.DEPLOYMENT)


@pytest.mark.parametrize(
    "image", ["signoff:0.1.0", "host:5000/ml/signoff:1.2", "signoff@sha256:" + "0" * 64]
)
def test_pinned_images_are_accepted(image: str) -> None:
    assert check_image(image) == image


def test_the_default_image_carries_the_signoff_version() -> None:
    assert default_image(__version__).endswith(f":{__version__}")
    assert check_image(default_image(__version__))


def test_remote_store_urls() -> None:
    assert is_remote_store("s3://b/p")
    assert is_remote_store("gs://b")
    assert not is_remote_store("/var/lib/signoff/artifacts")
    assert not is_remote_store("file:///srv/artifacts")
    assert not is_remote_store("C:/artifacts")


# ------------------------------------------------------------------- signoff itself
def _cluster(**more: Any) -> list[dict[str, Any]]:
    return cluster_documents(ClusterSpec(image=IMAGE, version="0.1.0", **more))


def test_signoff_cluster_objects_pass_the_api_schemas() -> None:
    docs = _cluster(workers=5, base_url="https://signoff.example", artifacts_url="s3://b/p")
    assert [d["kind"] for d in docs] == ["Job", "Deployment", "Service", "Deployment"]
    for doc in docs:
        check_document(doc)
        for container in _containers(doc):
            assert container["image"] == IMAGE
    job, server, _service, workers = docs
    assert workers["spec"]["replicas"] == 5
    assert workers["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 3600
    (worker,) = workers["spec"]["template"]["spec"]["containers"]
    assert worker["command"][:2] == ["signoff", "worker"]
    (srv,) = server["spec"]["template"]["spec"]["containers"]
    assert srv["command"][:3] == ["signoff", "server", "--no-worker"]
    assert srv["readinessProbe"]["httpGet"]["path"] == "/health"
    assert srv["livenessProbe"]["httpGet"]["path"] == "/health"
    assert job["metadata"]["name"] == "signoff-migrate-0-1-0"
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "migrate"
    assert "open_store" in job["spec"]["template"]["spec"]["containers"][0]["command"][-1]


def test_secrets_are_never_inline() -> None:
    docs = _cluster()
    assert "Secret" not in {d["kind"] for d in docs}
    for doc in docs:
        for container in _containers(doc):
            env = {e["name"]: e for e in container["env"]}
            for name, key in (
                ("SIGNOFF_DATABASE_URL", "database-url"),
                ("SIGNOFF_SECRET_KEY", "secret-key"),
                ("SIGNOFF_AUDIT_KEY", "audit-key"),
            ):
                assert "value" not in env[name]
                assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "signoff", "key": key}
    for fmt in FORMATS:
        for doc in _export(fmt, **S3):
            for container in _containers(doc):
                for e in container.get("env", []):
                    if e["name"] == "SIGNOFF_DATABASE_URL":
                        assert "value" not in e


def test_a_new_version_gets_a_new_migration_job() -> None:
    old = _cluster()[0]["metadata"]["name"]
    new = cluster_documents(ClusterSpec(image="r/signoff:0.2.0", version="0.2.0"))[0]
    assert old != new["metadata"]["name"] == "signoff-migrate-0-2-0"
