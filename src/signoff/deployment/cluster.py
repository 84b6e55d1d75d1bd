"""Manifests that run signoff itself on Kubernetes: server, workers, a migration Job.

The store's URL and both keys come from one Kubernetes Secret (``secretKeyRef``), never
inline. The Job opens the store once (opening migrates it) and exits; it is named after
the signoff version, so an upgrade creates a new Job that runs before the new Deployments
are applied (docs/kubernetes.md). Workers get a termination grace period: on SIGTERM a
worker stops taking runs and finishes the steps it is driving.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from signoff.deployment.kube import (
    check_image,
    container_security,
    dns_name,
    label_value,
    pod_security,
)
from signoff.errors import SignoffError

__all__ = ["SERVER_PORT", "ClusterSpec", "MIGRATE", "cluster_documents"]

SERVER_PORT = 8765
HOME = "/var/lib/signoff"
TMP = "/tmp"  # noqa: S108 - the pod's own emptyDir volume, needed with a read-only root
MIGRATE = (
    "import os; from signoff.store.sql import open_store; "
    "open_store(os.environ['SIGNOFF_DATABASE_URL']).close(); print('store is up to date')"
)
"""The Job's program: open the store (which applies every migration not yet applied), exit."""
_SECRET_KEYS = (
    ("SIGNOFF_DATABASE_URL", "database-url"),
    ("SIGNOFF_SECRET_KEY", "secret-key"),
    ("SIGNOFF_AUDIT_KEY", "audit-key"),
)


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    """What ``signoff kube manifests`` writes: image, names, replicas, settings."""

    image: str
    version: str
    name: str = "signoff"
    secret: str = "signoff"  # noqa: S105 - the name of a Secret, not its value
    workers: int = 2
    worker_threads: int = 4
    worker_grace_seconds: int = 3600
    base_url: str | None = None
    artifacts_url: str | None = None
    artifacts_secret: str = "signoff-artifacts"  # noqa: S105 - the name of a Secret, not its value
    home_claim: str = "signoff-home"  # ReadWriteMany: run folders are shared (docs/scale.md)


def cluster_documents(spec: ClusterSpec) -> list[dict[str, Any]]:
    """The Job, the server Deployment and Service, and the workers' Deployment, in that order."""
    check_image(spec.image)
    if spec.workers < 0:
        raise SignoffError(f"workers must be 0 or more, not {spec.workers}")
    if spec.worker_grace_seconds < 1:
        raise SignoffError("the workers' grace period must be at least 1 second")
    return [_job(spec), *_server(spec), _workers(spec)]


def _labels(spec: ClusterSpec, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "signoff",
        "app.kubernetes.io/instance": dns_name(spec.name),
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/version": label_value(spec.version),
        "app.kubernetes.io/managed-by": "signoff",
    }


def _selector(spec: ClusterSpec, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/instance": dns_name(spec.name),
        "app.kubernetes.io/component": component,
    }


def _env(spec: ClusterSpec) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [{"name": "SIGNOFF_HOME", "value": HOME}]
    for variable, key in _SECRET_KEYS:
        ref = {"name": spec.secret, "key": key}
        env.append({"name": variable, "valueFrom": {"secretKeyRef": ref}})
    if spec.base_url:
        env.append({"name": "SIGNOFF_BASE_URL", "value": spec.base_url})
    if spec.artifacts_url:
        env.append({"name": "SIGNOFF_ARTIFACTS_URL", "value": spec.artifacts_url})
    return env


def _container(spec: ClusterSpec, name: str, command: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "image": spec.image,
        "command": command,
        "env": _env(spec),
        "envFrom": [{"secretRef": {"name": spec.artifacts_secret, "optional": True}}],
        "volumeMounts": [
            {"name": "home", "mountPath": HOME},
            {"name": "tmp", "mountPath": TMP},
        ],
        "securityContext": container_security(),
    }


def _pod(
    spec: ClusterSpec, container: dict[str, Any], *, shared_home: bool = True, **more: Any
) -> dict[str, Any]:
    """A pod spec; the server and workers share the home folder (a run's files live there)."""
    home: dict[str, Any] = (
        {"name": "home", "persistentVolumeClaim": {"claimName": spec.home_claim}}
        if shared_home
        else {"name": "home", "emptyDir": {}}
    )
    return {
        "securityContext": pod_security(),
        "containers": [container],
        "volumes": [home, {"name": "tmp", "emptyDir": {}}],
        **more,
    }


def _job(spec: ClusterSpec) -> dict[str, Any]:
    labels = _labels(spec, "migrate")
    container = _container(spec, "migrate", ["python", "-c", MIGRATE])
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": dns_name(f"{spec.name}-migrate-{spec.version}"), "labels": labels},
        "spec": {
            "backoffLimit": 3,
            "activeDeadlineSeconds": 1800,
            "ttlSecondsAfterFinished": 86400,
            "template": {
                "metadata": {"labels": labels},
                "spec": _pod(spec, container, shared_home=False, restartPolicy="OnFailure"),
            },
        },
    }


def _server(spec: ClusterSpec) -> list[dict[str, Any]]:
    labels = _labels(spec, "server")
    command = ["signoff", "server", "--no-worker", "--host", "0.0.0.0", "--port", str(SERVER_PORT)]
    container = _container(spec, "server", command)
    container["ports"] = [{"containerPort": SERVER_PORT, "name": "http", "protocol": "TCP"}]
    health = {"path": "/health", "port": "http"}
    container["readinessProbe"] = {"httpGet": health, "periodSeconds": 5, "failureThreshold": 3}
    container["livenessProbe"] = {
        "httpGet": health,
        "initialDelaySeconds": 10,
        "periodSeconds": 10,
        "failureThreshold": 6,
    }
    name = dns_name(f"{spec.name}-server")
    selector = _selector(spec, "server")
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            # one server: it also runs the gate timers and the scheduler
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "Recreate"},
            "template": {"metadata": {"labels": labels}, "spec": _pod(spec, container)},
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "selector": selector,
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    return [deployment, service]


def _workers(spec: ClusterSpec) -> dict[str, Any]:
    labels = _labels(spec, "worker")
    command = ["signoff", "worker", "--threads", str(spec.worker_threads)]
    container = _container(spec, "worker", command)
    pod = _pod(spec, container, terminationGracePeriodSeconds=spec.worker_grace_seconds)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": dns_name(f"{spec.name}-worker"), "labels": labels},
        "spec": {
            "replicas": spec.workers,
            "selector": {"matchLabels": _selector(spec, "worker")},
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }
