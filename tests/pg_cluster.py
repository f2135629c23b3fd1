"""A throwaway Postgres cluster on a free port, for tests (and bench/chaos.py) that restart it.

Never the shared server on 5432: the cluster lives in a fresh directory under the system temp
dir, listens on 127.0.0.1 only, and is stopped and deleted by ``remove``. As root the server
runs as the ``postgres`` user (``runuser``), since Postgres refuses to run as root.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

__all__ = ["ClusterUnavailable", "PgCluster", "find_pg_bin", "throwaway_cluster"]

# Durability is not what these clusters are for; a clean `pg_ctl stop` still flushes everything.
_FAST = ("fsync=off", "synchronous_commit=off", "full_page_writes=off", "max_connections=100")


class ClusterUnavailable(RuntimeError):
    """initdb / pg_ctl are not installed, or the cluster would not start."""


def find_pg_bin() -> Path:
    """The directory holding initdb and pg_ctl (PATH first, then Debian's layout)."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(os.path.realpath(on_path)).parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    raise ClusterUnavailable("initdb and pg_ctl are not installed (Debian: postgresql)")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgCluster:
    """One cluster: ``start``, ``stop``, ``restart``, ``url(dbname)``, ``remove``."""

    def __init__(self, root: Path, port: int, bin_dir: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.logfile = root / "postgres.log"
        self.port = port
        self._bin = bin_dir
        self._as_postgres = os.geteuid() == 0

    @classmethod
    def create(cls) -> PgCluster:
        bin_dir = find_pg_bin()
        root = Path(tempfile.mkdtemp(prefix="contact-import-pg-"))
        cluster = cls(root, _free_port(), bin_dir)
        if cluster._as_postgres:
            shutil.chown(root, "postgres", "postgres")
        cluster._run("initdb", "-D", str(cluster.data), "-U", "postgres", "--auth=trust", "-N")
        return cluster

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self._bin / tool), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
        if done.returncode != 0:
            raise ClusterUnavailable(f"{tool} failed: {done.stderr.strip() or done.stdout}")

    def _options(self) -> str:
        settings = [
            f"port={self.port}",
            "listen_addresses=127.0.0.1",
            f"unix_socket_directories={self.root}",
            *_FAST,
        ]
        return " ".join(f"-c {s}" for s in settings)

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-o", self._options(),
                  "-w", "-t", "60", "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self, mode: str = "fast") -> None:
        """What `pg_ctl restart` does: stop (disconnecting everyone), then start again."""
        # -l as for start: without it the server would keep our stdout pipe open for good.
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-m", mode,
                  "-o", self._options(), "-w", "-t", "60", "restart")  # fmt: skip

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def accepting(self) -> bool:
        try:
            with psycopg.connect(self.url(), connect_timeout=2):
                return True
        except psycopg.Error:
            return False

    def wait_accepting(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not self.accepting():
            if time.monotonic() > deadline:
                raise ClusterUnavailable(f"the cluster on port {self.port} did not come up")
            time.sleep(0.05)

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def remove(self) -> None:
        # Already stopped (or never started): deleting the directory is what matters.
        with contextlib.suppress(ClusterUnavailable):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def throwaway_cluster() -> Iterator[PgCluster]:
    """A started cluster, removed on exit whatever happened."""
    cluster = PgCluster.create()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()
