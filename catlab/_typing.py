"""Type aliases for catlab's public signatures (annotations only; nothing here runs).

``Array``
    A NumPy array of floats, what catlab's functions return (``float32`` or ``float64``).
``Size2``
    A PyTorch-style size argument: one int for both spatial dimensions, or ``(h, w)``.
``Seed``
    What ``rng`` / ``seed`` arguments accept: a ``numpy.random.Generator``, an int seed, or
    ``None`` (fresh entropy).
"""

from __future__ import annotations

import os
from typing import TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["Array", "ArrayLike", "IntArray", "NDArray", "PathLike", "Seed", "Size", "Size2"]

Array: TypeAlias = NDArray[np.floating]
IntArray: TypeAlias = NDArray[np.integer]
Size: TypeAlias = int | tuple[int]
Size2: TypeAlias = int | tuple[int, int]
Seed: TypeAlias = np.random.Generator | int | None
PathLike: TypeAlias = str | os.PathLike[str]
