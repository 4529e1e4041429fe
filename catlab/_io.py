"""Atomic file writing: a file is either written whole or not at all."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from pathlib import Path

STALE_AFTER = 3600.0  # seconds: a temporary untouched this long is a leftover, whoever made it


def _pid_is_running(pid: int) -> bool | None:
    """True or False on POSIX; None where that cannot be asked safely (Windows' os.kill terminates)."""
    if os.name != "posix":
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # exists (another user's), or not a pid at all: leave it to the age rule
    return True


def remove_stale_temporaries(dest, suffix: str = ".tmp", now: float | None = None) -> list[Path]:
    """Remove the temporaries that killed :func:`atomic_write` calls for ``dest`` left behind.

    Only files named exactly as :func:`atomic_write` names them,
    ``.<dest name>.<pid>.<8 random characters><suffix>``, are candidates, and
    only if the process that made them is no longer running on this machine or
    they have not been modified for :data:`STALE_AFTER` seconds (which also
    covers another machine writing to a shared file system). A temporary that a
    live save is writing is never removed.

    Returns
    -------
    list of pathlib.Path
        The files removed.
    """
    dest = Path(dest)
    pattern = re.compile(re.escape(f".{dest.name}.") + r"(\d+)\.[a-z0-9_]{8}" + re.escape(suffix))
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(os.scandir(dest.parent))
    except OSError:
        return removed
    for entry in entries:
        m = pattern.fullmatch(entry.name)
        if m is None or not entry.is_file(follow_symlinks=False):
            continue
        pid = int(m.group(1))
        try:
            old = now - entry.stat(follow_symlinks=False).st_mtime > STALE_AFTER
        except OSError:
            continue
        if old or (pid != os.getpid() and _pid_is_running(pid) is False):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


@contextlib.contextmanager
def atomic_write(dest, suffix: str = ".tmp"):
    """Write to a temporary file beside ``dest``, renamed over ``dest`` only when the block succeeds.

    The temporary file lives in ``dest``'s directory (so the rename is atomic),
    is named ``.<dest name>.<pid>.<8 random characters><suffix>``, is flushed
    and fsynced before the rename, and is removed if the block raises; ``dest``
    is then left exactly as it was. A process killed during the block cannot
    remove its temporary: the next ``atomic_write`` to the same ``dest``
    removes such leftovers first (:func:`remove_stale_temporaries`).

    Parameters
    ----------
    dest : str or os.PathLike
        The final path; its directory must exist.
    suffix : str, default ".tmp"
        Suffix of the temporary file's name.

    Yields
    ------
    file
        A binary file object open for writing.

    Examples
    --------
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> with atomic_write(os.path.join(d, "a.bin")) as f:
    ...     _ = f.write(b"cat")
    >>> open(os.path.join(d, "a.bin"), "rb").read(), os.listdir(d)
    (b'cat', ['a.bin'])
    """
    dest = Path(dest)
    remove_stale_temporaries(dest, suffix)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.{os.getpid()}.", suffix=suffix, dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
