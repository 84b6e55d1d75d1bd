"""Endpoint processes: starting, checking and stopping the model services on this machine."""

from __future__ import annotations

from signoff.endpoints.local import EndpointProcess, LocalEndpointRunner

__all__ = ["EndpointProcess", "LocalEndpointRunner"]
