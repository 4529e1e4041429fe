"""Training loop: :func:`fit`, :func:`evaluate` and :func:`predict` for classifiers on arrays.

The model is any :class:`catlab.nn.Module` mapping a batch ``(N, ...)`` to logits
``(N, num_classes)``; the loss is :func:`catlab.functional.softmax_cross_entropy`.
Every argument is checked before any work starts. :func:`fit` puts the model in
training mode, :func:`evaluate` and :func:`predict` in evaluation mode; each
restores the mode the model had when it returns.
"""

from __future__ import annotations

import time

import numpy as np

from . import _validate as V
from ._optional import require
from ._typing import Array, IntArray
from .functional import softmax_cross_entropy
from .nn import Module
from .optim import Optimizer

__all__ = ["fit", "evaluate", "predict"]


# ----------------------------------------------------------------------------
# Checks
# ----------------------------------------------------------------------------


def _check_model(model):
    if not isinstance(model, Module):
        raise TypeError(f"model must be a catlab.nn.Module, got {type(model).__name__}")


def _check_images(x, name, model):
    """Float array with a batch axis, non-empty, finite, in the model's dtype."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array of images (N, ...), got {type(x).__name__}")
    if x.ndim < 2:
        raise ValueError(
            f"{name} must have a batch axis and at least one more, (N, ...), got shape {V.shape_str(x.shape)}"
        )
    if len(x) == 0:
        raise ValueError(f"{name} is empty (shape {V.shape_str(x.shape)}): there is nothing to train or evaluate on")
    x = V.float_array(x, name)
    params = model.parameters()
    if params and x.dtype != params[0].data.dtype:
        want = params[0].data.dtype
        raise TypeError(
            f"{name} has dtype {x.dtype} but the model's parameters are {want}; convert with {name}.astype(np.{want})"
        )
    V.check_finite(x, name)
    return x


def _num_classes(model, x, name):
    """Run one sample through the model in evaluation mode to learn the number of classes."""
    was = model.training
    try:
        out = model.eval()(x[:1])
    finally:
        model.train(was)
    if np.ndim(out) != 2:
        raise ValueError(f"model must map {name} to logits of shape (N, num_classes), got output shape {np.shape(out)}")
    return np.shape(out)[1]


def _check_labels(y, name, n, xname, num_classes):
    if not isinstance(y, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array of integer labels (N,), got {type(y).__name__}")
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(
            f"{name} must hold integer class labels, got dtype {y.dtype}; convert with {name}.astype(np.int64)"
        )
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D (N,), got shape {V.shape_str(y.shape)}")
    if len(y) != n:
        raise ValueError(f"{xname} has {n} samples but {name} has {len(y)} labels; they must match")
    bad = (y < 0) | (y >= num_classes)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name}[{i}] = {int(y[i])} is outside the class range [0, {num_classes}) "
            f"of the model's {num_classes} outputs"
        )
    return y


def _check_batch_size(batch_size):
    return V.positive_int(batch_size, "batch_size")


def _batches(n, batch_size, order=None):
    for start in range(0, n, batch_size):
        yield slice(start, start + batch_size) if order is None else order[start : start + batch_size]


# ----------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------


def _predict(model, x, batch_size):
    was = model.training
    model.eval()
    try:
        return np.concatenate([model(x[s]) for s in _batches(len(x), batch_size)])
    finally:
        model.train(was)


def predict(model: Module, x: Array, batch_size: int = 256) -> Array:
    """Logits for every sample, computed in batches in evaluation mode.

    Parameters
    ----------
    model : catlab.nn.Module
    x : ndarray of shape (N, ...)
        Float input in the model's dtype, e.g. images (N, C, H, W).
    batch_size : int, default 256

    Returns
    -------
    logits : ndarray of shape (N, num_classes)
        ``logits.argmax(axis=1)`` gives the predicted classes.

    Raises
    ------
    TypeError, ValueError
        Naming the argument: a model that is not a Module, ``x`` not a float
        array of the model's dtype, empty, or holding NaN; ``batch_size`` < 1.

    Examples
    --------
    >>> import numpy as np
    >>> from catlab import nn
    >>> predict(nn.Linear(3, 2, rng=0), np.zeros((5, 3), dtype=np.float32)).shape
    (5, 2)
    """
    _check_model(model)
    x = _check_images(x, "x", model)
    batch_size = _check_batch_size(batch_size)
    return _predict(model, x, batch_size)


def _evaluate(model, x, y, batch_size):
    logits = _predict(model, x, batch_size)
    loss, _ = softmax_cross_entropy(logits, y)
    return {"loss": loss, "accuracy": float(np.mean(logits.argmax(axis=1) == y))}


def evaluate(model: Module, x: Array, y: IntArray, batch_size: int = 256) -> dict[str, float]:
    """Mean cross-entropy loss and accuracy over a data set, in evaluation mode.

    Parameters
    ----------
    model : catlab.nn.Module
        Maps ``x`` to logits (N, num_classes).
    x : ndarray of shape (N, ...)
    y : ndarray of int, shape (N,)
        Labels in [0, num_classes).
    batch_size : int, default 256

    Returns
    -------
    dict
        ``{"loss": float, "accuracy": float}``, accuracy in [0, 1].

    Raises
    ------
    TypeError, ValueError
        As :func:`predict`, and for labels that are not integers, not as many as
        the samples, or outside the class range.

    Examples
    --------
    Scores equal to the input, two of three samples right:

    >>> import numpy as np
    >>> from catlab import nn
    >>> m = nn.Linear(2, 2, bias=False, dtype=np.float64); m.weight.data[:] = np.eye(2)
    >>> r = evaluate(m, np.array([[1., 0.], [0., 1.], [1., 0.]]), np.array([0, 1, 1]))
    >>> round(r["accuracy"], 4), round(r["loss"], 4)
    (0.6667, 0.6466)
    """
    _check_model(model)
    x = _check_images(x, "x", model)
    batch_size = _check_batch_size(batch_size)
    y = _check_labels(y, "y", len(x), "x", _num_classes(model, x, "x"))
    return _evaluate(model, x, y, batch_size)


# ----------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------


def _progress_bar(enabled, total, epochs):
    if not enabled:
        return None
    tqdm = require("tqdm.auto", "tqdm", "train", "progress=True (or pass progress=False)").tqdm
    return tqdm(total=total, unit="img", desc=f"epoch 1/{epochs}", dynamic_ncols=True)


def fit(
    model: Module,
    x: Array,
    y: IntArray,
    epochs: int,
    batch_size: int,
    optimizer: Optimizer,
    seed: int = 0,
    validation_data: tuple[Array, IntArray] | None = None,
    progress: bool = True,
) -> dict[str, list[float]]:
    """Train a classifier with mini-batches and softmax cross-entropy; return the history.

    Each epoch shuffles the samples with a generator seeded once by ``seed``,
    then for each batch runs forward, :func:`~catlab.functional.softmax_cross_entropy`,
    ``optimizer.zero_grad()``, ``model.backward`` and ``optimizer.step()``.
    The same seed, data and starting weights give the same result.

    Parameters
    ----------
    model : catlab.nn.Module
        Maps a batch ``x[i:j]`` to logits (batch, num_classes).
    x : ndarray of shape (N, ...)
        Training inputs, float in the model's dtype, e.g. images (N, C, H, W).
    y : ndarray of int, shape (N,)
        Labels in [0, num_classes).
    epochs : int
        Passes over the data, >= 1.
    batch_size : int
        Samples per step, >= 1 (the last batch of an epoch may be smaller).
    optimizer : catlab.optim.Optimizer
        Built on this model's parameters.
    seed : int, default 0
        Seeds the shuffling.
    validation_data : (x_val, y_val), optional
        Evaluated after every epoch (in evaluation mode).
    progress : bool, default True
        Show a progress bar (``tqdm.auto``: a widget in Jupyter, text on a terminal).

    Returns
    -------
    history : dict of lists, one entry per epoch
        ``"loss"`` and ``"accuracy"`` (the running means over the epoch's batches),
        ``"val_loss"`` and ``"val_accuracy"`` with ``validation_data``, and
        ``"seconds"`` (the epoch's training time).

    Raises
    ------
    TypeError, ValueError
        Before any work, naming the argument: ``x`` and ``y`` of different
        lengths, labels outside the class range or not integers, an empty data
        set, NaN or infinity in ``x``, a dtype other than the model's,
        ``epochs`` or ``batch_size`` below 1, an optimizer that does not hold
        this model's parameters, malformed ``validation_data``.

    Examples
    --------
    >>> import numpy as np
    >>> from catlab import nn, optim
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(64, 2)).astype(np.float32); y = (x[:, 0] > 0).astype(np.int64)
    >>> model = nn.Linear(2, 2, rng=0)
    >>> h = fit(model, x, y, epochs=20, batch_size=16, optimizer=optim.SGD(model.parameters(), lr=0.5),
    ...         progress=False)
    >>> h["accuracy"][-1] > 0.9, h["loss"][-1] < h["loss"][0]
    (True, True)
    """
    # -- every check first ---------------------------------------------------
    _check_model(model)
    x = _check_images(x, "x", model)
    epochs = V.positive_int(epochs, "epochs")
    batch_size = _check_batch_size(batch_size)
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a catlab.optim optimizer (SGD, Adam), got {type(optimizer).__name__}")
    own = {id(p) for p in model.parameters()}
    if not any(id(p) in own for p in optimizer.params):
        raise ValueError(
            "optimizer holds none of this model's parameters; build it with optimizer(model.parameters(), ...)"
        )
    V.int_in_range(seed, "seed", None, None)
    V.boolean(progress, "progress")
    num_classes = _num_classes(model, x, "x")
    y = _check_labels(y, "y", len(x), "x", num_classes)
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise TypeError("validation_data must be a pair (x_val, y_val)")
        xv = _check_images(validation_data[0], "validation_data[0]", model)
        if xv.shape[1:] != x.shape[1:]:
            raise ValueError(
                f"validation_data[0] has samples of shape {V.shape_str(xv.shape[1:])} but x has "
                f"{V.shape_str(x.shape[1:])}"
            )
        yv = _check_labels(validation_data[1], "validation_data[1]", len(xv), "validation_data[0]", num_classes)

    # -- the loop --------------------------------------------------------------
    n = len(x)
    rng = np.random.default_rng(seed)
    history: dict[str, list[float]] = {"loss": [], "accuracy": []}
    if validation_data is not None:
        history.update(val_loss=[], val_accuracy=[])
    history["seconds"] = []
    was_training = model.training
    bar = _progress_bar(bool(progress), epochs * n, epochs)
    try:
        for epoch in range(epochs):
            if bar is not None:
                bar.set_description(f"epoch {epoch + 1}/{epochs}")
            model.train()
            start = time.perf_counter()
            order = rng.permutation(n)
            loss_sum, correct = 0.0, 0
            for idx in _batches(n, batch_size, order):
                xb, yb = x[idx], y[idx]
                logits = model(xb)  # (B, num_classes)
                loss, dlogits = softmax_cross_entropy(logits, yb)
                optimizer.zero_grad()
                model.backward(dlogits)
                optimizer.step()
                loss_sum += loss * len(idx)
                correct += int(np.count_nonzero(logits.argmax(axis=1) == yb))
                if bar is not None:
                    bar.update(len(idx))
                    bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            history["seconds"].append(time.perf_counter() - start)
            history["loss"].append(loss_sum / n)
            history["accuracy"].append(correct / n)
            post = {"loss": f"{loss_sum / n:.4f}", "acc": f"{correct / n:.4f}"}
            if validation_data is not None:
                r = _evaluate(model, xv, yv, max(batch_size, 256))
                history["val_loss"].append(r["loss"])
                history["val_accuracy"].append(r["accuracy"])
                post.update(val_loss=f"{r['loss']:.4f}", val_acc=f"{r['accuracy']:.4f}")
            if bar is not None:
                bar.set_postfix(post)
    finally:
        if bar is not None:
            bar.close()
        model.train(was_training)
    return history
