"""Deployments: what an endpoint serves, how it changes (rollover, canary, promote, rollback)."""

from signoff.deployment.deployer import Deployer
from signoff.deployment.lookup import approval_of, resolve_model_version, why_unapproved

__all__ = ["Deployer", "approval_of", "resolve_model_version", "why_unapproved"]
