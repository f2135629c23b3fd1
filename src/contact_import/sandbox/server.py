"""Run the sandbox on loopback: in a background thread (tests, demo) or in the foreground (CLI)."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn

from contact_import.sandbox import oauth_store
from contact_import.sandbox.app import create_sandbox_app
from contact_import.sandbox.state import SandboxState

__all__ = ["RunningSandbox", "sandbox_settings", "serve_forever", "start_sandbox"]

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0


class RunningSandbox:
    """A sandbox serving in a daemon thread; a context manager that stops it on exit."""

    def __init__(self, state: SandboxState, sock: socket.socket) -> None:
        self.state = state
        self._socket = sock
        self.host, self.port = sock.getsockname()[:2]
        config = uvicorn.Config(create_sandbox_app(state), log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name=f"sandbox-{self.port}",
            daemon=True,
        )

    @property
    def base_url(self) -> str:
        """``http://host:port``, what the provider base-URL settings take."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Start serving; return once the server accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the sandbox server did not start")
            time.sleep(0.005)

    def stop(self) -> None:
        """Stop serving and wait for the server thread to end."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(_STOP_TIMEOUT)
        self._socket.close()

    def __enter__(self) -> RunningSandbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_sandbox(state: SandboxState, host: str = "127.0.0.1", port: int = 0) -> RunningSandbox:
    """Serve ``state`` on ``host:port`` (0: any free port) in a background thread."""
    sandbox = RunningSandbox(state, _bound_socket(host, port))
    sandbox.start()
    return sandbox


def sandbox_settings(base_url: str) -> dict[str, str]:
    """The settings that point contact-import at a sandbox: base URLs, its OAuth clients, and
    ``sandbox_url``, which tells the dev home page it talks to the sandbox.

    The keys are the environment variables, lowercased (``Settings`` field names).
    """
    return {
        "google_people_api_url": base_url,
        "google_auth_url": f"{base_url}/o/oauth2/v2/auth",
        "google_token_url": f"{base_url}/token",
        "google_revoke_url": f"{base_url}/revoke",
        "google_client_id": oauth_store.GOOGLE_CLIENT_ID,
        "google_client_secret": oauth_store.GOOGLE_CLIENT_SECRET,
        "microsoft_graph_api_url": base_url,
        "microsoft_login_url": base_url,
        "microsoft_client_id": oauth_store.MICROSOFT_CLIENT_ID,
        "microsoft_client_secret": oauth_store.MICROSOFT_CLIENT_SECRET,
        "sandbox_url": base_url,
    }


def serve_forever(state: SandboxState, host: str = "127.0.0.1", port: int = 8900) -> None:
    """Serve ``state`` in the foreground until Ctrl-C."""
    config = uvicorn.Config(
        create_sandbox_app(state), host=host, port=port, log_level="info", lifespan="off"
    )
    uvicorn.Server(config).run()


def _bound_socket(host: str, port: int) -> socket.socket:
    # Bound before uvicorn starts, so port 0 works and the port is known when we return.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto given explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose proto is
    # IPPROTO_TCP, and without it every small answer waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock
