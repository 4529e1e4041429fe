"""Checkpoints: a model's ``state_dict`` saved to and loaded from ``.npz``, never pickled.

The ``state_dict`` includes buffers such as a :class:`~catlab.nn.BatchNorm2d`'s
running statistics and its int64 ``num_batches_tracked``.

The file holds one array per ``state_dict`` key (``"0.weight"``, ``"0.bias"`` ...),
so ``np.load(path)`` reads it anywhere, PyTorch included
(``{k: torch.from_numpy(v) for k, v in np.load(path).items()}``).
Writing goes to a temporary file in the same directory, renamed over the
destination only when complete: an error never leaves a half-written file, and
an existing checkpoint stays as it was. A save killed midway (power cut,
``kill -9``) can leave its temporary ``.<name>.<pid>.<random>.tmp`` beside the
target; the next save to that target removes such leftovers
(see ``catlab._io.atomic_write``).
"""

from __future__ import annotations

import math
import os
import struct
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

import numpy as np

from ._io import atomic_write
from ._typing import PathLike
from ._validate import shape_str
from .nn import Module

_M = TypeVar("_M", bound=Module)

__all__ = ["save", "load"]


def _path(path, name="path") -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a file path (str or os.PathLike), got {type(path).__name__}")
    return Path(path).expanduser()


def save(model: Module | Mapping[str, np.ndarray], path: PathLike) -> Path:
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
            raise TypeError(
                f"state[{k!r}] must be a float (or, for counters such as num_batches_tracked, "
                f"integer) array, got dtype {a.dtype}"
            )
        arrays[k] = a
    directory = path.parent
    if not directory.is_dir():
        raise FileNotFoundError(f"path: directory {directory} does not exist; create it first")
    with atomic_write(path) as f:
        np.savez(f, **arrays)
    return path


