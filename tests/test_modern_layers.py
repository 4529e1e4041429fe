"""BatchNorm2d, Dropout, AdaptiveAvgPool2d and Residual: known answers, reference loops,
float64 gradient checks, torch, state_dict/checkpoint/interop, errors, inputs untouched."""

import numpy as np
import pytest
import reference as ref

from catlab import checkpoint, interop, nn
from catlab import functional as F
from catlab.gradcheck import gradcheck, gradcheck_layer
from catlab.optim import SGD

# ----------------------------------------------------------------------------
# batch norm
# ----------------------------------------------------------------------------


def test_batch_norm_known_answer_by_hand():
    # one channel holding 1 and 3: mean 2, biased variance 1, unbiased variance 2
    x = np.array([1.0, 3.0]).reshape(2, 1, 1, 1)
    y, rm, rv = F.batch_norm(x, np.zeros(1), np.ones(1), training=True, momentum=0.1, eps=0.0)
    np.testing.assert_allclose(y.ravel(), [-1.0, 1.0])
    np.testing.assert_allclose(rm, [0.1 * 2])  # 0.9 * 0 + 0.1 * 2
    np.testing.assert_allclose(rv, [0.9 * 1 + 0.1 * 2])  # the unbiased variance 2, not the biased 1
    # weight 3, bias 10 scale and shift; evaluation uses the running statistics given
    y = F.batch_norm(x, np.array([1.0]), np.array([4.0]), np.array([3.0]), np.array([10.0]), eps=0.0)
    np.testing.assert_allclose(y.ravel(), [10.0, 13.0])  # 3 * (x - 1) / 2 + 10


def test_batch_norm_matches_reference_loops_train_and_eval(rng):
    x = rng.normal(2.0, 3.0, (3, 4, 5, 6))
    w, b = rng.normal(size=4), rng.normal(size=4)
    rm0, rv0 = rng.normal(size=4), rng.uniform(0.5, 2, 4)
    mean, biased, unbiased = ref.batch_stats(x)
    y, rm, rv = F.batch_norm(x, rm0, rv0, w, b, training=True, momentum=0.3, eps=1e-3)
    np.testing.assert_allclose(y, ref.batch_norm(x, mean, biased, w, b, 1e-3), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(rm, 0.7 * rm0 + 0.3 * mean, rtol=1e-12)
    np.testing.assert_allclose(rv, 0.7 * rv0 + 0.3 * unbiased, rtol=1e-12)
    ye = F.batch_norm(x, rm0, rv0, w, b, training=False, eps=1e-3)
    np.testing.assert_allclose(ye, ref.batch_norm(x, rm0, rv0, w, b, 1e-3), rtol=1e-10, atol=1e-12)


def test_batch_norm_float32_is_accurate_with_a_large_offset(rng):
    # one-pass variance around a shift: no catastrophic cancellation for data far from 0
    x = (1000.0 + rng.normal(size=(8, 3, 7, 7))).astype(np.float32)
    y, _, _ = F.batch_norm(x, None, None, training=True)
    mean, var, _ = ref.batch_stats(x.astype(np.float64))
    want = ref.batch_norm(x.astype(np.float64), mean, var, np.ones(3), np.zeros(3), 1e-5)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, want, atol=2e-3)


