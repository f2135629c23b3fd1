"""How a runner loop lives through an outage: wait a bounded, jittered, growing time between
tries, say once that the database went away and once that it is back.

No sleeping and no clock reads of its own: the clock and the jitter are passed in, so the
logic is tested without waiting.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from contact_import.domain.job import backoff_seconds

__all__ = ["Backoff", "OutageWatch"]


@dataclass
class Backoff:
    """Delays for consecutive failed tries: ``first`` doubling up to ``cap``, each in [d/2, d]."""

    first: float = 0.1
    cap: float = 2.0
    jitter: Callable[[], float] = random.random
    failures: int = 0

    def next_delay(self) -> float:
        self.failures += 1
        return backoff_seconds(self.failures, self.jitter(), base=self.first, cap=self.cap)

    def reset(self) -> None:
        self.failures = 0


@dataclass
class OutageWatch:
    """Tracks one resource (the database, a LISTEN connection) across failed and good tries.

    ``failed`` logs the first failure of an outage (not every retry) and returns how long to
    wait; ``recovered`` logs that the resource is back, with how long it was gone and how many
    tries failed meanwhile. Both are cheap when nothing changes.
    """

    logger: logging.Logger
    gone: str = "database unavailable; retrying until it is back"
    back: str = "database is back"
    level: int = logging.WARNING
    clock: Callable[[], float] = time.monotonic
    backoff: Backoff = field(default_factory=Backoff)
    down_since: float | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def failed(self, error: BaseException) -> float:
        if self.down_since is None:
            self.down_since = self.clock()
            fields = self.extra | {"error": str(error) or type(error).__name__}
            self.logger.log(self.level, self.gone, extra=fields)
        return self.backoff.next_delay()

    def recovered(self) -> None:
        if self.down_since is None:
            return
        seconds = self.clock() - self.down_since
        fields = self.extra | {
            "down_seconds": round(seconds, 2),
            "failed_tries": self.backoff.failures,
        }
        self.logger.info(self.back, extra=fields)
        self.down_since = None
        self.backoff.reset()
