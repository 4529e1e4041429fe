"""Checkpoints: a model's ``state_dict`` saved to and loaded from ``.npz``, never pickled.

The ``state_dict`` includes buffers such as a :class:`~catlab.nn.BatchNorm2d`'s
running statistics and its int64 ``num_batches_tracked``.

The file holds one array per ``state_dict`` key (``"0.weight"``, ``"0.bias"`` ...),
so ``np.load(path)`` reads it anywhere, PyTorch included
(``{k: torch.from_numpy(v) for k, v in np.load(path).items()}``).
Writing goes to a temporary file in the same directory, renamed over the
destination only when complete: an error never leaves a half-written file, and
an existing checkpoint stays as it was.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from ._io import atomic_write
from .nn import Module

__all__ = ["save", "load"]


def _path(path, name="path") -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a file path (str or os.PathLike), got {type(path).__name__}")
    return Path(path).expanduser()


def save(model, path) -> Path:
    """Write ``model.state_dict()`` (or a mapping of arrays) to ``path`` atomically.

    Parameters
    ----------
    model : catlab.nn.Module or mapping of str to ndarray
    path : str or os.PathLike
        The file to write, usually ending in ``.npz`` (used exactly as given).
        Its directory must exist.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    TypeError
        If ``model`` is neither a Module nor a mapping of float (or integer) arrays, or ``path`` is not a path.
    FileNotFoundError
        If the directory does not exist.

    Examples
    --------
    >>> import tempfile, os
    >>> from catlab import nn
    >>> net = nn.Sequential(nn.Linear(4, 3, rng=0), nn.ReLU(), nn.Linear(3, 2, rng=1))
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = save(net, os.path.join(d, "net.npz"))
    ...     other = load(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)), p)
    >>> bool((other[2].weight.data == net[2].weight.data).all())
    True
    """
    path = _path(path)
    state = model.state_dict() if isinstance(model, Module) else model
    if not hasattr(state, "items"):
        raise TypeError(f"model must be a catlab.nn.Module or a mapping of arrays, got {type(model).__name__}")
    arrays = {}
    for k, v in state.items():
        if not isinstance(k, str):
            raise TypeError(f"state keys must be strings, got {k!r}")
        a = np.asarray(v)
        if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
            raise TypeError(f"state[{k!r}] must be a float (or, for counters such as num_batches_tracked, "
                            f"integer) array, got dtype {a.dtype}")
        arrays[k] = a
    directory = path.parent
    if not directory.is_dir():
        raise FileNotFoundError(f"path: directory {directory} does not exist; create it first")
    with atomic_write(path) as f:
        np.savez(f, **arrays)
    return path


def load(model, path):
    """Load a checkpoint written by :func:`save` into ``model`` and return the model.

    Uses :meth:`catlab.nn.Module.load_state_dict` (strict): the model is changed
    only if every key is present and every shape fits.

    Parameters
    ----------
    model : catlab.nn.Module
        A model of the same architecture.
    path : str or os.PathLike

    Returns
    -------
    model : catlab.nn.Module
        The same object, its parameters replaced (converted to the model's dtype).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a readable ``.npz`` (corrupt, truncated, or holding
        pickled objects), or a shape differs (naming the first key and both shapes).
    KeyError
        If keys are missing or unexpected (naming them).
    TypeError
        If ``model`` is not a Module.

    Examples
    --------
    See :func:`save`.
    """
    if not isinstance(model, Module):
        raise TypeError(f"model must be a catlab.nn.Module, got {type(model).__name__}")
    path = _path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: checkpoint {path} not found")
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single array, not a state_dict")
        with data:
            state = {k: data[k] for k in data.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise ValueError(f"path: {path} is not a readable catlab checkpoint (.npz of arrays): {e}") from e
    model.load_state_dict(state)
    return model
