"""Offline checks of Kubernetes objects: the API schemas for built-ins, CRD fields for the rest.

Built-in objects (Deployment, Service, Job, and the pods inside custom resources) are
checked by ``kubernetes_validate`` in strict mode (an unknown field fails) against a fixed
Kubernetes version. InferenceService (KServe) and RayService (KubeRay) are checked against
schemas written here from the CRDs' documented fields: only what signoff emits, closed at
every level (``additionalProperties: false``), so a typo or a wrong type fails.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import kubernetes_validate

from signoff.deployment.manifests import load_serve_config

__all__ = ["INFERENCE_SERVICE", "K8S_VERSION", "RAY_SERVICE", "SERVE_CONFIG", "check_document"]

K8S_VERSION = "1.30.0"

# ------------------------------------------------------------------- CRD field schemas
_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_POD_PARTS = {"type": "array", "items": {"type": "object"}}  # checked as a Pod separately
METADATA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"},
        "namespace": {"type": "string"},
        "labels": _STR_MAP,
        "annotations": _STR_MAP,
    },
}
INFERENCE_SERVICE = {  # serving.kserve.io/v1beta1; predictor = ComponentExtensionSpec + PodSpec
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "serving.kserve.io/v1beta1"},
        "kind": {"const": "InferenceService"},
        "metadata": METADATA,
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["predictor"],
            "properties": {
                "predictor": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["containers"],
                    "properties": {
                        "minReplicas": {"type": "integer", "minimum": 0},
                        "maxReplicas": {"type": "integer", "minimum": 0},
                        "canaryTrafficPercent": {"type": "integer", "minimum": 0, "maximum": 100},
                        "containers": {**_POD_PARTS, "minItems": 1, "maxItems": 1},
                        "initContainers": _POD_PARTS,
                        "volumes": _POD_PARTS,
                        "securityContext": {"type": "object"},
                    },
                }
            },
        },
    },
}
_POD_TEMPLATE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["spec"],
    "properties": {"metadata": {"type": "object"}, "spec": {"type": "object"}},
}
RAY_SERVICE = {  # ray.io/v1 RayService: serveConfigV2 + rayClusterConfig (RayClusterSpec)
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "ray.io/v1"},
        "kind": {"const": "RayService"},
        "metadata": METADATA,
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["serveConfigV2", "rayClusterConfig"],
            "properties": {
                "serveConfigV2": {"type": "string"},
                "rayClusterConfig": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["headGroupSpec"],
                    "properties": {
                        "rayVersion": {"type": "string", "pattern": r"^\d+\.\d+\.\d+$"},
                        "headGroupSpec": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["rayStartParams", "template"],
                            "properties": {
                                "rayStartParams": _STR_MAP,
                                "template": _POD_TEMPLATE,
                            },
                        },
                        "workerGroupSpecs": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["groupName", "rayStartParams", "template"],
                                "properties": {
                                    "groupName": {"type": "string"},
                                    "replicas": {"type": "integer", "minimum": 0},
                                    "minReplicas": {"type": "integer", "minimum": 0},
                                    "maxReplicas": {"type": "integer", "minimum": 0},
                                    "rayStartParams": _STR_MAP,
                                    "template": _POD_TEMPLATE,
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}
SERVE_CONFIG = {  # Ray Serve's config file (what serveConfigV2 holds)
    "type": "object",
    "additionalProperties": False,
    "required": ["applications"],
    "properties": {
        "applications": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "import_path"],
                "properties": {
                    "name": {"type": "string"},
                    "import_path": {"type": "string", "pattern": r"^[\w.]+:[\w.]+$"},
                    "route_prefix": {"type": "string"},
                    "args": {"type": "object"},
                    "deployments": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["name"],
                            "properties": {
                                "name": {"type": "string"},
                                "num_replicas": {"type": "integer", "minimum": 1},
                                "ray_actor_options": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {
                                        "num_cpus": {"type": "number", "minimum": 0},
                                        "num_gpus": {"type": "number", "minimum": 0},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        }
    },
}


# ------------------------------------------------------------------- the checks
def _as_pod(pod_spec: dict[str, Any], metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "check", **(metadata or {})},
        "spec": pod_spec,
    }


def check_document(doc: dict[str, Any]) -> None:
    """Validate one emitted object; raises on any schema violation."""
    kind = doc["kind"]
    if kind == "InferenceService":
        jsonschema.validate(doc, INFERENCE_SERVICE)
        predictor = doc["spec"]["predictor"]
        pod_keys = ("containers", "initContainers", "volumes", "securityContext")
        spec = {k: v for k, v in predictor.items() if k in pod_keys}
        kubernetes_validate.validate(_as_pod(spec), K8S_VERSION, strict=True)
    elif kind == "RayService":
        jsonschema.validate(doc, RAY_SERVICE)
        jsonschema.validate(load_serve_config(doc["spec"]["serveConfigV2"]), SERVE_CONFIG)
        cluster = doc["spec"]["rayClusterConfig"]
        groups = [cluster["headGroupSpec"], *cluster.get("workerGroupSpecs", [])]
        for group in groups:
            template = group["template"]
            pod = _as_pod(template["spec"], template.get("metadata"))
            kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
    else:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
