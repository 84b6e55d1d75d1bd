"""Manifests that serve an endpoint's model on Kubernetes: Deployment, KServe, KubeRay.

Every format runs the same endpoint (``python -m signoff.serving``, or the Ray Serve
application named by :data:`RAY_SERVE_APP`) from a pinned image, on the model version the
endpoint serves, and names that version's folder digest: the endpoint checks the files
against it before it loads them. With a remote artifact store, an init container fetches the
folder by its digest (each file is checked as it arrives); with a local one, the folder is
mounted from a volume the operator fills.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ruamel.yaml import YAML

from signoff._version import __version__
from signoff.deployment.kube import (
    check_image,
    container_security,
    default_image,
    dns_name,
    label_value,
    pod_security,
    yaml_documents,
)
from signoff.domain.records import EndpointRecord, ModelVersionRecord
from signoff.domain.specs import Resources
from signoff.errors import SignoffError

__all__ = [
    "CONTAINER_PORT",
    "RAY_SERVE_APP",
    "EndpointExport",
    "ExportFormat",
    "build_manifests",
    "endpoint_documents",
    "is_remote_store",
    "load_serve_config",
]

CONTAINER_PORT = 8080
RAY_SERVE_APP = "signoff.serving.ray_app:app"
"""The Ray Serve application a RayService imports (``module:attribute``); see docs/kubernetes.md."""
PLACEHOLDER = "REPLACE-ME"
HOME = "/var/lib/signoff"
TMP = "/tmp"  # noqa: S108 - the pod's own emptyDir volume, needed with a read-only root
_FETCH = """\
import json, os, pathlib
from signoff.artifacts import open_artifact_store
store = open_artifact_store(os.environ["SIGNOFF_ARTIFACTS_URL"])
root = pathlib.Path(os.environ["SIGNOFF_MODEL_DIR"])
for rel, digest in json.loads(os.environ["SIGNOFF_MODEL_FILES"]).items():
    parts = pathlib.PurePosixPath(rel).parts
    if rel.startswith("/") or ".." in parts:
        raise SystemExit(f"refusing model file path {rel!r}")
    target = root.joinpath(*parts)
    store.fetch(digest, target.parent, target.name)  # checked against its sha256
print(f"fetched {os.environ['SIGNOFF_MODEL_DIGEST']} into {root}")
"""
"""The init container's program: each file of the model folder by its sha256, then the
endpoint checks the whole folder against the version's digest before loading it."""


class ExportFormat(StrEnum):
    """Manifest kinds ``endpoints export`` writes (``kubernetes`` = ``deployment``)."""

    DEPLOYMENT = "deployment"
    KUBERNETES = "kubernetes"
    KSERVE = "kserve"
    RAYSERVICE = "rayservice"


@dataclass(frozen=True, slots=True)
class EndpointExport:
    """What the manifests of one endpoint say: its versions, image, store and resources.

    ``artifacts_url`` is set only for a remote artifact store (the pod fetches the model
    from it); ``canary`` is the version taking ``canary_traffic`` percent, if any;
    ``resources`` come from the deploy task that put the version in service.
    ``model_files`` / ``canary_files`` map each file of a version's folder (relative path)
    to its sha256 in the store: what the pod fetches (needed with ``artifacts_url``).
    """

    endpoint: str
    model: ModelVersionRecord
    image: str
    artifacts_url: str | None = None
    canary: ModelVersionRecord | None = None
    canary_traffic: int = 0
    resources: Resources | None = None
    replicas: int = 1
    ray_version: str = "2.60.0"
    artifacts_secret: str = "signoff-artifacts"  # noqa: S105 - the name of a Secret, not its value
    store_secret: str = "signoff"  # noqa: S105 - the name of a Secret, not its value
    model_files: Mapping[str, str] | None = None
    canary_files: Mapping[str, str] | None = None


def is_remote_store(url: str) -> bool:
    """True when ``url`` names object storage (``s3://``, ``gs://`` ...), not a folder."""
    scheme, sep, _ = url.partition("://")
    return bool(sep) and scheme not in ("", "file") and len(scheme) > 1


def build_manifests(
    ep: EndpointRecord,
    model: ModelVersionRecord,
    fmt: ExportFormat,
    *,
    image: str | None = None,
    **options: Any,
) -> str:
    """YAML documents serving ``model`` on ``ep``'s name, with a comment saying what to fill."""
    spec = EndpointExport(ep.name, model, image or default_image(__version__), **options)
    docs = endpoint_documents(spec, fmt)
    return yaml_documents(docs, _header(spec, fmt))


