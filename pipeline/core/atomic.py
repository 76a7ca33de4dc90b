"""Outputs that appear whole or not at all: write to a temporary sibling, then rename."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.core.errors import EnvironmentProblem

ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EACCES, errno.EPERM, errno.EROFS, errno.EIO}


def _is_environment(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in ENVIRONMENT_ERRNOS


def _explained(error: OSError, target: Path) -> EnvironmentProblem:
    """One line for a full disk or a refused write: what happened, and to which output."""
    where = f"{error.filename}" if error.filename else str(target)
    return EnvironmentProblem(
        f"{error.strerror or type(error).__name__} while writing {where} (output {target}); "
        "free space or fix the permissions, then run the stage again"
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_leftovers(target: Path) -> int:
    """Delete temporaries of `target` left by a killed run (their process is gone); returns how many.

    Temporaries are named `.<name>.<pid>.<random>.tmp`; those of a live process (another run
    going on right now) are left alone.
    """
    target = Path(target)
    removed = 0
    for leftover in target.parent.glob(f".{glob_escape(target.name)}.*.tmp"):
        pid = leftover.name[len(target.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            if leftover.is_dir() and not leftover.is_symlink():
                remove_tree(leftover)
            else:
                leftover.unlink(missing_ok=True)
            removed += 1
    return removed


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _prefix(target: Path) -> str:
    return f".{target.name}.{os.getpid()}."


def remove_tree(path: Path) -> None:
    """Delete a folder and everything in it, reading it as a stream; errors are ignored (as rmtree's).

    shutil.rmtree lists a whole folder before deleting any of it: on a stage output of a million
    task folders that list alone is hundreds of MB in the one process that must stay small. A
    symlink is left alone, as shutil.rmtree leaves it.
    """
    if os.path.islink(path) or not os.path.isdir(path):
        return
    for _ in range(3):  # entries deleted while the folder is read may hide others: read it again
        with contextlib.suppress(OSError), os.scandir(path) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path, ignore_errors=True)  # one task's folder: a few files
                    else:
                        os.unlink(entry.path)
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            continue
    shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def replace_dir(target: Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside `target`; on success it becomes `target`.

    On any exception the temporary folder is removed and `target` is left as it was, so a
    stage that is interrupted never leaves a half-written output the next stage would trust.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target)
    staging = Path(tempfile.mkdtemp(prefix=_prefix(target), suffix=".tmp", dir=target.parent))
    try:
        yield staging
    except BaseException as error:
        remove_tree(staging)
        if _is_environment(error):
            raise _explained(error, target) from None
        raise
    retired = target.with_name(f".{target.name}.old")
    remove_tree(retired)
    if target.exists():
        target.rename(retired)
    staging.rename(target)
    remove_tree(retired)


@contextlib.contextmanager
def replace_file(target: Path, mode: str = "w") -> Iterator[Any]:
    """Open a temporary sibling of `target` for writing; rename it over `target` on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target)
    descriptor, temporary = tempfile.mkstemp(prefix=_prefix(target), suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(descriptor, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if _is_environment(error):
            raise _explained(error, target) from None
        raise


def write_json(target: Path, payload: Any) -> None:
    """Write JSON atomically, with sorted keys so equal content gives equal bytes."""
    with replace_file(target) as handle:
        json.dump(payload, handle, indent=1, sort_keys=True)
        handle.write("\n")
