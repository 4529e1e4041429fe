"""A small colour ConvNet trained on the sample photos that ship with scikit-image and scikit-learn.

The task: given a 32x32 colour patch, say which of ten photos it was cut from
(the cat, the astronaut, coffee, the rocket, the Hubble deep field, an
immunohistochemistry slide, a retina, the colour wheel, and scikit-learn's
two photos of a Chinese temple and a flower). Training patches come from the
left part of each photo and test patches from the right part, so the test
accuracy measures how well the network recognises *new* parts of a photo by
its colours and textures, not how well it remembers pixels. Each patch has
its mean colour removed (:func:`centre_colours`), so colour differences and
edges inside the patch are what is left to go on.

- :func:`colour_patches` builds the data set (seeded, offline).
- :func:`colour_net_architecture` is the network (three convolutions, one linear layer).
- :func:`colour_net` returns it with the weights shipped in
  ``catlab/data/colour_net.npz``; :func:`recorded_accuracy` reads the accuracies
  recorded beside them in ``catlab/data/colour_net.json``.
- ``python -m catlab.pretrained --out PATH`` retrains from scratch and writes
  ``PATH`` (the weights) and ``PATH`` with suffix ``.json`` (the accuracies).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import checkpoint, nn, optim, train
from ._io import atomic_write
from ._typing import Array, NDArray, PathLike, Seed

__all__ = [
    "PHOTOS",
    "PATCH",
    "TRAIN_FRACTION",
    "photos",
    "colour_patches",
    "centre_colours",
    "colour_net_architecture",
    "colour_net",
    "recorded_accuracy",
    "retrain",
    "WEIGHTS",
    "main",
]

#: The ten photos, in label order: (name, where it comes from, integer downsampling factor).
#: The factors bring every photo to a similar scale (100-185 pixels on the short side), so
#: that a 32x32 patch holds edges and texture rather than one smooth colour.
PHOTOS = (
    ("cat", "skimage.data.chelsea", 2),
    ("astronaut", "skimage.data.astronaut", 4),
    ("coffee", "skimage.data.coffee", 4),
    ("rocket", "skimage.data.rocket", 4),
    ("hubble", "skimage.data.hubble_deep_field", 6),
    ("immunohistochemistry", "skimage.data.immunohistochemistry", 4),
    ("retina", "skimage.data.retina", 10),
    ("colorwheel", "skimage.data.colorwheel", 2),
    ("china", "sklearn.datasets.load_sample_images:0", 4),
    ("flower", "sklearn.datasets.load_sample_images:1", 4),
)
PATCH = 32  #: patch side in pixels
TRAIN_FRACTION = 2 / 3  #: training patches come from the left 2/3 of each photo, test patches from the rest

#: The shipped weights; the recorded accuracies are in the file with suffix ``.json`` beside it.
WEIGHTS = Path(__file__).with_name("data") / "colour_net.npz"

# Training recipe used by :func:`retrain` (and so by ``main``) for the shipped weights.
_RECIPE: dict[str, Any] = dict(
    n_train=800, n_test=300, epochs=12, batch_size=64, lr=2e-3, seed=0, init_scale=0.1, weight_decay=1e-4
)


def _load_photo(source: str) -> np.ndarray:
    """One photo as uint8 (H, W, 3)."""
    from .datasets import _optional

    if source.startswith("sklearn."):
        index = source.split(":")[1]
        ds = _optional("sklearn.datasets", "scikit-learn")
        return np.asarray(ds.load_sample_images().images[int(index)])
    data = _optional("skimage.data", "scikit-image")
    return np.asarray(getattr(data, source.rsplit(".", 1)[1])())[..., :3]


def _downsample(img: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor`` x ``factor`` blocks of a (H, W, 3) uint8 image; float32 in [0, 1]."""
    H, W = (img.shape[0] // factor) * factor, (img.shape[1] // factor) * factor
    x = img[:H, :W].astype(np.float64) / 255.0
    x = x.reshape(H // factor, factor, W // factor, factor, 3).mean(axis=(1, 3))
    return x.astype(np.float32)


def photos() -> list[NDArray[np.float32]]:
    """The ten photos at training scale, in label order.

    Returns
    -------
    list of ndarray of shape (H, W, 3), float32 in [0, 1]
        ``photos()[k]`` is the photo of label ``k`` (see :data:`PHOTOS`),
        block-averaged by its factor. New arrays on every call.

    Raises
    ------
    ImportError
        If scikit-image or scikit-learn is missing (``pip install catlab[data]``).
    """
    return [_downsample(_load_photo(src), f) for _, src, f in PHOTOS]


def _count(value, name, minimum=1):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def colour_patches(
    n_train: int = 800, n_test: int = 300, seed: int = 0
) -> tuple[tuple[Array, NDArray[np.int64]], tuple[Array, NDArray[np.int64]]]:
    """Random 32x32 patches of the ten photos, labelled by photo; train and test from disjoint parts.

    Each photo (see :func:`photos`) is split at 2/3 of its width: training
    patches lie entirely in the left part, test patches entirely in the right
    part, so no pixel appears in both. Patch corners are drawn uniformly with
    a generator seeded by ``seed`` (the test patches with ``seed + 1``).

    Parameters
    ----------
    n_train, n_test : int, default 800 and 300
        Patches per photo, >= 1.
    seed : int, default 0

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        ``x`` float32 of shape (N, 3, 32, 32) in [0, 1] (NCHW, RGB); ``y`` int64
        of shape (N,) with labels 0-9 in :data:`PHOTOS` order, grouped by label
        (``fit`` shuffles).

    Raises
    ------
    TypeError, ValueError
        If a count or the seed is not an integer, or a count is below 1.

    Examples
    --------
    >>> (xtr, ytr), (xte, yte) = colour_patches(n_train=2, n_test=1)
    >>> xtr.shape, xte.shape, ytr.tolist()[:4], xtr.dtype
    ((20, 3, 32, 32), (10, 3, 32, 32), [0, 0, 1, 1], dtype('float32'))
    """
    n_train = _count(n_train, "n_train")
    n_test = _count(n_test, "n_test")
    seed = _count(seed, "seed", minimum=0)
    imgs = photos()
    out = []
    for part, n, rng in (
        ("train", n_train, np.random.default_rng(seed)),
        ("test", n_test, np.random.default_rng(seed + 1)),
    ):
        xs, ys = [], []
        for label, img in enumerate(imgs):
            H, W, _ = img.shape
            cut = int(round(W * TRAIN_FRACTION))
            lo, hi = (0, cut - PATCH) if part == "train" else (cut, W - PATCH)
            rows = rng.integers(0, H - PATCH + 1, size=n)
            cols = rng.integers(lo, hi + 1, size=n)
            chw = img.transpose(2, 0, 1)  # (3, H, W)
            xs.append(np.stack([chw[:, r : r + PATCH, c : c + PATCH] for r, c in zip(rows, cols)]))
            ys.append(np.full(n, label, dtype=np.int64))
        out.append((np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys)))
    return out[0], out[1]


def centre_colours(x: Array) -> Array:
    """Subtract each image's mean colour: what the colour network takes as input.

    Every channel of every image gets its own mean (over height and width)
    subtracted, so a patch's overall colour cast is gone and the network has to
    use colour *differences* and edges inside the patch. A whole photo is
    prepared the same way before its feature maps are computed.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W) or (C, H, W), float32 or float64

    Returns
    -------
    ndarray
        A new array of the same shape and dtype, each (image, channel) with mean 0.

    Raises
    ------
    TypeError
        If ``x`` is not a float array.
    ValueError
        If ``x`` is not 3-D or 4-D.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[[1.0, 3.0]], [[0.0, 0.0]]], dtype=np.float32)  # (C=2, H=1, W=2)
    >>> centre_colours(x)
    array([[[-1.,  1.]],
    <BLANKLINE>
           [[ 0.,  0.]]], dtype=float32)
    """
    if not isinstance(x, np.ndarray) or x.dtype not in (np.float32, np.float64):
        raise TypeError(f"x must be a float32 or float64 NumPy array, got {getattr(x, 'dtype', type(x).__name__)}")
    if x.ndim not in (3, 4):
        raise ValueError(f"x must be (N, C, H, W) or (C, H, W), got shape {x.shape}")
    return x - x.mean(axis=(-2, -1), keepdims=True)


def colour_net_architecture(rng: Seed = 0) -> nn.Sequential:
    """The colour network, freshly initialised.

    ::

        input            3 x 32 x 32
        0 conv1 5x5  ->  16 x 28 x 28   (the seed article's 5x5x3 filters on 32x32x3)
        1 ReLU, 2 max-pool 2 -> 16 x 14 x 14
        3 conv2 5x5  ->  32 x 10 x 10
        4 ReLU, 5 max-pool 2 -> 32 x 5 x 5
        6 conv3 3x3  ->  64 x 3 x 3
        7 ReLU, 8 flatten -> 576
        9 linear     ->  10 class scores

    Parameters
    ----------
    rng : int or numpy.random.Generator, default 0
        Seeds the initial weights (layer ``i`` of the four weighted ones gets
        ``rng + i`` when an int is given).

    Returns
    -------
    catlab.nn.Sequential
        ``state_dict`` keys ``0.weight``, ``0.bias``, ``3.*``, ``6.*``, ``9.*``, as the
        equivalent ``torch.nn.Sequential``.

    Examples
    --------
    >>> net = colour_net_architecture()
    >>> import numpy as np
    >>> net(np.zeros((2, 3, 32, 32), np.float32)).shape
    (2, 10)
    """
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        seeds: list[Seed] = [int(rng) + i for i in range(4)]
    else:
        seeds = [rng] * 4
    return nn.Sequential(
        nn.Conv2d(3, 16, 5, rng=seeds[0]),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5, rng=seeds[1]),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, rng=seeds[2]),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(576, len(PHOTOS), rng=seeds[3]),
    )