def endpoint_documents(spec: EndpointExport, fmt: ExportFormat) -> list[dict[str, Any]]:
    """The Kubernetes objects of ``spec`` in format ``fmt`` (plain dicts, ready to dump)."""
    check_image(spec.image)
    if spec.artifacts_url and (
        spec.model_files is None or (spec.canary is not None and spec.canary_files is None)
    ):
        raise SignoffError(
            "a remote artifact store needs the files of every version served (model_files)"
        )
    if spec.canary is not None and not 0 < spec.canary_traffic < 100:
        raise SignoffError(f"a canary's traffic must be 1..99 percent, not {spec.canary_traffic}")
    if fmt is ExportFormat.KSERVE:
        return [_inference_service(spec)]
    if fmt is ExportFormat.RAYSERVICE:
        return [_ray_service(spec)]
    return _deployment(spec)


# ------------------------------------------------------------------ shared parts
def _metadata(spec: EndpointExport, model: ModelVersionRecord) -> dict[str, Any]:
    name = dns_name(f"signoff-{spec.endpoint}")
    annotations = {
        "signoff.dev/endpoint": spec.endpoint,
        "signoff.dev/model-version": model.label,
        "signoff.dev/model-version-id": model.id,
        "signoff.dev/model-digest": model.digest,
        "signoff.dev/model-source": spec.artifacts_url or model.path,
    }
    if spec.artifacts_url:
        annotations["signoff.dev/artifacts-url"] = spec.artifacts_url
        annotations["signoff.dev/model-files"] = _files_address(_files_of(spec, model))
    return {
        "name": name,
        "labels": {
            "app.kubernetes.io/name": "signoff-endpoint",
            "app.kubernetes.io/instance": name,
            "app.kubernetes.io/managed-by": "signoff",
            "signoff.dev/endpoint": label_value(spec.endpoint),
            "signoff.dev/model-version": label_value(model.label),
        },
        "annotations": annotations,
    }


def _files_of(spec: EndpointExport, model: ModelVersionRecord) -> dict[str, str]:
    files = spec.canary_files if model is spec.canary else spec.model_files
    return dict(sorted((files or {}).items()))


def _files_json(files: Mapping[str, str]) -> str:
    return json.dumps({"files": dict(sorted(files.items()))}, sort_keys=True, separators=(",", ":"))


def _files_address(files: Mapping[str, str]) -> str:
    """The digest of the folder's manifest in the artifact store (canonical JSON)."""
    return hashlib.sha256(_files_json(files).encode()).hexdigest()


def _model_dir(fmt: ExportFormat, spec: EndpointExport) -> str:
    return (
        "/mnt/models" if fmt is ExportFormat.KSERVE and not spec.artifacts_url else "/models/model"
    )


