"""A throwaway PostgreSQL cluster on 127.0.0.1 from Debian's packages, for tests.

PostgreSQL refuses to run as root: as root, the cluster's folder belongs to the `postgres` user
(created by Debian's package) and every command runs as that user through `runuser`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.labelstudio.server import free_port

BIN_DIRS = [Path("/usr/lib/postgresql/15/bin"), *sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)]
SERVICE_USER = "postgres"
ROLE = "segpipe"


def binaries() -> Path | None:
    """The folder holding initdb and pg_ctl, or None when PostgreSQL is not installed."""
    for folder in BIN_DIRS:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    return None


def missing_reason() -> str | None:
    """Why a cluster cannot start here, or None when it can."""
    if binaries() is None:
        return "PostgreSQL binaries (initdb, pg_ctl) not found; apt-get install postgresql-15 (make test does)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root and runuser is missing: PostgreSQL cannot run as root"
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam(SERVICE_USER)
        except KeyError:
            return f"running as root and there is no {SERVICE_USER!r} user to run PostgreSQL as"
    return None


def _as_service_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", SERVICE_USER, "--", *command] if os.geteuid() == 0 else command


@contextmanager
def cluster(database: str = "labelstudio") -> Iterator[str]:
    """Start a fresh cluster with one database; yields its URL postgresql://segpipe@127.0.0.1:PORT/NAME."""
    folder = Path(tempfile.mkdtemp(prefix="segpipe-pg-"))
    bindir = binaries()
    if os.geteuid() == 0:
        shutil.chown(folder, SERVICE_USER)
    data, port = folder / "data", free_port()

    def run(*command: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            _as_service_user([str(bindir / command[0]), *command[1:]]),
            check=True,
            capture_output=True,
            text=True,
            cwd=folder,
        )

    try:
        run("initdb", "-D", str(data), "-U", ROLE, "--auth=trust", "-E", "UTF8", "--no-locale")
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off"
        run("pg_ctl", "-D", str(data), "-o", options, "-l", str(folder / "server.log"), "-w", "-t", "60", "start")
        try:
            run("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", ROLE, database)
            yield f"postgresql://{ROLE}@127.0.0.1:{port}/{database}"
        finally:
            run("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")
    except subprocess.CalledProcessError as error:
        raise RuntimeError(f"{error.cmd[-1]} failed: {error.stderr or error.stdout}") from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
