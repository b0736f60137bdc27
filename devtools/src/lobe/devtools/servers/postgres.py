"""PostgreSQL 16 from the pgserver wheel, run as our own foreground child (no pg_ctl daemon).

It listens on a loopback TCP port with trust auth and keeps its unix socket in a private
directory, so it never meets a system PostgreSQL. As root, postgres refuses to run: it then runs
as the `pgserver` system user (created the way pgserver itself does it). That user must be able
to walk down to the data directory: a home it cannot reach (pytest's basetemp, which each pytest
session re-chmods to 0700 while another session's server may be starting) keeps no data itself;
the data then lives in a `lobe-pgdata-PID-*` directory under the system temp dir for the server's
lifetime, removed at close() (or, after a kill, by the next server that starts).
"""

from __future__ import annotations

import contextlib
import functools
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import Any

import psutil

from lobe.devtools.ports import LOOPBACK
from lobe.devtools.servers.base import EmbeddedServer, ServerStartError
from lobe.devtools.servers.binaries import postgres_bin_dir

SUPERUSER = "postgres"
SYSTEM_USER = "pgserver"


class PostgresServer(EmbeddedServer):
    name = "postgres"
    # SIGTERM is "smart" shutdown (waits for every client to leave); SIGINT is the fast, clean one.
    graceful_signal = signal.SIGINT

    def __init__(
        self,
        home: Path | str | None = None,
        port: int | None = None,
        host: str = LOOPBACK,
        *,
        durable: bool = True,
        max_connections: int = 200,
    ) -> None:
        super().__init__(home, port, host)
        # Unix socket paths are limited to ~100 bytes, so the socket lives in a short /tmp path.
        self.socket_dir = Path(tempfile.mkdtemp(prefix="lobe-pgsock-"))
        # Tests throw their data away: skipping fsync makes CREATE DATABASE and commits far cheaper.
        self.durable = durable
        self.max_connections = max_connections
        self._account = _system_account() if os.geteuid() == 0 else None
        self._give_away(self.socket_dir)
        self._relocated: Path | None = None
        if self._account is not None and not _reachable(self.home, self._account):
            _sweep_relocated()
            self._relocated = Path(tempfile.mkdtemp(prefix=f"{RELOCATED_PREFIX}{os.getpid()}-"))
            self._give_away(self._relocated)
        self.data_dir = (self._relocated or self.home) / "data"

    @property
    def url(self) -> str:
        return self.dsn("postgres")

    def dsn(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def prepare(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        if self.durable:
            self._initdb(self.data_dir, sync=True)
            return
        # Throwaway servers copy a cluster initialised once per machine: cp takes ~0.1 s, initdb ~1 s.
        cache = self._initdb_cache()
        self._own_dir(self.data_dir)
        self._run(["cp", "-a", f"{cache}/.", str(self.data_dir)], "copying the initdb cache")

    def _initdb_cache(self) -> Path:
        cache = Path(tempfile.gettempdir()) / f"lobe-initdb-{_pg_version()}-{os.geteuid()}"
        if (cache / "PG_VERSION").exists():
            return cache
        building = Path(tempfile.mkdtemp(prefix="lobe-initdb-build-")) / "data"
        self._give_away(building.parent)
        self._initdb(building, sync=False)
        with contextlib.suppress(OSError):  # rename is atomic: a concurrent builder's wins, ours is dropped
            building.rename(cache)
        shutil.rmtree(building.parent, ignore_errors=True)
        return cache

    def _own_dir(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self._give_away(path)
        path.chmod(0o700)

    def _initdb(self, data_dir: Path, sync: bool = True) -> None:
        self._own_dir(data_dir)
        initdb = [
            str(postgres_bin_dir() / "initdb"),
            "-D", str(data_dir),
            "-U", SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-instructions",
        ]  # fmt: skip
        if not sync:
            initdb.append("--no-sync")
        self._run(initdb, "initdb")

    def _run(self, argv: list[str], what: str) -> None:
        with open(self.log_path, "ab") as log:
            result = subprocess.run(
                argv, stdout=log, stderr=subprocess.STDOUT, check=False, **self.popen_kwargs()
            )
        if result.returncode != 0:
            raise ServerStartError(self.name, f"{what} exited with code {result.returncode}", self.log_tail())

    def command(self) -> list[str]:
        cmd = [
            str(postgres_bin_dir() / "postgres"),
            "-D", str(self.data_dir),
            "-p", str(self.port),
            "-c", f"listen_addresses={self.host}",
            "-c", f"unix_socket_directories={self.socket_dir}",
            "-c", f"max_connections={self.max_connections}",
        ]  # fmt: skip
        if not self.durable:
            cmd += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
            # Minimal WAL lets CREATE DATABASE ... STRATEGY FILE_COPY skip logging the template.
            cmd += ["-c", "wal_level=minimal", "-c", "max_wal_senders=0"]
        return cmd

    def popen_kwargs(self) -> dict[str, Any]:
        if self._account is None:
            return {}
        return {"user": self._account.pw_uid, "group": self._account.pw_gid, "extra_groups": []}

    def is_ready(self) -> bool:
        # postmaster.pid's last line turns to "ready" once connections are accepted (what pg_ctl -w reads).
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        if len(lines) < 8 or lines[0].strip() != str(self.pid) or lines[7].strip() != "ready":
            return False
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def close(self) -> None:
        super().close()
        shutil.rmtree(self.socket_dir, ignore_errors=True)
        if self._relocated is not None:
            shutil.rmtree(self._relocated, ignore_errors=True)

    def _give_away(self, path: Path) -> None:
        if self._account is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from pgserver.utils import ensure_prefix_permissions

            os.chown(path, self._account.pw_uid, self._account.pw_gid)
            ensure_prefix_permissions(path)


RELOCATED_PREFIX = "lobe-pgdata-"


def _reachable(path: Path, account: pwd.struct_passwd) -> bool:
    """Whether `account` may search every directory from / down to `path`, as permissions stand."""
    for directory in [path.resolve(), *path.resolve().parents]:
        st = directory.stat()
        if st.st_uid == account.pw_uid:
            bit = stat.S_IXUSR
        elif st.st_gid == account.pw_gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


def _sweep_relocated() -> None:
    """Remove the relocated data of servers whose process is gone (killed before close())."""
    for stale in Path(tempfile.gettempdir()).glob(f"{RELOCATED_PREFIX}*-*"):
        pid = stale.name.removeprefix(RELOCATED_PREFIX).split("-")[0]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)


def _system_account() -> pwd.struct_passwd:
    with warnings.catch_warnings():
        # Importing pgserver computes a runtime dir at class level and warns when XDG_RUNTIME_DIR is unset.
        warnings.simplefilter("ignore")
        from pgserver.utils import ensure_user_exists

    ensure_user_exists(SYSTEM_USER)
    return pwd.getpwnam(SYSTEM_USER)


@functools.cache
def _pg_version() -> str:
    out = subprocess.run(
        [str(postgres_bin_dir() / "postgres"), "--version"], capture_output=True, text=True, check=True
    )
    return out.stdout.split()[-1]