def _http_probe(path: str, port: int | str, period: int, **more: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": port}, "periodSeconds": period, **more}


def _resources(resources: Resources | None) -> dict[str, Any] | None:
    """Requests and limits of a deploy task's ``resources`` (cpu, memory, gpu)."""
    if resources is None:
        return None
    cpu = resources.cpu
    requests: dict[str, str] = {
        "cpu": str(int(cpu)) if float(cpu).is_integer() else f"{math.ceil(cpu * 1000)}m"
    }
    limits: dict[str, str] = {}
    if resources.memory_mb:
        requests["memory"] = limits["memory"] = f"{resources.memory_mb}Mi"
    if resources.gpu:
        limits["nvidia.com/gpu"] = str(math.ceil(resources.gpu))
    return {"requests": requests, **({"limits": limits} if limits else {})}


def _store_env(spec: EndpointExport) -> list[dict[str, Any]]:
    """Where the endpoint logs predictions: the store's URL from the Secret, if it has one."""
    ref = {"name": spec.store_secret, "key": "database-url", "optional": True}
    return [
        {"name": "SIGNOFF_HOME", "value": HOME},
        {"name": "SIGNOFF_DATABASE_URL", "valueFrom": {"secretKeyRef": ref}},
    ]


def _scratch_volumes() -> list[dict[str, Any]]:
    return [{"name": "home", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]


def _scratch_mounts() -> list[dict[str, Any]]:
    return [{"name": "home", "mountPath": HOME}, {"name": "tmp", "mountPath": TMP}]


def _model_volume(spec: EndpointExport) -> dict[str, Any]:
    if spec.artifacts_url:
        return {"name": "model", "emptyDir": {}}
    claim = {"claimName": f"{PLACEHOLDER.lower()}-model-folder", "readOnly": True}
    return {"name": "model", "persistentVolumeClaim": claim}


def _fetch_container(spec: EndpointExport, model: ModelVersionRecord, model_dir: str) -> Any:
    """An init container copying the model folder from the artifact store, digest-checked."""
    return {
        "name": "fetch-model",
        "image": spec.image,
        "command": ["python", "-c", _FETCH],
        "env": [
            {"name": "SIGNOFF_ARTIFACTS_URL", "value": spec.artifacts_url},
            {"name": "SIGNOFF_MODEL_DIGEST", "value": model.digest},
            {"name": "SIGNOFF_MODEL_DIR", "value": model_dir},
            {"name": "SIGNOFF_MODEL_FILES", "value": json.dumps(_files_of(spec, model))},
        ],
        "envFrom": [{"secretRef": {"name": spec.artifacts_secret, "optional": True}}],
        "volumeMounts": [{"name": "model", "mountPath": model_dir}, *_scratch_mounts()],
        "securityContext": container_security(),
    }


def _endpoint_container(
    spec: EndpointExport, model: ModelVersionRecord, name: str, model_dir: str
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": name,
        "image": spec.image,
        "command": ["python", "-m", "signoff.serving"],
        "args": [
            "--name",
            spec.endpoint,
            "--model-dir",
            model_dir,
            "--digest",
            model.digest,
            "--model-version",
            model.label,
            "--port",
            str(CONTAINER_PORT),
            "--host",
            "0.0.0.0",
        ],
        "env": _store_env(spec),
        "ports": [{"containerPort": CONTAINER_PORT, "name": "http", "protocol": "TCP"}],
        # /health answers only once the model loaded and answered its warm-up
        "startupProbe": _http_probe("/health", CONTAINER_PORT, 5, failureThreshold=60),
        "readinessProbe": _http_probe("/health", CONTAINER_PORT, 5, failureThreshold=2),
        "livenessProbe": _http_probe("/health", CONTAINER_PORT, 10, failureThreshold=3),
        "securityContext": container_security(),
    }
    mounts = [{"name": "model", "mountPath": model_dir, "readOnly": True}, *_scratch_mounts()]
    container["volumeMounts"] = mounts
    resources = _resources(spec.resources)
    if resources is not None:
        container["resources"] = resources
    return container


def _pod(spec: EndpointExport, model: ModelVersionRecord, name: str, model_dir: str) -> Any:
    pod: dict[str, Any] = {
        "securityContext": pod_security(),
        "containers": [_endpoint_container(spec, model, name, model_dir)],
        "volumes": [_model_volume(spec), *_scratch_volumes()],
    }
    if spec.artifacts_url:
        pod["initContainers"] = [_fetch_container(spec, model, model_dir)]
    return pod


# ------------------------------------------------------------------ the formats
def _deployment(spec: EndpointExport) -> list[dict[str, Any]]:
    """A Deployment of the version in service and a Service in front of it."""
    metadata = _metadata(spec, spec.model)
    selector = {"app.kubernetes.io/instance": metadata["name"]}
    template = {
        "metadata": {"labels": metadata["labels"], "annotations": metadata["annotations"]},
        "spec": _pod(spec, spec.model, "endpoint", _model_dir(ExportFormat.DEPLOYMENT, spec)),
    }
    # a new version is rolled out without a gap: the old pod serves until the new one is ready
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata,
            "spec": {
                "replicas": spec.replicas,
                "selector": {"matchLabels": selector},
                "strategy": strategy,
                "template": template,
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata,
            "spec": {
                "selector": selector,
                "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
            },
        },
    ]


def _inference_service(spec: EndpointExport) -> dict[str, Any]:
    """A KServe InferenceService; with a canary, the canary is the new revision's model."""
    model = spec.canary or spec.model
    metadata = _metadata(spec, model)
    model_dir = _model_dir(ExportFormat.KSERVE, spec)
    predictor: dict[str, Any] = {"minReplicas": spec.replicas}
    predictor.update(_pod(spec, model, "kserve-container", model_dir))
    container = predictor["containers"][0]
    if not spec.artifacts_url:
        # KServe's storage initializer copies STORAGE_URI to /mnt/models; that volume is its own
        predictor["volumes"] = _scratch_volumes()
        container["volumeMounts"] = _scratch_mounts()
        uri = f"{PLACEHOLDER}: s3://bucket/path/to/model-folder"
        container["env"] = [{"name": "STORAGE_URI", "value": uri}, *container["env"]]
    if spec.canary is not None:
        predictor["canaryTrafficPercent"] = spec.canary_traffic
        metadata["annotations"]["signoff.dev/stable-model-version"] = spec.model.label
        metadata["annotations"]["signoff.dev/stable-model-digest"] = spec.model.digest
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": metadata,
        "spec": {"predictor": predictor},
    }


