"""The ``njit`` every kernel module uses: Numba's, with an on-disk cache wherever one can be written.

``numba.njit(cache=True)`` looks for a cache directory when a function is
decorated, that is when catlab is imported: ``NUMBA_CACHE_DIR`` if set, else
``__pycache__`` beside the source, else the user cache (``~/.cache/numba``).
When none of them is writable (catlab installed into a read-only
site-packages by another user, and a home directory that cannot be written,
as in containers, shared servers and CI runners) it raises ``RuntimeError: no
locator available`` and the import fails. This decorator then falls back to

1. a private per-user directory in the temporary directory
   (``<tempdir>/catlab-numba-cache-<uid>``, created with mode 0700 and used
   only if it is a real directory owned by this user that nobody else can
   write, since Numba's cache files are pickles); silently;
2. no on-disk cache: the kernels are compiled afresh in every process (a few
   seconds on first use), with one ``RuntimeWarning`` per process saying so and
   how to fix it (set ``NUMBA_CACHE_DIR`` to a writable directory).

The fallback applies to catlab's kernels only: ``numba.config`` is restored
after each decoration.

Numba decides whether a cached kernel is fresh by the modification time and
size of the kernel's own source file only, but a kernel's compiled code
includes the kernels it calls, from other modules too (the ``prange``
wrappers in ``parallel.py`` call every other module's kernels). After an
update that changes a callee but not its caller's file (``git pull`` in an
editable install), Numba would load the caller with the old callee inside:
wrong results, or memory corruption when the arguments changed meaning. So
each cached kernel's freshness stamp also holds a digest of every module
beside it (:func:`sources_digest`): any edit there recompiles them all.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
import threading
import warnings

import numba

__all__ = ["njit"]

_lock = threading.Lock()
_state = {"needs_fallback": False, "directory": None, "decided": False, "warned": False}

NO_CACHE_WARNING = (
    "catlab: Numba cannot write a cache for the compiled kernels here (no writable NUMBA_CACHE_DIR, "
    "__pycache__ beside catlab, user cache or private temporary directory), so they are compiled afresh "
    "in every process, which costs a few seconds on first use. Set the environment variable "
    "NUMBA_CACHE_DIR to a writable directory to cache them."
)


def private_temp_dir() -> str | None:
    """``<tempdir>/catlab-numba-cache-<uid>`` if it can be made safe to cache into, else None.

    Safe means: a real directory (not a symlink) owned by this user, writable by
    this user and by nobody else. Numba unpickles its cache files, so a
    directory another user could write would let them run code in this process.
    """
    uid = os.getuid() if hasattr(os, "getuid") else None
    try:
        path = os.path.join(tempfile.gettempdir(), f"catlab-numba-cache-{uid if uid is not None else 'user'}")
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode):
            return None
        if uid is not None and (st.st_uid != uid or st.st_mode & 0o022):
            return None
        tempfile.TemporaryFile(dir=path).close()  # writable?
    except OSError:
        return None
    return path


def _fallback_directory() -> str | None:
    if not _state["decided"]:
        _state["directory"] = private_temp_dir()
        _state["decided"] = True
    return _state["directory"]


def _compile_with_fallback(func, options):
    """Decorate ``func`` with a cache in the private temporary directory, else without a cache."""
    directory = _fallback_directory()
    if directory is not None:
        old = numba.config.CACHE_DIR
        numba.config.CACHE_DIR = directory  # read only while the cache locator is chosen, just below
        try:
            return numba.njit(cache=True, **options)(func)
        except RuntimeError as e:
            if "no locator available" not in str(e):
                raise
        finally:
            numba.config.CACHE_DIR = old
    if not _state["warned"]:
        _state["warned"] = True
        warnings.warn(NO_CACHE_WARNING, RuntimeWarning, stacklevel=3)
    return numba.njit(cache=False, **options)(func)


_digests: dict[str, str] = {}


def sources_digest(directory: str) -> str:
    """SHA-256 of the names and contents of the ``*.py`` files in ``directory`` (computed once per process)."""
    if directory not in _digests:
        h = hashlib.sha256()
        for name in sorted(os.listdir(directory)):
            if name.endswith(".py"):
                with open(os.path.join(directory, name), "rb") as f:
                    h.update(name.encode() + b"\0" + f.read() + b"\0")
        _digests[directory] = h.hexdigest()
    return _digests[directory]


def _stamp_with_siblings(dispatcher, func):
    """Make ``dispatcher``'s cache fresh only while the modules beside ``func``'s file are unchanged.

    Numba keeps the stamp in ``dispatcher._cache._cache_file._source_stamp`` (Numba 0.59 to 0.6x), compared
    for equality with the one saved in the cache index; without a cache (``NullCache``) there is none.
    """
    cache_file = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)
    if cache_file is None or not hasattr(cache_file, "_source_stamp"):
        return dispatcher
    directory = os.path.dirname(os.path.abspath(func.__code__.co_filename))
    try:
        digest = sources_digest(directory)
    except OSError:  # sources not readable: Numba's own stamp only
        return dispatcher
    cache_file._source_stamp = (cache_file._source_stamp, digest)
    return dispatcher


def njit(func=None, *, cache: bool = False, **options):
    """``numba.njit`` that never fails for want of a writable cache directory.

    Used exactly like ``numba.njit``: ``@njit(cache=True, nogil=True)`` or ``@njit``.
    With ``cache=True`` it tries Numba's own cache locations first and falls
    back as described in the module docstring.
    """

    def decorate(f):
        if not cache:
            return numba.njit(**options)(f)
        with _lock:
            if not _state["needs_fallback"]:
                try:
                    return _stamp_with_siblings(numba.njit(cache=True, **options)(f), f)
                except RuntimeError as e:
                    if "no locator available" not in str(e):
                        raise
                    _state["needs_fallback"] = True
            return _stamp_with_siblings(_compile_with_fallback(f, options), f)

    return decorate if func is None else decorate(func)
