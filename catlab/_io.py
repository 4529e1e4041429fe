"""Atomic file writing: a file is either written whole or not at all."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_write(dest, suffix: str = ".tmp"):
    """Write to a temporary file beside ``dest``, renamed over ``dest`` only when the block succeeds.

    The temporary file lives in ``dest``'s directory (so the rename is atomic),
    is flushed and fsynced before the rename, and is removed if the block
    raises; ``dest`` is then left exactly as it was.

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
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=suffix, dir=dest.parent)
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
