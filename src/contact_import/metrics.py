"""Prometheus metrics of one process, in their own registry (built once, by the runtime)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

__all__ = ["Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
