"""`serve`'s in-process worker, watched: if it stops on its own, /healthz fails and `serve` exits.

The worker survives database outages by itself (see runner/worker.py); it stops on its own only
when it cannot go on (a database that refuses it for good, or a bug). A process whose worker
is gone must not look healthy: it imports nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from contact_import.runner.worker import Worker

__all__ = ["InProcessWorker"]

log = logging.getLogger("contact_import.web")


class InProcessWorker:
    """Runs a Worker in a thread; ``health`` is "running" or "stopped: <reason>"."""

    def __init__(self, worker: Worker, on_stopped: Callable[[str], None] | None = None) -> None:
        self.worker = worker
        self.failure: str | None = None
        self._on_stopped = on_stopped
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="worker", daemon=True)

    def start(self) -> None:
        self._thread.start()
        log.info("in-process worker started", extra={"worker": self.worker.name})

    @property
    def health(self) -> str:
        if self.failure is not None:
            return f"stopped: {self.failure}"
        return "running" if self._thread.is_alive() else "stopped"

    def stop(self, timeout: float = 60) -> None:
        """Graceful: running imports finish their page and release their jobs."""
        self._stopping = True
        self.worker.request_stop()
        self._thread.join(timeout)

    def _run(self) -> None:
        reason: str
        try:
            self.worker.run()
        except BaseException as exc:  # run() never raises: if it does, that must be seen
            log.exception("the in-process worker crashed")
            reason = f"crashed ({type(exc).__name__}: {exc})"
        else:
            failure = self.worker.failure
            reason = "exited" if failure is None else str(failure)
        if self._stopping:
            return
        self.failure = reason
        log.error("the in-process worker stopped: %s", reason)
        if self._on_stopped is not None:
            self._on_stopped(reason)