def _json_path(path: Path) -> Path:
    return path.with_suffix(".json")


def recorded_accuracy(path: PathLike | None = None) -> dict[str, Any]:
    """The accuracies recorded with a weights file, and how they were reached.

    Parameters
    ----------
    path : str or os.PathLike, optional
        The ``.npz`` weights; default the shipped :data:`WEIGHTS`. The record is
        the file beside it with suffix ``.json``.

    Returns
    -------
    dict
        ``"train_accuracy"``, ``"test_accuracy"`` (floats), ``"recipe"`` (the
        arguments of :func:`retrain`) and ``"seconds"`` (training time).

    Raises
    ------
    FileNotFoundError
        If the record does not exist.
    ValueError
        If it is not valid JSON or lacks the accuracies.
    """
    path = checkpoint._path(WEIGHTS if path is None else path)
    record = _json_path(path)
    if not record.is_file():
        raise FileNotFoundError(
            f"path: no accuracy record {record} beside the weights {path}; "
            "write both with `python -m catlab.pretrained --out PATH`"
        )
    try:
        info = json.loads(record.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"path: the accuracy record {record} is not valid JSON ({e})") from None
    for key in ("train_accuracy", "test_accuracy", "recipe"):
        if not isinstance(info, dict) or key not in info:
            raise ValueError(f"path: the accuracy record {record} lacks {key!r}")
    return info


