"""Optimizers: hand-computed known answers, bad input, and torch.optim on the same gradients."""

import math

import numpy as np
import pytest

from catlab import nn
from catlab.nn import Parameter
from catlab.optim import SGD, Adam


def run(opt_cls, grads, p0=1.0, **kw):
    """Apply ``opt_cls`` to one scalar parameter with the given gradient sequence; return the trajectory."""
    p = Parameter(np.array([p0]))
    opt = opt_cls([p], **kw)
    out = []
    for g in grads:
        p.grad = np.array([float(g)])
        opt.step()
        out.append(float(p.data[0]))
    return out


def test_sgd_plain_and_weight_decay_known_answers():
    assert run(SGD, [1, 1], lr=0.1) == pytest.approx([0.9, 0.8])
    # g = 0 + 0.5 * 2 = 1 -> p = 2 - 0.1 * 1
    assert run(SGD, [0], p0=2.0, lr=0.1, weight_decay=0.5) == pytest.approx([1.9])


def test_sgd_momentum_nesterov_dampening_known_answers():
    # buf = 1, then 0.9 * 1 + 1 = 1.9
    assert run(SGD, [1, 1], lr=0.1, momentum=0.9) == pytest.approx([0.9, 0.71])
    # nesterov: g + 0.9 * buf = 1.9, then 1 + 0.9 * 1.9 = 2.71
    assert run(SGD, [1, 1], lr=0.1, momentum=0.9, nesterov=True) == pytest.approx([0.81, 0.539])
    # dampening does not apply to the first step: buf = 1, then 0.9 + 0.5 * 1 = 1.4
    assert run(SGD, [1, 1], lr=0.1, momentum=0.9, dampening=0.5) == pytest.approx([0.9, 0.76])


def test_adam_known_answers():
    # betas (0.5, 0.5), eps 0, lr 1: step 1 moves by exactly 1; with g = 0 next,
    # m = 0.25, v = 0.25, bias corrections 0.75: 0.25/0.75 / (0.5/sqrt(0.75)) = 1/sqrt(3)
    traj = run(Adam, [1, 0], p0=0.0, lr=1.0, betas=(0.5, 0.5), eps=0.0)
    assert traj == pytest.approx([-1.0, -1.0 - 1 / math.sqrt(3)])
    # amsgrad keeps v_max = 0.5: 1/3 / (sqrt(0.5)/sqrt(0.75)) = 1/sqrt(6)
    traj = run(Adam, [1, 0], p0=0.0, lr=1.0, betas=(0.5, 0.5), eps=0.0, amsgrad=True)
    assert traj == pytest.approx([-1.0, -1.0 - 1 / math.sqrt(6)])
    # defaults: the first step is lr * g / (|g| + eps), about lr in the gradient's direction
    assert run(Adam, [-4.0], p0=0.0, lr=0.01) == pytest.approx([0.01])


def test_defaults_follow_torch():
    p = [Parameter(np.zeros(2))]
    s, a = SGD(p), Adam(p)
    assert (s.lr, s.momentum, s.dampening, s.weight_decay, s.nesterov) == (1e-3, 0, 0, 0, False)
    assert (a.lr, a.betas, a.eps, a.weight_decay, a.amsgrad) == (1e-3, (0.9, 0.999), 1e-8, 0, False)


def test_zero_grad_and_params_without_grad_are_skipped():
    a, b = Parameter(np.ones(2)), Parameter(np.ones(3))
    opt = SGD([a, b], lr=1.0, momentum=0.9)
    a.grad = np.ones(2)
    opt.step()
    np.testing.assert_array_equal(a.data, [0.0, 0.0])
    np.testing.assert_array_equal(b.data, [1.0, 1.0, 1.0])
    opt.zero_grad()
    assert a.grad is None and b.grad is None


