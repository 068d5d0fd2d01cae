"""Writing files so that a reader sees the old file or the complete new one, never half."""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

# A temporary file is ".<name>.<pid>.<12 hex digits>.tmp" beside its destination <name>.
_TMP_PATTERN = r"\.{name}\.(\d+)\.[0-9a-f]{{12}}\.tmp"

STALE_TMP_SECONDS = 24 * 3600
"""Where a writer's process cannot be asked after (not POSIX), its temporary file counts as
stale once it is this old."""


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


def remove_stale_tmp(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files that killed writers of ``path`` left beside it.

    A temporary file is stale when the process named in it no longer runs (on POSIX), or when
    it is older than ``STALE_TMP_SECONDS`` (elsewhere). Files of live writers, of this process
    and anything not named like ``atomic_write``'s temporaries are left alone.

    Returns:
        The files removed.

    >>> import tempfile
    >>> remove_stale_tmp(Path(tempfile.mkdtemp()) / "model.npz")
    []
    """
    path = Path(path)
    pattern = re.compile(_TMP_PATTERN.format(name=re.escape(path.name)))
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None:
            continue
        pid = int(match.group(1))
        if pid == os.getpid():
            continue
        if os.name == "posix":
            stale = not _process_exists(pid)
        else:  # os.kill would terminate the process on Windows
            try:
                stale = time.time() - entry.stat().st_mtime > STALE_TMP_SECONDS
            except OSError:
                continue
        if stale:
            try:
                os.unlink(entry.path)
            except OSError:  # removed by another writer meanwhile, or not ours to remove
                continue
            removed.append(Path(entry.path))
    return removed


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(f)`` on a new file beside ``path``, fsync it, then rename it over ``path``.

    On any error (or Ctrl-C) the temporary file is removed and a previous file at ``path`` is
    left as it was. The file is created with mode 0o666 less the umask, like any new file
    (``tempfile.mkstemp`` would make it private to its owner). The folder must exist.

    The temporary file is named ``.<name>.<pid>.<random>.tmp``; a process killed mid-write
    (SIGKILL, power loss) cannot remove it, so each write first removes those of ``path`` whose
    process is gone (see ``remove_stale_tmp``).

    >>> import tempfile
    >>> p = atomic_write(Path(tempfile.mkdtemp()) / "a.txt", lambda f: f.write(b"hello"))
    >>> p.read_bytes()
    b'hello'
    """
    path = Path(path)
    folder = path.parent
    remove_stale_tmp(path)
    while True:
        tmp = folder / f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                         0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
