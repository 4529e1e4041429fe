"""Keep the BLAS that compiled kernels call single-threaded while they run in parallel.

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


def num_threads() -> int:
    """The number of threads the parallel kernels use (``numba.get_num_threads()``).

    Examples
    --------
    >>> num_threads() >= 1
    True
    """
    return numba.get_num_threads()
