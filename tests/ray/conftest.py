"""The Ray executor's tests share one two-node cluster per test run (``raycluster``)."""

from raycluster import ray_cluster

__all__ = ["ray_cluster"]