def load(model: _M, path: PathLike) -> _M:
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
        Naming the file, if it is not a readable ``.npz`` of numeric arrays
        (truncated, any damage to the zip structure or an array header, a failed
        CRC-32 check, pickled objects), or if a shape differs from the model's
        (naming the key and both shapes). Every array header is checked against
        the model before its data is read, so a header claiming an absurd shape
        costs nothing.
    KeyError
        If keys are missing or unexpected (naming them).
    TypeError
        If ``model`` is not a Module.

    Notes
    -----
    The whole file is read and checked before the model is touched: on any
    error the model keeps its parameters.

    Examples
    --------
    See :func:`save`.
    """
    if not isinstance(model, Module):
        raise TypeError(f"model must be a catlab.nn.Module, got {type(model).__name__}")
    path = _path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: checkpoint {path} not found")
    # parameters and buffers (e.g. BatchNorm2d's running statistics and its int64 batch count)
    expected = {k: (p.data.shape, p.data.dtype.kind) for k, p in model._named_state()}
    try:
        state = _read(path, expected)
    except (_Mismatch, KeyError):
        raise
    except _READ_ERRORS as e:
        raise ValueError(f"path: {path} is not a readable catlab checkpoint (.npz of arrays): {e}") from e
    model.load_state_dict(state)  # validated above: every key present, every shape right
    return model


class _Mismatch(ValueError):
    """A well-formed entry whose shape does not fit the model."""


# What reading a damaged zip or .npy can raise (NotImplementedError: zipfile's answer to a flipped
# flag or compression-method bit; zlib.error: a stored member whose method bit now says "deflate").
_READ_ERRORS = (
    ValueError,
    OSError,
    EOFError,
    zipfile.BadZipFile,
    zlib.error,
    NotImplementedError,
    struct.error,
    OverflowError,
    UnicodeDecodeError,
)
_ALLOWED_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)  # np.savez, np.savez_compressed
_BAD_FLAGS = 0x1 | 0x20 | 0x40  # encrypted, patched data, strong encryption


def _check_layout(path: Path, infos, start_dir: int) -> None:
    """Check that the members the central directory lists tile the file from byte 0 to the directory.

    A damaged end record or directory can make zipfile list only some members
    (which would look like missing keys) or point into the middle of the data.
    """
    pos = 0
    with open(path, "rb") as raw:
        for info in sorted(infos, key=lambda i: i.header_offset):
            if info.header_offset != pos:
                raise ValueError(
                    f"member {info.filename!r} starts at byte {info.header_offset}, expected {pos}: "
                    "the zip directory is damaged or members are missing"
                )
            raw.seek(pos)
            head = raw.read(30)
            if len(head) != 30 or head[:4] != b"PK\x03\x04":
                raise ValueError(f"no zip local header at byte {pos}")
            n_name, n_extra = struct.unpack("<HH", head[26:30])
            pos += 30 + n_name + n_extra + info.compress_size
            if info.flag_bits & 0x8:  # a data descriptor follows: optional signature, CRC, two sizes (4 or 8 bytes)
                raw.seek(pos)
                pos += (4 if raw.read(4) == b"PK\x07\x08" else 0) + (
                    20 if info.file_size >= 0xFFFFFFFF or info.compress_size >= 0xFFFFFFFF else 12
                )
    if pos != start_dir:
        raise ValueError(
            f"the members end at byte {pos} but the zip directory starts at byte {start_dir}: "
            "the zip directory is damaged or members are missing"
        )


def _read_npy_header(f, key: str):
    """``(shape, fortran_order, dtype)`` from an ``.npy`` header, any damage reported as a ValueError."""
    version = np.lib.format.read_magic(f)
    if version not in ((1, 0), (2, 0)):
        raise ValueError(f"{key!r} has .npy format version {version}, expected 1.0 or 2.0")
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    try:
        return read(f)  # at most 10,000 header bytes, parsed with ast.literal_eval
    except _READ_ERRORS:
        raise
    except Exception as e:  # numpy lets the tokenizer's and parser's own errors through (SyntaxError, TokenError)
        raise ValueError(f"{key!r} has a damaged .npy header ({type(e).__name__}: {e})") from e


def _read(path: Path, expected: dict) -> dict:
    """Every array of the checkpoint, each header checked against ``expected`` before its data is read.

    Raises KeyError (keys differ from the model's), _Mismatch (a shape differs) or
    one of ``_READ_ERRORS`` (the file is damaged). Reads the whole of every
    member, so zipfile checks each member's CRC-32.
    """
    state = {}
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        keys = []
        for info in infos:
            if not info.filename.endswith(".npy"):
                raise ValueError(f"member {info.filename!r} is not an .npy array")
            keys.append(info.filename[:-4])
        if len(set(keys)) != len(keys):
            raise ValueError("it holds the same array name twice")
        _check_layout(path, infos, zf.start_dir)
        for info, key in zip(infos, keys):
            if info.compress_type not in _ALLOWED_METHODS or info.flag_bits & _BAD_FLAGS:
                raise ValueError(
                    f"member {info.filename!r} has compression method {info.compress_type} and "
                    f"flags {info.flag_bits:#x}, which np.savez never writes"
                )
            with zf.open(info) as f:
                shape, fortran, dtype = _read_npy_header(f, key)
                if dtype.kind not in "fiu":
                    raise ValueError(f"{key!r} holds dtype {dtype}, not numbers")
                if key not in expected:
                    continue  # opening it checked its local header; its data is not wanted
                want_shape, want_kind = expected[key]
                if (dtype.kind == "f") != (want_kind == "f"):
                    raise ValueError(
                        f"{key!r} holds dtype {dtype} but the model's {key!r} is "
                        f"{'floating point' if want_kind == 'f' else 'an integer'}"
                    )
                if shape != want_shape:
                    raise _Mismatch(
                        f"checkpoint {path}: {key!r} has shape {shape_str(shape)} in the file but the "
                        f"model's parameter {key!r} has shape {shape_str(want_shape)}; the file is "
                        "from another architecture or corrupt"
                    )
                nbytes = math.prod(shape) * dtype.itemsize
                data = f.read(nbytes + 1)  # one byte more: reaches the member's end, where its CRC is checked
                if len(data) != nbytes:
                    raise ValueError(f"{key!r} holds {len(data)} bytes of data, expected {nbytes}")
            state[key] = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    missing = [k for k in expected if k not in keys]
    unexpected = [k for k in keys if k not in expected]
    if missing or unexpected:
        raise KeyError(
            f"checkpoint {path} does not match the model: missing keys {missing}, unexpected keys {unexpected}"
        )
    return state