def test_batch_norm_backward_matches_the_jacobian_loops(rng):
    x = rng.normal(size=(2, 3, 2, 3))
    w = rng.normal(size=3)
    dy = rng.normal(size=x.shape)
    dx, dw, db = F.batch_norm_backward(dy, x, None, None, w, training=True, eps=1e-4)
    rdx, rdw, rdb = ref.batch_norm_train_backward(dy, x, w, 1e-4)
    np.testing.assert_allclose(dx, rdx, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dw, rdw, rtol=1e-10)
    np.testing.assert_allclose(db, rdb, rtol=1e-10)
    # evaluation: a per-channel affine map, dx = w / sqrt(rv + eps) * dy
    rm, rv = rng.normal(size=3), rng.uniform(0.5, 2, 3)
    dx, dw, db = F.batch_norm_backward(dy, x, rm, rv, w, training=False, eps=1e-4)
    s = (w / np.sqrt(rv + 1e-4))[None, :, None, None]
    np.testing.assert_allclose(dx, dy * s, rtol=1e-12)
    xhat = (x - rm[None, :, None, None]) / np.sqrt(rv + 1e-4)[None, :, None, None]
    np.testing.assert_allclose(dw, (dy * xhat).sum(axis=(0, 2, 3)), rtol=1e-10)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_gradcheck_float64(rng, training):
    x = rng.normal(size=(3, 2, 3, 4))
    w, b = rng.normal(size=2), rng.normal(size=2)
    rm, rv = rng.normal(size=2), rng.uniform(0.5, 2, 2)

    def fwd(x, w, b):
        out = F.batch_norm(x, rm, rv, w, b, training=training, eps=1e-3)
        return out[0] if training else out

    def bwd(dy, x, w, b):
        return F.batch_norm_backward(dy, x, rm, rv, w, training=training, eps=1e-3)

    err = gradcheck(fwd, bwd, [x, w, b], names=["x", "weight", "bias"])
    assert max(err.values()) < 1e-7, err


def test_batch_norm_2d_and_3d_inputs(rng):
    x2 = rng.normal(size=(5, 3))
    y, _, _ = F.batch_norm(x2, None, None, training=True, eps=0.0)
    np.testing.assert_allclose(y, (x2 - x2.mean(0)) / x2.std(0), rtol=1e-10)
    x3 = rng.normal(size=(2, 3, 4))
    y3, _, _ = F.batch_norm(x3, None, None, training=True, eps=0.0)
    m, s = x3.mean(axis=(0, 2), keepdims=True), x3.std(axis=(0, 2), keepdims=True)
    np.testing.assert_allclose(y3, (x3 - m) / s, rtol=1e-10)


def test_batch_norm_never_modifies_inputs(rng):
    arrays = [
        rng.normal(size=(2, 3, 4, 4)),
        rng.normal(size=3),
        rng.uniform(1, 2, 3),
        rng.normal(size=3),
        rng.normal(size=3),
    ]
    copies = [a.copy() for a in arrays]
    x, rm, rv, w, b = arrays
    F.batch_norm(x, rm, rv, w, b, training=True)
    F.batch_norm(x, rm, rv, w, b, training=False)
    dy = rng.normal(size=x.shape)
    dyc = dy.copy()
    F.batch_norm_backward(dy, x, rm, rv, w, training=True)
    F.batch_norm_backward(dy, x, rm, rv, w, training=False)
    for a, c in zip(arrays + [dy], copies + [dyc]):
        np.testing.assert_array_equal(a, c)


