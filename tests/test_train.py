"""Training loop: known answers, determinism, modes, progress output and bad input."""

import math

import numpy as np
import pytest

from catlab import nn
from catlab.optim import SGD, Adam
from catlab.train import evaluate, fit, predict


class Spy(nn.Module):
    """Passes its input through and records the mode it ran in."""

    def __init__(self):
        self.modes = []

    def forward(self, x):
        self.modes.append(self.training)
        return x

    def backward(self, dy):
        return dy


def blobs(n=60, seed=0, dtype=np.float32):
    """Three well separated classes in 2-D, as images (N, 1, 1, 2)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    centres = np.array([[2.0, 0.0], [-2.0, 2.0], [-2.0, -2.0]])
    x = centres[y] + 0.3 * rng.normal(size=(n, 2))
    return x.reshape(n, 1, 1, 2).astype(dtype), y


def small_model(seed=0, dtype=np.float32):
    return nn.Sequential(
        nn.Flatten(), nn.Linear(2, 8, rng=seed, dtype=dtype), nn.ReLU(), nn.Linear(8, 3, rng=seed + 1, dtype=dtype)
    )


def identity_model():
    m = nn.Linear(2, 2, bias=False, dtype=np.float64)
    m.weight.data[:] = np.eye(2)
    return m


def test_evaluate_known_answer():
    x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    r = evaluate(identity_model(), x, np.array([0, 1, 1]), batch_size=2)
    # losses: log(1 + e^-1) twice and log(1 + e) once
    assert r["loss"] == pytest.approx((2 * math.log1p(math.exp(-1)) + math.log1p(math.e)) / 3, rel=1e-12)
    assert r["accuracy"] == pytest.approx(2 / 3)


def test_predict_batches_agree_with_one_pass():
    model = small_model()
    x, _ = blobs(23)
    np.testing.assert_allclose(predict(model, x, batch_size=5), model.eval()(x), rtol=1e-6)


def test_one_full_batch_epoch_is_one_gradient_step():
    # batch_size = N: one epoch is one step of lr * mean gradient, worked out by hand for a linear model
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    y = np.array([0, 0])
    model = identity_model()
    fit(model, x, y, epochs=1, batch_size=2, optimizer=SGD(model.parameters(), lr=1.0), progress=False)
    # softmax([1, 0]) = (s, 1-s), s = e/(1+e); dlogits rows: (s-1, 1-s)/2 and (1-s-1, s)/2 = (-s, s)/2 ... wait: row 2
    s = math.e / (1 + math.e)
    d1 = np.array([s - 1, 1 - s]) / 2  # sample 1: logits (1, 0), label 0
    d2 = np.array([(1 - s) - 1, s]) / 2  # sample 2: logits (0, 1), label 0: softmax = (1-s, s)
    grad = np.outer(d1, [1, 0]) + np.outer(d2, [0, 1])
    np.testing.assert_allclose(model.weight.data, np.eye(2) - grad, rtol=1e-12)


def test_fit_learns_and_history_has_one_entry_per_epoch():
    x, y = blobs()
    xv, yv = blobs(30, seed=1)
    model = small_model()
    h = fit(
        model,
        x,
        y,
        epochs=8,
        batch_size=10,
        optimizer=Adam(model.parameters(), lr=0.05),
        seed=0,
        validation_data=(xv, yv),
        progress=False,
    )
    assert set(h) == {"loss", "accuracy", "val_loss", "val_accuracy", "seconds"}
    assert all(len(v) == 8 for v in h.values())
    assert h["loss"][-1] < h["loss"][0] / 2
    assert h["val_accuracy"][-1] == 1.0
    assert h["val_loss"][-1] == pytest.approx(evaluate(model, xv, yv)["loss"])


def test_fit_is_deterministic_for_a_seed():
    x, y = blobs()
    runs = []
    for seed in (5, 5, 6):
        model = small_model()
        h = fit(model, x, y, 3, 7, SGD(model.parameters(), lr=0.1, momentum=0.9), seed=seed, progress=False)
        runs.append((h["loss"], model.state_dict()))
    assert runs[0][0] == runs[1][0]
    for k in runs[0][1]:
        np.testing.assert_array_equal(runs[0][1][k], runs[1][1][k])
    assert runs[0][0] != runs[2][0]


def test_modes_train_in_fit_eval_in_evaluate_and_restored():
    spy = Spy()
    model = nn.Sequential(spy, nn.Flatten(), nn.Linear(2, 3, rng=0))
    x, y = blobs(12)
    model.eval()
    fit(model, x, y, 1, 4, SGD(model.parameters(), lr=0.1), validation_data=(x, y), progress=False)
    # probe (eval), three training batches, validation (eval)
    assert spy.modes == [False, True, True, True, False]
    assert model.training is False  # restored
    model.train()
    spy.modes.clear()
    predict(model, x)
    evaluate(model, x, y)
    assert True not in spy.modes and model.training is True


def test_progress_bar_text_and_off(capsys):
    x, y = blobs(12)
    model = small_model()
    fit(model, x, y, 2, 4, SGD(model.parameters(), lr=0.1), progress=True)
    err = capsys.readouterr().err
    assert "epoch 2/2" in err and "24/24" in err and "loss=" in err
    fit(model, x, y, 2, 4, SGD(model.parameters(), lr=0.1), progress=False)
    assert capsys.readouterr().err == ""


def test_float64_model_trains_on_float64_data():
    x, y = blobs(dtype=np.float64)
    model = small_model(dtype=np.float64)
    h = fit(model, x, y, 2, 16, SGD(model.parameters(), lr=0.1), progress=False)
    assert model[1].weight.data.dtype == np.float64 and len(h["loss"]) == 2


def bad_cases():
    x, y = blobs(12)
    nan = x.copy()
    nan[3, 0, 0, 1] = np.nan
    return [
        (dict(y=y[:-1]), ValueError, "x has 12 samples but y has 11"),
        (dict(y=np.where(y == 2, 3, y)), ValueError, r"y\[2\] = 3 is outside the class range \[0, 3\)"),
        (dict(y=y - 1), ValueError, r"y\[0\] = -1"),
        (dict(y=y.astype(float)), TypeError, "y must hold integer"),
        (dict(x=x[:0], y=y[:0]), ValueError, "x is empty"),
        (dict(x=nan), ValueError, "x must be finite, got 1 NaN"),
        (dict(x=x.astype(np.float64)), TypeError, "x has dtype float64 but the model's parameters are float32"),
        (dict(x=x.astype(np.uint8)), TypeError, "x must have dtype float32"),
        (dict(batch_size=0), ValueError, "batch_size must be a positive integer"),
        (dict(batch_size=2.5), TypeError, "batch_size"),
        (dict(epochs=0), ValueError, "epochs"),
        (dict(optimizer="sgd"), TypeError, "optimizer"),
        (dict(seed=None), TypeError, "seed"),
        (
            dict(validation_data=(x, y[:3])),
            ValueError,
            r"validation_data\[0\] has 12 samples but validation_data\[1\] has 3",
        ),
        (dict(validation_data=(nan, y)), ValueError, r"validation_data\[0\] must be finite"),
        (dict(validation_data=x), TypeError, "validation_data"),
    ]


@pytest.mark.parametrize("change, exc, match", bad_cases())
def test_fit_rejects_bad_input_before_any_work(change, exc, match):
    x, y = blobs(12)
    model = small_model()
    before = model.state_dict()
    opt = SGD(model.parameters(), lr=0.1)
    kw = dict(x=x, y=y, epochs=1, batch_size=4, optimizer=opt, progress=False)
    kw.update(change)
    with pytest.raises(exc, match=match):
        fit(model, **kw)
    assert opt.steps == 0
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_optimizer_for_another_model_is_rejected():
    x, y = blobs(12)
    with pytest.raises(ValueError, match="optimizer holds none of this model's parameters"):
        fit(small_model(), x, y, 1, 4, SGD(small_model().parameters(), lr=0.1), progress=False)


def test_evaluate_and_predict_bad_input():
    x, y = blobs(12)
    model = small_model()
    with pytest.raises(ValueError, match="x has 12 samples but y has 5"):
        evaluate(model, x, y[:5])
    with pytest.raises(ValueError, match="batch_size"):
        predict(model, x, batch_size=-1)
    with pytest.raises(TypeError, match="model"):
        predict(lambda a: a, x)
    with pytest.raises(TypeError, match="x must be a NumPy array"):
        predict(model, x.tolist())


def test_progress_uses_tqdm_auto(monkeypatch):
    """tqdm.auto picks a Jupyter widget or terminal text; fit must go through it."""
    auto = pytest.importorskip("tqdm.auto")
    made = []

    class FakeBar:
        def __init__(self, total, **kw):
            self.total, self.n, self.closed, self.descs = total, 0, False, []
            made.append(self)

        def update(self, k):
            self.n += k

        def set_description(self, d):
            self.descs.append(d)

        def set_postfix(self, *a, **kw):
            pass

        def close(self):
            self.closed = True

    monkeypatch.setattr(auto, "tqdm", FakeBar)
    x, y = blobs(10)
    model = small_model()
    fit(model, x, y, 3, 4, SGD(model.parameters(), lr=0.1), progress=True)
    (bar,) = made
    assert bar.total == 30 and bar.n == 30 and bar.closed
    assert bar.descs == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
