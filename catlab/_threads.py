"""Run compiled kernels on several threads, and keep their BLAS single-threaded meanwhile.

:func:`run_chunks` calls a kernel once per chunk of the work, chunk 0 on the
calling thread and the others on a small pool of Python threads; the kernels
release the GIL (``nogil=True``), so the chunks run at the same time. Idle
pool threads sleep instead of spinning, so they do not steal cores from
NumPy's, torch's or Numba's own thread pools. The chunks are fixed by their
number alone, so results do not depend on which thread runs which chunk.

``np.dot`` inside a Numba kernel calls the BLAS that SciPy ships (a copy
separate from NumPy's). The parallel kernels already give each thread its own
matrix products; a multi-threaded BLAS inside them would start a second pool
of threads that fights the first one for the cores. :func:`single_threaded_blas`
sets that BLAS to one thread for the duration of a call and restores it after.
It needs :mod:`threadpoolctl`; without it, it does nothing (results are the
same, only slower).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba

_controllers = None


def _kernel_blas():
    """The threadpoolctl controllers of every BLAS but NumPy's own (found once, then cached)."""
    global _controllers
    if _controllers is None:
        found = []
        try:
            import numpy as np
            import scipy.linalg.cython_blas  # noqa: F401  (what numba's np.dot links to)
            from threadpoolctl import ThreadpoolController

            npdir = os.path.dirname(os.path.abspath(np.__file__))
            for lib in ThreadpoolController().lib_controllers:
                path = os.path.abspath(lib.filepath or "")
                if lib.user_api == "blas" and not path.startswith(npdir):  # numpy/ and numpy.libs/
                    found.append(lib)
        except ImportError:  # pragma: no cover - threadpoolctl or scipy missing
            pass
        _controllers = found
    return _controllers


class single_threaded_blas:
    """Context manager: the kernels' BLAS runs on one thread inside the block.

    Examples
    --------
    >>> with single_threaded_blas():
    ...     pass
    """

    __slots__ = ("_saved",)

    def __enter__(self):
        self._saved = []
        for lib in _kernel_blas():
            n = lib.num_threads
            if n != 1:
                lib.set_num_threads(1)
                self._saved.append((lib, n))
        return self

    def __exit__(self, *exc):
        for lib, n in self._saved:
            lib.set_num_threads(n)
        return False


_pool = None
_pool_pid = None
_pool_lock = threading.Lock()


def _executor():
    """The shared pool of worker threads, made on first use (and again in a forked child, which has none)."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool = ThreadPoolExecutor(max_workers=max(1, numba.config.NUMBA_NUM_THREADS - 1),
                                       thread_name_prefix="catlab")
            _pool_pid = os.getpid()
        return _pool


def run_chunks(work, n_chunks: int) -> None:
    """Call ``work(t)`` for t = 0 .. n_chunks - 1, at the same time on up to ``n_chunks`` threads.

    Exceptions raised by any chunk are re-raised here.

    Examples
    --------
    >>> out = [0] * 3
    >>> def work(t):
    ...     out[t] = t * t
    >>> run_chunks(work, 3); out
    [0, 1, 4]
    """
    if n_chunks <= 1:
        work(0)
        return
    pool = _executor()
    futures = [pool.submit(work, t) for t in range(1, n_chunks)]
    try:
        work(0)
    finally:
        for f in futures:
            f.result()


def chunks_for(items: int, work_per_item: float, threads: int, min_work: float = 2e5) -> int:
    """How many chunks to cut ``items`` into: one per thread, but none smaller than ``min_work``.

    ``work_per_item`` is in multiply-adds; handing a chunk to another thread costs
    some tens of microseconds, so tiny calls stay on the calling thread.

    Examples
    --------
    >>> chunks_for(64, 1e6, 2), chunks_for(1, 1e3, 2), chunks_for(1, 1e6, 4)
    (2, 1, 1)
    """
    by_work = int(items * work_per_item // min_work)
    return max(1, min(threads, items, by_work))


def num_threads() -> int:
    """The number of threads the parallel kernels use (``numba.get_num_threads()``).

    Examples
    --------
    >>> num_threads() >= 1
    True
    """
    return numba.get_num_threads()