def test_batch_norm_errors_name_the_argument():
    x = np.zeros((2, 3, 4, 4))
    with pytest.raises(ValueError, match="running_mean: expected shape \\(3,\\)"):
        F.batch_norm(x, np.zeros(4), np.ones(4))
    with pytest.raises(ValueError, match="needed when training=False"):
        F.batch_norm(x)
    with pytest.raises(ValueError, match="together"):
        F.batch_norm(x, np.zeros(3), None, training=True)
    with pytest.raises(ValueError, match="momentum"):
        F.batch_norm(x, training=True, momentum=1.5)
    with pytest.raises(ValueError, match="eps"):
        F.batch_norm(x, training=True, eps=-1.0)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        F.batch_norm(np.zeros((1, 3, 1, 1)), training=True)
    with pytest.raises(TypeError, match="weight has dtype float32"):
        F.batch_norm(x, weight=np.ones(3, dtype=np.float32), training=True)
    with pytest.raises(TypeError, match="training must be True or False"):
        F.batch_norm(x, training="yes")
    with pytest.raises(ValueError, match="dy: expected x's shape"):
        F.batch_norm_backward(np.zeros((2, 3, 4, 5)), x, training=True)
    with pytest.raises(ValueError, match="x: expected shape \\(N, 3, H, W\\)"):
        nn.BatchNorm2d(3)(np.zeros((2, 4, 5, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="momentum"):
        nn.BatchNorm2d(3, momentum=-0.1)
    with pytest.raises(ValueError, match="num_features"):
        nn.BatchNorm2d(0)


def test_batchnorm2d_layer_keys_buffers_and_optimizer():
    bn = nn.BatchNorm2d(3)
    sd = bn.state_dict()
    assert list(sd) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert sd["num_batches_tracked"].dtype == np.int64 and sd["num_batches_tracked"].shape == ()
    assert [n for n, _ in bn.named_parameters()] == ["weight", "bias"]  # buffers are not parameters
    x = np.random.default_rng(0).normal(3.0, 2.0, (4, 3, 5, 5)).astype(np.float32)
    y = bn(x)
    bn.backward(np.ones_like(y))
    rm = bn.running_mean.data.copy()
    SGD(bn.parameters(), lr=0.1).step()
    np.testing.assert_array_equal(bn.running_mean.data, rm)  # the optimizer leaves buffers alone
    assert int(bn.num_batches_tracked.data) == 1
    assert list(nn.BatchNorm2d(3, affine=False).state_dict()) == ["running_mean", "running_var", "num_batches_tracked"]
    assert list(nn.BatchNorm2d(3, track_running_stats=False).state_dict()) == ["weight", "bias"]


def test_batchnorm2d_momentum_none_is_the_cumulative_average(rng):
    bn = nn.BatchNorm2d(2, momentum=None, dtype=np.float64)
    batches = [rng.normal(k, 1 + k, (3, 2, 4, 4)) for k in range(3)]
    for b in batches:
        bn(b)
    means = np.mean([ref.batch_stats(b)[0] for b in batches], axis=0)
    varis = np.mean([ref.batch_stats(b)[2] for b in batches], axis=0)
    np.testing.assert_allclose(bn.running_mean.data, means, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var.data, varis, rtol=1e-12)
    assert int(bn.num_batches_tracked.data) == 3


def test_batchnorm2d_eval_uses_running_stats_and_no_tracking_uses_batch(rng):
    x = rng.normal(size=(4, 2, 3, 3))
    bn = nn.BatchNorm2d(2, dtype=np.float64)
    bn.running_mean.data = np.array([1.0, -1.0])
    bn.running_var.data = np.array([4.0, 0.25])
    y = bn.eval()(x)
    want = (x - bn.running_mean.data[None, :, None, None]) / np.sqrt(bn.running_var.data + 1e-5)[None, :, None, None]
    np.testing.assert_allclose(y, want, rtol=1e-12)
    free = nn.BatchNorm2d(2, track_running_stats=False, dtype=np.float64).eval()
    yb = free(x)
    np.testing.assert_allclose(yb.mean(axis=(0, 2, 3)), 0, atol=1e-12)


def test_batchnorm2d_gradcheck_layer(rng):
    bn = nn.BatchNorm2d(3)
    bn.weight.data = rng.normal(size=3).astype(np.float32)
    bn.bias.data = rng.normal(size=3).astype(np.float32)
    err = gradcheck_layer(bn, rng.normal(size=(2, 3, 3, 4)))
    assert sorted(err) == ["bias", "input", "weight"] and max(err.values()) < 1e-7, err


@pytest.mark.parametrize("momentum,affine", [(0.1, True), (None, True), (0.5, False)])
def test_batchnorm2d_matches_torch_over_steps(rng, momentum, affine):
    torch = pytest.importorskip("torch")
    bn = nn.BatchNorm2d(3, momentum=momentum, affine=affine, dtype=np.float64)
    if affine:
        bn.weight.data = rng.normal(size=3)
        bn.bias.data = rng.normal(size=3)
    tbn = interop.to_torch(bn)
    assert isinstance(tbn, torch.nn.BatchNorm2d) and tbn.training
    for step in range(3):
        x = rng.normal(step, 2.0, (4, 3, 5, 5))
        dy = rng.normal(size=x.shape)
        y = bn(x)
        dx = bn.backward(dy)
        xt = torch.from_numpy(x).requires_grad_()
        yt = tbn(xt)
        yt.backward(torch.from_numpy(dy))
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-8, atol=1e-10)
        if affine:
            np.testing.assert_allclose(bn.weight.grad, tbn.weight.grad.numpy(), rtol=1e-9)
            np.testing.assert_allclose(bn.bias.grad, tbn.bias.grad.numpy(), rtol=1e-9)
            tbn.weight.grad = tbn.bias.grad = None
    for k, v in tbn.state_dict().items():
        np.testing.assert_allclose(bn.state_dict()[k], v.numpy(), rtol=1e-12, err_msg=k)
    x = rng.normal(size=(2, 3, 5, 5))
    with torch.no_grad():
        np.testing.assert_allclose(bn.eval()(x), tbn.eval()(torch.from_numpy(x)).numpy(), rtol=1e-10, atol=1e-12)


def test_batchnorm2d_functional_float32_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.normal(1.0, 2.0, (8, 4, 6, 6)).astype(np.float32)
    w, b = rng.normal(size=4).astype(np.float32), rng.normal(size=4).astype(np.float32)
    rm, rv = np.zeros(4, np.float32), np.ones(4, np.float32)
    y, nrm, nrv = F.batch_norm(x, rm, rv, w, b, training=True, momentum=0.2)
    trm, trv = torch.zeros(4), torch.ones(4)
    yt = torch.nn.functional.batch_norm(
        torch.from_numpy(x), trm, trv, torch.from_numpy(w), torch.from_numpy(b), training=True, momentum=0.2
    )
    np.testing.assert_allclose(y, yt.numpy(), atol=2e-5)
    np.testing.assert_allclose(nrm, trm.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(nrv, trv.numpy(), rtol=1e-5)


# ----------------------------------------------------------------------------
# dropout
# ----------------------------------------------------------------------------


def test_dropout_known_answers():
    x = np.arange(1.0, 7.0)
    np.testing.assert_array_equal(F.dropout(x, 0.0, rng=0), x)
    np.testing.assert_array_equal(F.dropout(x, 1.0, rng=0), np.zeros(6))
    np.testing.assert_array_equal(F.dropout(x, 0.9, training=False), x)
    y, mask = F.dropout(x, 0.75, rng=3, return_mask=True)
    np.testing.assert_array_equal(y, np.where(mask, 4 * x, 0.0))  # survivors scaled by 1 / (1 - 0.75)
    np.testing.assert_array_equal(F.dropout_backward(np.ones(6), mask, 0.75), np.where(mask, 4.0, 0.0))


def test_dropout_is_seeded_unbiased_and_keeps_1_minus_p():
    x = np.ones((200, 500), dtype=np.float32)
    a, ma = F.dropout(x, 0.3, rng=1, return_mask=True)
    b = F.dropout(x, 0.3, rng=1)
    c = F.dropout(x, 0.3, rng=2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    n = x.size
    keep = ma.mean()
    assert abs(keep - 0.7) < 5 * np.sqrt(0.7 * 0.3 / n)  # binomial, 5 standard deviations
    assert abs(a.mean() - 1.0) < 5 * np.sqrt(0.3 / 0.7 / n)  # expectation preserved
    assert a.dtype == np.float32


def test_dropout_gradcheck_with_a_fixed_seed(rng):
    x = rng.normal(size=(3, 4, 5))
    mask = F.dropout(x, 0.4, rng=7, return_mask=True)[1]
    err = gradcheck(lambda x: F.dropout(x, 0.4, rng=7), lambda dy, x: F.dropout_backward(dy, mask, 0.4), [x])
    assert err["input0"] < 1e-9


def test_dropout_layer_modes_and_inputs_untouched():
    d = nn.Dropout(0.5, rng=0)
    x = np.ones((4, 6))
    y = d(x)
    np.testing.assert_array_equal(x, np.ones((4, 6)))
    dx = d.backward(np.ones_like(y))
    np.testing.assert_array_equal(dx, y)  # same mask, same scale
    y2 = d(x)
    assert not np.array_equal(y, y2)  # a new mask each forward pass
    d.eval()
    np.testing.assert_array_equal(d(x), x)
    with pytest.raises(RuntimeError, match="training mode"):
        d.backward(np.ones_like(x))
    # the same seed replays the same masks
    e1, e2 = nn.Dropout(0.5, rng=11), nn.Dropout(0.5, rng=11)
    np.testing.assert_array_equal(e1(x), e2(x))
    np.testing.assert_array_equal(e1(x), e2(x))


def test_dropout_errors():
    with pytest.raises(ValueError, match="p must be"):
        F.dropout(np.ones(3), 1.5)
    with pytest.raises(ValueError, match="p must be"):
        nn.Dropout(-0.1)
    with pytest.raises(TypeError, match="rng"):
        F.dropout(np.ones(3), 0.5, rng="seed")
    with pytest.raises(TypeError, match="mask must be a boolean"):
        F.dropout_backward(np.ones(3), np.ones(3), 0.5)
    with pytest.raises(ValueError, match="mask: expected"):
        F.dropout_backward(np.ones(3), np.ones(2, dtype=bool), 0.5)
    with pytest.raises(TypeError, match="x must have dtype"):
        F.dropout(np.ones(3, dtype=int), 0.5)


def test_dropout_matches_torch_scaling_and_eval():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).normal(size=(64, 100)).astype(np.float32)
    m = interop.to_torch(nn.Sequential(nn.Dropout(0.25, rng=0)))
    yt = m(torch.from_numpy(x)).detach().numpy()
    kept = yt != 0
    np.testing.assert_allclose(yt[kept], x[kept] / 0.75, rtol=1e-6)  # same inverted scaling as catlab
    y = F.dropout(x, 0.25, rng=0)
    np.testing.assert_allclose(y[y != 0], x[y != 0] / 0.75, rtol=1e-6)
    np.testing.assert_array_equal(m.eval()(torch.from_numpy(x)).detach().numpy(), x)


# ----------------------------------------------------------------------------
# adaptive average pooling
# ----------------------------------------------------------------------------


def test_adaptive_avg_pool_known_answers():
    x = np.arange(5.0).reshape(1, 1, 1, 5)
    # width 5 -> 2: windows [0, 3) and [2, 5), overlapping at column 2
    np.testing.assert_allclose(F.adaptive_avg_pool2d(x, (1, 2)).ravel(), [1.0, 3.0])
    dx = F.adaptive_avg_pool2d_backward(np.ones((1, 1, 1, 2)), x, (1, 2))
    np.testing.assert_allclose(dx.ravel(), [1 / 3, 1 / 3, 2 / 3, 1 / 3, 1 / 3])
    g = np.arange(24.0).reshape(2, 3, 2, 2)
    np.testing.assert_allclose(F.adaptive_avg_pool2d(g, 1).ravel(), g.mean(axis=(2, 3)).ravel())
    assert ref.adaptive_windows(7, 3) == [(0, 3), (2, 5), (4, 7)]


@pytest.mark.parametrize("H,W,out", [(7, 7, 1), (7, 5, (3, 2)), (6, 6, 3), (4, 5, (7, 8)), (5, 6, (None, 4))])
def test_adaptive_avg_pool_matches_reference_loops_and_gradcheck(rng, H, W, out):
    x = rng.normal(size=(2, 3, H, W))
    y = F.adaptive_avg_pool2d(x, out)
    P, Q = y.shape[2:]
    want_pq = (out, out) if isinstance(out, int) else tuple(H if o is None else o for o in out)
    assert (P, Q) == want_pq
    np.testing.assert_allclose(y, ref.adaptive_avg_pool2d(x, P, Q), rtol=1e-12)
    dy = rng.normal(size=y.shape)
    np.testing.assert_allclose(
        F.adaptive_avg_pool2d_backward(dy, x, out), ref.adaptive_avg_pool2d_backward(dy, H, W), rtol=1e-12, atol=1e-15
    )
    err = gradcheck(
        lambda x: F.adaptive_avg_pool2d(x, out), lambda dy, x: F.adaptive_avg_pool2d_backward(dy, x, out), [x]
    )
    assert err["input0"] < 1e-8


@pytest.mark.parametrize("H,W,out", [(7, 7, 1), (7, 5, (3, 2)), (4, 5, (7, 8)), (32, 32, 1)])
def test_adaptive_avg_pool_matches_torch(rng, H, W, out):
    torch = pytest.importorskip("torch")
    x = rng.normal(size=(4, 3, H, W)).astype(np.float32)
    xt = torch.from_numpy(x).requires_grad_()
    yt = torch.nn.functional.adaptive_avg_pool2d(xt, out)
    dy = rng.normal(size=tuple(yt.shape)).astype(np.float32)
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(F.adaptive_avg_pool2d(x, out), yt.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(F.adaptive_avg_pool2d_backward(dy, x, out), xt.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_adaptive_avg_pool_errors_and_layer():
    with pytest.raises(ValueError, match="output_size"):
        F.adaptive_avg_pool2d(np.zeros((1, 1, 4, 4)), 0)
    with pytest.raises(ValueError, match="output_size"):
        nn.AdaptiveAvgPool2d((1, 2, 3))
    with pytest.raises(ValueError, match="x must be 4-D"):
        F.adaptive_avg_pool2d(np.zeros((4, 4)), 1)
    with pytest.raises(ValueError, match="dy: expected"):
        F.adaptive_avg_pool2d_backward(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 4, 4)), 1)
    layer = nn.AdaptiveAvgPool2d((2, 3))
    x = np.random.default_rng(0).normal(size=(2, 2, 5, 7))
    err = gradcheck_layer(layer, x)
    assert err["input"] < 1e-8


# ----------------------------------------------------------------------------
# residual blocks
# ----------------------------------------------------------------------------


def basic_block(cin, cout, stride, seed, dtype=np.float64):
    body = nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False, rng=seed, dtype=dtype),
        nn.BatchNorm2d(cout, dtype=dtype),
        nn.ReLU(),
        nn.Conv2d(cout, cout, 3, 1, 1, bias=False, rng=seed + 1, dtype=dtype),
        nn.BatchNorm2d(cout, dtype=dtype),
    )
    short = None
    if stride != 1 or cin != cout:
        short = nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False, rng=seed + 2, dtype=dtype), nn.BatchNorm2d(cout, dtype=dtype)
        )
    return nn.Residual(body, short)