def _serve_config(spec: EndpointExport, model_dir: str) -> str:
    """serveConfigV2: one application, the model and its digest as its arguments."""
    args: dict[str, Any] = {
        "name": spec.endpoint,
        "model_version": spec.model.label,
        "digest": spec.model.digest,
    }
    if spec.artifacts_url:
        args["artifacts_url"] = spec.artifacts_url
        args["files"] = _files_of(spec, spec.model)
    else:
        args["model_dir"] = model_dir
    if spec.canary is not None:
        args["canary"] = {
            "model_version": spec.canary.label,
            "digest": spec.canary.digest,
            "traffic": spec.canary_traffic,
        }
        if spec.artifacts_url:
            args["canary"]["files"] = _files_of(spec, spec.canary)
    actor: dict[str, Any] = {"num_cpus": spec.resources.cpu if spec.resources else 1}
    if spec.resources and spec.resources.gpu:
        actor["num_gpus"] = spec.resources.gpu
    config = {
        "applications": [
            {
                "name": dns_name(spec.endpoint),
                "import_path": RAY_SERVE_APP,
                "route_prefix": "/",
                "args": args,
                "deployments": [
                    {"name": "endpoint", "num_replicas": spec.replicas, "ray_actor_options": actor}
                ],
            }
        ]
    }
    return yaml_documents([config]).removesuffix("...\n")


def _ray_pod(spec: EndpointExport, name: str, model_dir: str, head: bool) -> dict[str, Any]:
    ports = [{"containerPort": 8000, "name": "serve", "protocol": "TCP"}]
    if head:
        ports += [
            {"containerPort": 6379, "name": "gcs", "protocol": "TCP"},
            {"containerPort": 8265, "name": "dashboard", "protocol": "TCP"},
        ]
    mounts = [*_scratch_mounts()]
    volumes = [*_scratch_volumes()]
    if not spec.artifacts_url:
        mounts.append({"name": "model", "mountPath": model_dir, "readOnly": True})
        volumes.append(_model_volume(spec))
    container: dict[str, Any] = {
        "name": name,
        "image": spec.image,
        "env": _store_env(spec),
        "envFrom": [{"secretRef": {"name": spec.artifacts_secret, "optional": True}}],
        "ports": ports,
        "volumeMounts": mounts,
        # Ray writes its session files under /tmp (a volume here) and needs no root
        "securityContext": container_security(),
    }
    resources = _resources(spec.resources)
    if resources is not None and not head:
        container["resources"] = resources
    return {
        "spec": {"securityContext": pod_security(), "containers": [container], "volumes": volumes}
    }


def _ray_service(spec: EndpointExport) -> dict[str, Any]:
    """A KubeRay RayService: a head, one worker group, the serve application on them."""
    metadata = _metadata(spec, spec.model)
    model_dir = "/models/model"
    worker_group = {
        "groupName": "endpoint",
        "replicas": spec.replicas,
        "minReplicas": spec.replicas,
        "maxReplicas": max(spec.replicas, 1) * 2,
        "rayStartParams": {},
        "template": _ray_pod(spec, "ray-worker", model_dir, head=False),
    }
    head = {
        "rayStartParams": {"dashboard-host": "0.0.0.0", "num-cpus": "0"},
        "template": _ray_pod(spec, "ray-head", model_dir, head=True),
    }
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": metadata,
        "spec": {
            "serveConfigV2": _serve_config(spec, model_dir),
            "rayClusterConfig": {
                "rayVersion": spec.ray_version,
                "headGroupSpec": head,
                "workerGroupSpecs": [worker_group],
            },
        },
    }


def _header(spec: EndpointExport, fmt: ExportFormat) -> str:
    lines = [
        f"signoff endpoint {spec.endpoint}: model version {spec.model.label}",
        f"digest {spec.model.digest}",
    ]
    if spec.canary is not None:
        lines.append(f"canary {spec.canary.label} at {spec.canary_traffic}% ({spec.canary.digest})")
        if fmt in (ExportFormat.DEPLOYMENT, ExportFormat.KUBERNETES):
            lines.append(
                "a Deployment serves only the stable version; --format kserve splits traffic"
            )
    if fmt is ExportFormat.RAYSERVICE:
        lines.append(f"the serve application is {RAY_SERVE_APP} (docs/kubernetes.md)")
    if spec.artifacts_url:
        lines.append(f"the pod fetches each model file from {spec.artifacts_url} by its sha256")
    elif fmt is ExportFormat.KSERVE:
        lines.append(f"{PLACEHOLDER}: put the model folder {spec.model.path} at STORAGE_URI")
    else:
        lines.append(
            f"{PLACEHOLDER}: put the model folder {spec.model.path} on the volume claim "
            f"{PLACEHOLDER.lower()}-model-folder"
        )
    lines.append("the endpoint checks the folder's digest at start and refuses any other files")
    return "".join(f"# {line}\n" for line in lines)


def load_serve_config(text: str) -> Any:
    """Parse a RayService's ``serveConfigV2`` (for checks; KubeRay parses it the same way)."""
    return YAML(typ="safe", pure=True).load(text)
