"""A private PostgreSQL cluster in a temporary folder, for the tests and the benchmark.

``initdb`` and ``pg_ctl`` from Debian's packages, a free loopback port, password (SCRAM)
authentication over TCP only, and the folder removed on ``cleanup()``. PostgreSQL refuses
to run as root, so as root the cluster belongs to the ``postgres`` account the Debian package
creates and its tools run through ``runuser``; the folder is made outside any private
(0700) directory so that account can reach it. The processes are ours: ``stop()`` ends them.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tinyml.device.endpoints import free_tcp_port
from tinyml.errors import ToolError
from tinyml.gateway.broker import wait_listening

SERVICE_USER = "postgres"


def pg_bin(tool: str) -> str:
    """The newest installed PostgreSQL server tool (Debian keeps them off PATH)."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"), key=lambda p: int(p.split("/")[4]))
    path = found[-1] if found else shutil.which(tool)
    if path is None:
        raise ToolError(f"PostgreSQL's {tool} not found", "install it: apt-get install postgresql")
    return path


class LocalPostgres:
    """initdb + pg_ctl: one superuser ``tinyml`` with a password, one database ``fleet``."""

    def __init__(self, *, password: str = "fleet-test-password", port: int | None = None):
        self.password = password
        self.port = port or free_tcp_port()
        self.user = "tinyml"
        self.database = "fleet"
        self.as_root = os.geteuid() == 0
        self.dir = Path(tempfile.mkdtemp(prefix="tinyml-pg-", dir="/tmp"))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        if self.as_root:
            account = pwd.getpwnam(SERVICE_USER)  # KeyError: the package's account is missing
            os.chown(self.dir, account.pw_uid, account.pw_gid)
        self.dir.chmod(0o700)
        self._initdb()

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        argv = (["runuser", "-u", SERVICE_USER, "--"] if self.as_root else []) + list(args)
        done = subprocess.run(argv, capture_output=True, text=True, cwd=self.dir)
        if done.returncode != 0:
            raise ToolError(f"{Path(args[0]).name} failed: {(done.stderr or done.stdout).strip()[-400:]}",
                            f"see {self.log}")
        return done

    def _initdb(self) -> None:
        pwfile = self.dir / "pw"
        pwfile.write_text(self.password + "\n")
        if self.as_root:
            shutil.chown(pwfile, SERVICE_USER)
        pwfile.chmod(0o600)
        self._run(pg_bin("initdb"), "-D", str(self.data), "-U", self.user, f"--pwfile={pwfile}",
                  "--auth=scram-sha-256", "-E", "UTF8", "--no-sync", "--locale=C.UTF-8")
        pwfile.unlink()
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                       f"unix_socket_directories = '{self.dir}'\nfsync = on\n"
                       "max_connections = 50\nshared_buffers = 64MB\n"
                       "track_commit_timestamp = on\n")  # the benchmark's "committed" time per row
        self.start()
        self.sql(f"CREATE DATABASE {self.database}", database="postgres")

    def start(self) -> LocalPostgres:
        self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30", "start")
        wait_listening(self.port)
        return self

    def stop(self, mode: str = "fast") -> None:
        """``fast`` ends sessions and shuts down cleanly; ``immediate`` is a crash."""
        if (self.data / "postmaster.pid").exists():
            self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def cleanup(self) -> None:
        self.stop("immediate")  # the data is thrown away: no checkpoint to wait for
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, *, user: str | None = None) -> str:
        """The connection URL without the password (that comes from PGPASSWORD or a passfile)."""
        return f"postgresql://{user or self.user}@127.0.0.1:{self.port}/{self.database}"

    def env(self) -> dict[str, str]:
        return {"PGPASSWORD": self.password}

    def sql(self, statement: str, *, database: str | None = None) -> list[tuple]:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=self.user, password=self.password,
                             dbname=database or self.database, autocommit=True) as conn:
            cur = conn.execute(statement)
            return cur.fetchall() if cur.description else []