def test_residual_identity_adds_and_splits_the_gradient(rng):
    body = nn.Conv2d(2, 2, 3, padding=1, rng=0, dtype=np.float64)
    block = nn.Residual(body)
    x = rng.normal(size=(2, 2, 4, 4))
    np.testing.assert_allclose(block(x), body(x) + x)
    dy = rng.normal(size=x.shape)
    dx = block.backward(dy)
    body(x)
    np.testing.assert_allclose(dx, body.backward(dy) + dy)  # the shortcut passes dy straight through
    # a zero body makes the block the identity, gradient included
    zero = nn.Conv2d(2, 2, 1, rng=0, dtype=np.float64)
    zero.weight.data[:] = 0
    zero.bias.data[:] = 0
    z = nn.Residual(zero)
    np.testing.assert_array_equal(z(x), x)
    np.testing.assert_array_equal(z.backward(dy), dy)


@pytest.mark.parametrize("cin,cout,stride", [(3, 3, 1), (2, 4, 2)])
def test_residual_gradcheck_layer(rng, cin, cout, stride):
    block = basic_block(cin, cout, stride, seed=3)
    err = gradcheck_layer(block, rng.normal(size=(2, cin, 6, 6)))
    assert max(err.values()) < 1e-6, err
    keys = [k for k in err if k != "input"]
    assert "body.0.weight" in keys and ("shortcut.0.weight" in keys) == (stride != 1)