def colour_net(path: PathLike | None = None) -> nn.Sequential:
    """The colour network with trained weights.

    Parameters
    ----------
    path : str or os.PathLike, optional
        A weights file written by :func:`main`; default the shipped :data:`WEIGHTS`.

    Returns
    -------
    catlab.nn.Sequential
        :func:`colour_net_architecture` with the weights loaded, in evaluation mode.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError, KeyError
        If it is not a readable ``.npz`` or does not fit the architecture
        (see :func:`catlab.checkpoint.load`).

    Examples
    --------
    >>> net = colour_net()
    >>> net[0].weight.shape
    (16, 3, 5, 5)
    """
    net = checkpoint.load(colour_net_architecture(), WEIGHTS if path is None else path)
    return net.eval()


def _flips(x, rng):
    """Mirror a random half of the patches left-right (a new array)."""
    out = x.copy()
    m = rng.random(len(x)) < 0.5
    out[m] = out[m, :, :, ::-1]
    return out


def retrain(
    n_train: int = _RECIPE["n_train"],
    n_test: int = _RECIPE["n_test"],
    epochs: int = _RECIPE["epochs"],
    batch_size: int = _RECIPE["batch_size"],
    lr: float = _RECIPE["lr"],
    seed: int = _RECIPE["seed"],
    init_scale: float = _RECIPE["init_scale"],
    weight_decay: float = _RECIPE["weight_decay"],
    progress: bool = False,
) -> tuple[nn.Sequential, dict[str, Any]]:
    """Train the colour network from scratch with the shipped recipe; reproducible for a seed.

    Adam (with L2 ``weight_decay``) and a learning rate halved every third of
    the epochs; each epoch sees the training patches with a freshly drawn
    random half mirrored left-right (a generator seeded by ``seed``), every
    patch passed through :func:`centre_colours`. The first layer starts from
    the usual random weights times ``init_scale``, so that what its filters
    show after training is what they learned rather than their start.

    Parameters
    ----------
    n_train, n_test : int
        Patches per photo (:func:`colour_patches`).
    epochs, batch_size : int
    lr : float
        Starting learning rate.
    init_scale : float
        Factor on the first layer's initial weights.
    weight_decay : float
        Adam's L2 penalty.
    seed : int
        Seeds the data, the initial weights, the flips and the shuffling.
    progress : bool, default False

    Returns
    -------
    net : catlab.nn.Sequential
        In evaluation mode.
    info : dict
        ``train_accuracy`` and ``test_accuracy`` (of the final weights, on the
        unflipped, centred patches), ``losses`` (one mean training loss per epoch),
        ``seconds`` and ``recipe``.
    """
    epochs = _count(epochs, "epochs")
    recipe = dict(
        n_train=n_train,
        n_test=n_test,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        init_scale=init_scale,
        weight_decay=weight_decay,
    )
    (x_train, y_train), (x_test, y_test) = colour_patches(n_train, n_test, seed=seed)
    net = colour_net_architecture(rng=seed)
    net[0].weight.data *= np.float32(init_scale)  # small start: what conv1 shows is what it learned
    opt = optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    rng = np.random.default_rng(seed)
    losses = []
    start = time.perf_counter()
    for epoch in range(epochs):
        opt.lr = lr * 0.5 ** (3 * epoch // epochs)
        h = train.fit(
            net,
            centre_colours(_flips(x_train, rng)),
            y_train,
            epochs=1,
            batch_size=batch_size,
            optimizer=opt,
            seed=seed + epoch,
            progress=progress,
        )
        losses.append(h["loss"][0])
    seconds = time.perf_counter() - start
    net.eval()
    info = dict(
        train_accuracy=train.evaluate(net, centre_colours(x_train), y_train)["accuracy"],
        test_accuracy=train.evaluate(net, centre_colours(x_test), y_test)["accuracy"],
        losses=losses,
        seconds=seconds,
        recipe=recipe,
    )
    return net, info


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m catlab.pretrained --out PATH``: retrain and write the weights and their record."""
    parser = argparse.ArgumentParser(prog="python -m catlab.pretrained", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", required=True, help="weights file to write (.npz); the record goes beside it with suffix .json"
    )
    parser.add_argument("--epochs", type=int, default=_RECIPE["epochs"])
    parser.add_argument("--n-train", type=int, default=_RECIPE["n_train"])
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    out = Path(args.out).expanduser()
    if not out.parent.is_dir():
        parser.error(f"--out: directory {out.parent} does not exist")
    net, info = retrain(n_train=args.n_train, epochs=args.epochs, progress=args.progress)
    checkpoint.save(net, out)
    with atomic_write(_json_path(out)) as f:
        f.write((json.dumps(info, indent=1) + "\n").encode("utf-8"))
    print(
        f"wrote {out} ({os.path.getsize(out):,} bytes) and {_json_path(out)}: "
        f"train accuracy {info['train_accuracy']:.4f}, test accuracy {info['test_accuracy']:.4f}, "
        f"{info['seconds']:.0f} s"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
