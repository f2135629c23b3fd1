"""A real PgBouncer for the pooler tests: Debian's binary, its own ini in a temp dir, a free port.

It runs in front of the shared Postgres (we only connect through it; the server is never
touched). PgBouncer refuses to run as root, so under root it runs as the ``postgres`` user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

_CANDIDATES = ("pgbouncer", "/usr/sbin/pgbouncer", "/usr/bin/pgbouncer")


def find_pgbouncer() -> str | None:
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass(frozen=True)
class RunningPgBouncer:
    port: int
    version: str
    workdir: Path

    def url(self, database: str, *, flag: bool = False) -> str:
        """A URL to ``database`` through the pooler; ``flag`` adds Prisma's ?pgbouncer=true."""
        url = f"postgresql://postgres@127.0.0.1:{self.port}/{database}"
        return url + "?pgbouncer=true" if flag else url

    def log(self) -> str:
        path = self.workdir / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ini(
    workdir: Path, port: int, upstream: tuple[str, int], pool_mode: str, pool_size: int
) -> str:
    host, upstream_port = upstream
    return f"""\
[databases]
; any database name goes to the same-named database on the upstream server
* = host={host} port={upstream_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
pool_mode = {pool_mode}
auth_type = trust
auth_file = {workdir}/userlist.txt
admin_users = postgres
; few server connections for many clients: they really share them, as on Supabase
default_pool_size = {pool_size}
max_client_conn = 500
server_idle_timeout = 10
logfile = {workdir}/pgbouncer.log
pidfile = {workdir}/pgbouncer.pid
"""


@contextmanager
def start_pgbouncer(
    binary: str,
    *,
    upstream: tuple[str, int] = ("127.0.0.1", 5432),
    pool_mode: str = "transaction",
    pool_size: int = 4,
) -> Iterator[RunningPgBouncer]:
    """Start PgBouncer on a free loopback port; stop it (and remove its files) afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    as_root = os.geteuid() == 0
    try:
        port = _free_port()
        (workdir / "pgbouncer.ini").write_text(_ini(workdir, port, upstream, pool_mode, pool_size))
        (workdir / "userlist.txt").write_text('"postgres" ""\n')
        if as_root:
            pg = pwd.getpwnam("postgres")
            for path in (workdir, *workdir.iterdir()):
                os.chown(path, pg.pw_uid, pg.pw_gid)
        stderr = (workdir / "stderr.txt").open("wb")  # a pipe nobody reads would fill up
        proc = subprocess.Popen(
            [binary, str(workdir / "pgbouncer.ini")],
            user="postgres" if as_root else None,
            group="postgres" if as_root else None,
            extra_groups=[] if as_root else None,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        stderr.close()
        try:
            running = RunningPgBouncer(port, _version(binary), workdir)
            _wait_ready(proc, running)
            yield running
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()[0].strip()


def _wait_ready(proc: subprocess.Popen[bytes], running: RunningPgBouncer) -> None:
    deadline = time.monotonic() + 15
    while True:
        if proc.poll() is not None:
            err = (running.workdir / "stderr.txt").read_text(errors="replace")
            raise RuntimeError(f"pgbouncer exited ({proc.returncode}): {err}")
        try:
            with psycopg.connect(running.url("postgres"), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
                return
        except psycopg.Error:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