def test_residual_state_dict_checkpoint_and_errors(tmp_path, rng):
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, rng=0),
        basic_block(4, 8, 2, seed=1, dtype=np.float32),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.2, rng=0),
        nn.Linear(8, 3, rng=5),
    )
    keys = list(net.state_dict())
    assert "1.body.1.running_var" in keys and "1.shortcut.1.num_batches_tracked" in keys
    x = rng.normal(size=(4, 1, 8, 8)).astype(np.float32)
    net(x)  # one training step moves the running statistics
    path = checkpoint.save(net, tmp_path / "net.npz")
    other = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, rng=9),
        basic_block(4, 8, 2, seed=9, dtype=np.float32),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.2),
        nn.Linear(8, 3, rng=9),
    )
    checkpoint.load(other, path)
    assert int(other[1].body[1].num_batches_tracked.data) == 1
    assert other[1].body[1].num_batches_tracked.data.dtype == np.int64
    np.testing.assert_array_equal(other.eval()(x), net.eval()(x))
    bad = dict(net.state_dict())
    bad["1.body.1.num_batches_tracked"] = np.array(1.5)
    with pytest.raises(TypeError, match="must hold integers"):
        other.load_state_dict(bad)
    with pytest.raises(ValueError, match="shortcut"):
        nn.Residual(nn.Conv2d(2, 4, 3, padding=1))(np.zeros((1, 2, 5, 5), dtype=np.float32))
    with pytest.raises(TypeError, match="body must be"):
        nn.Residual(lambda x: x)


