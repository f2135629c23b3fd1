"""A real webhook receiver on loopback (http.server in a thread) that records what it got.

``statuses`` answers requests in turn (the last one repeats); ``delay`` holds each answer
that long (a slow receiver). It verifies nothing itself: tests verify with the
``standardwebhooks`` library, as a real receiver would.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    answered_at: float  # time.monotonic() just before the answer went out

    def verified(self, secret: str) -> Any:
        """The body, parsed, if ``secret`` verifies it (raises WebhookVerificationError)."""
        return Webhook(secret).verify(self.body, self.headers)

    @property
    def event(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    port: int
    statuses: list[int] = field(default_factory=lambda: [200])
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    arrivals: int = 0  # requests that came in, answered yet or not
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _arrived: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self._arrived = threading.Condition(self._lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def _status(self) -> int:
        with self._lock:
            index = min(len(self.received), len(self.statuses) - 1)
            return self.statuses[index]

    def record(self, headers: dict[str, str], body: bytes) -> None:
        with self._arrived:
            self.received.append(Received(headers, body, time.monotonic()))
            self._arrived.notify_all()

    def arrive(self) -> None:
        with self._arrived:
            self.arrivals += 1
            self._arrived.notify_all()

    def wait_arrivals(self, count: int, timeout: float) -> None:
        with self._arrived:
            ok = self._arrived.wait_for(lambda: self.arrivals >= count, timeout)
            assert ok, f"{self.arrivals} requests came in, not {count}"

    def wait_for(self, count: int, timeout: float) -> list[Received]:
        with self._arrived:
            ok = self._arrived.wait_for(lambda: len(self.received) >= count, timeout)
            assert ok, f"the receiver got {len(self.received)} requests, not {count}"
            return list(self.received)

    @contextmanager
    def running(self) -> Iterator[Receiver]:
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            status = receiver._status()
            receiver.arrive()
            if receiver.delay:
                time.sleep(receiver.delay)
            # Recorded before answering: once the sender has its answer, the test sees it.
            receiver.record(dict(self.headers.items()), body)
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