def test_float32_parameters_stay_float32():
    p = Parameter(np.ones(3, dtype=np.float32))
    for opt in (SGD([p], lr=0.1, momentum=0.9, weight_decay=1e-4), Adam([p], weight_decay=1e-4, amsgrad=True)):
        for _ in range(2):
            p.grad = np.full(3, 0.5, dtype=np.float32)
            opt.step()
        assert p.data.dtype == np.float32


def test_model_parameters_are_updated_in_place():
    lin = nn.Linear(3, 2, rng=0)
    w = lin.weight.data
    opt = SGD(lin.parameters(), lr=0.1)
    lin(np.ones((4, 3), dtype=np.float32))
    lin.backward(np.ones((4, 2), dtype=np.float32))
    before = w.copy()
    opt.step()
    assert lin.weight.data is w
    np.testing.assert_allclose(w, before - 0.1 * 4.0)


@pytest.mark.parametrize(
    "kw, word",
    [
        (dict(lr=0), "lr"),
        (dict(lr=-0.1), "lr"),
        (dict(lr=float("nan")), "lr"),
        (dict(momentum=-0.5), "momentum"),
        (dict(dampening=-1), "dampening"),
        (dict(weight_decay=-1e-4), "weight_decay"),
        (dict(nesterov=True), "nesterov"),
        (dict(momentum=0.9, dampening=0.1, nesterov=True), "nesterov"),
    ],
)
def test_sgd_bad_arguments(kw, word):
    with pytest.raises(ValueError, match=word):
        SGD([Parameter(np.zeros(1))], **kw)


@pytest.mark.parametrize(
    "kw, word",
    [
        (dict(lr=0.0), "lr"),
        (dict(betas=(1.0, 0.999)), r"betas\[0\]"),
        (dict(betas=(0.9, -0.1)), r"betas\[1\]"),
        (dict(betas=0.9), "betas"),
        (dict(eps=-1e-8), "eps"),
        (dict(weight_decay=-1), "weight_decay"),
    ],
)
def test_adam_bad_arguments(kw, word):
    with pytest.raises(ValueError, match=word):
        Adam([Parameter(np.zeros(1))], **kw)


def test_bad_params():
    with pytest.raises(TypeError, match="model.parameters"):
        SGD(nn.Linear(2, 2), lr=0.1)
    with pytest.raises(ValueError, match="empty"):
        SGD([], lr=0.1)
    with pytest.raises(TypeError, match=r"params\[1\]"):
        SGD([Parameter(np.zeros(1)), np.zeros(1)], lr=0.1)
    with pytest.raises(TypeError, match="lr"):
        SGD([Parameter(np.zeros(1))], lr="0.1")


# ---------------------------------------------------------------------------- torch

CONFIGS = [
    (SGD, dict(lr=0.1)),
    (SGD, dict(lr=0.05, momentum=0.9)),
    (SGD, dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01)),
    (SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    (Adam, dict()),
    (Adam, dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    (Adam, dict(lr=0.01, amsgrad=True)),
]


@pytest.mark.parametrize("cls, kw", CONFIGS)
def test_matches_torch_optim_on_the_same_gradients(cls, kw, rng):
    torch = pytest.importorskip("torch")
    shapes = [(3, 2, 2), (5,), (4, 3)]
    start = [rng.normal(size=s) for s in shapes]
    mine = [Parameter(a.copy()) for a in start]
    theirs = [torch.tensor(a.copy(), requires_grad=True) for a in start]
    opt = cls(mine, **kw)
    topt = getattr(torch.optim, cls.__name__)(theirs, **kw)
    for step in range(6):
        grads = [rng.normal(size=s) for s in shapes]
        for i, (p, tp, g) in enumerate(zip(mine, theirs, grads)):
            if step == 2 and i == 1:  # a parameter without a gradient this step: both skip it
                p.grad, tp.grad = None, None
                continue
            p.grad = g.copy()
            tp.grad = torch.tensor(g.copy())
        opt.step()
        topt.step()
        for p, tp in zip(mine, theirs):
            np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-12, atol=1e-12)