def test_a_resnet_moves_to_torch_and_back(rng):
    torch = pytest.importorskip("torch")
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, rng=0, dtype=np.float64),
        nn.BatchNorm2d(4, dtype=np.float64),
        nn.ReLU(),
        basic_block(4, 4, 1, seed=1),
        nn.ReLU(),
        basic_block(4, 8, 2, seed=4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 3, rng=7, dtype=np.float64),
    )
    tnet = interop.to_torch(net)
    assert list(tnet.state_dict()) == list(net.state_dict())
    x = rng.normal(size=(4, 1, 8, 8))
    dy = rng.normal(size=(4, 3))
    y = net(x)
    dx = net.backward(dy)
    xt = torch.from_numpy(x).requires_grad_()
    yt = tnet(xt)
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-8, atol=1e-10)
    tparams = dict(tnet.named_parameters())
    for name, p in net.named_parameters():
        np.testing.assert_allclose(p.grad, tparams[name].grad.numpy(), rtol=1e-7, atol=1e-10, err_msg=name)
    back = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, dtype=np.float64),
        nn.BatchNorm2d(4, dtype=np.float64),
        nn.ReLU(),
        basic_block(4, 4, 1, seed=20),
        nn.ReLU(),
        basic_block(4, 8, 2, seed=30),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 3, dtype=np.float64),
    )
    back.load_state_dict(interop.from_torch_state_dict(tnet.state_dict()))
    with torch.no_grad():
        np.testing.assert_allclose(back.eval()(x), tnet.eval()(torch.from_numpy(x)).numpy(), rtol=1e-9, atol=1e-11)


def test_bench_new_workloads_agree_with_torch():
    from catlab import bench

    tiny = [
        ("tiny bn", "batch_norm", (4, 3, 5, 5), None),
        ("tiny dropout", "dropout", (4, 30), 0.5),
        ("tiny gap", "adaptive_avg_pool", (2, 3, 7, 7), 1),
        ("tiny adaptive", "adaptive_avg_pool", (2, 3, 7, 7), 3),
    ]
    errs = bench.check_ops(tiny)  # catlab alone: runs
    assert errs == [0.0] * 4
    torch = pytest.importorskip("torch")
    errs = bench.check_ops(tiny, torch=torch)
    assert len(errs) == 4 and all(e < 1e-5 for e in errs)


def test_fit_with_batchnorm_dropout_and_residual_is_reproducible():
    from catlab.optim import Adam
    from catlab.train import fit

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 1, 6, 6)).astype(np.float32)
    y = (x[:, 0, :3].mean(axis=(1, 2)) > x[:, 0, 3:].mean(axis=(1, 2))).astype(np.int64)

    def model():
        return nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1, bias=False, rng=0),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            basic_block(4, 4, 1, seed=1, dtype=np.float32),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
            nn.Dropout(0.2, rng=3),
            nn.Linear(16, 2, rng=4),
        )

    histories = []
    for _ in range(2):
        m = model()
        h = fit(m, x, y, epochs=5, batch_size=16, optimizer=Adam(m.parameters(), lr=1e-2), progress=False)
        histories.append((h["loss"], m.state_dict()))
        assert int(m[1].num_batches_tracked.data) == 5 * 4  # 4 batches per epoch
        assert h["loss"][-1] < h["loss"][0]
    assert histories[0][0] == histories[1][0]
    for k in histories[0][1]:
        np.testing.assert_array_equal(histories[0][1][k], histories[1][1][k], err_msg=k)
