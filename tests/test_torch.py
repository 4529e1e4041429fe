"""Comparison with PyTorch (forward, every gradient, state_dict keys) when torch is installed."""

import numpy as np
import pytest

from catlab import functional as F
from catlab import nn

torch = pytest.importorskip("torch")
torch.set_num_threads(2)


def t(a, grad=False):
    return torch.tensor(a, requires_grad=grad)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kw", [
    dict(),
    dict(stride=2, padding=1),
    dict(stride=(2, 1), padding=(0, 3), dilation=(1, 2)),
    dict(padding="same"),
    dict(padding="same", dilation=2),
    dict(padding="valid", groups=2),
    dict(groups=4, stride=3, padding=2),
])
@pytest.mark.filterwarnings("ignore:Using padding=.same.:UserWarning")
def test_conv2d_matches_torch(kw, dtype, rng):
    groups = kw.get("groups", 1)
    x = rng.normal(size=(3, 4, 11, 10)).astype(dtype)
    w = rng.normal(size=(8, 4 // groups, 4, 3)).astype(dtype)  # even kernel height: asymmetric 'same'
    b = rng.normal(size=8).astype(dtype)
    xt, wt, bt = t(x, True), t(w, True), t(b, True)
    yt = torch.nn.functional.conv2d(xt, wt, bt, **kw)
    y = F.conv2d(x, w, b, **kw)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(y, yt.detach().numpy(), **tol)
    dy = rng.normal(size=y.shape).astype(dtype)
    yt.backward(t(dy))
    dx, dw, db = F.conv2d_backward(dy, x, w, **kw)
    np.testing.assert_allclose(dx, xt.grad.numpy(), **tol)
    np.testing.assert_allclose(dw, wt.grad.numpy(), **tol)
    np.testing.assert_allclose(db, bt.grad.numpy(), **tol)


@pytest.mark.parametrize("kw", [dict(), dict(stride=3, padding=2, dilation=2), dict(padding="same", groups=2)])
def test_conv1d_matches_torch(kw, rng):
    x = rng.normal(size=(2, 4, 17))
    w = rng.normal(size=(6, 4 // kw.get("groups", 1), 4))
    b = rng.normal(size=6)
    xt, wt, bt = t(x, True), t(w, True), t(b, True)
    yt = torch.nn.functional.conv1d(xt, wt, bt, **kw)
    y = F.conv1d(x, w, b, **kw)
    np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-10)
    dy = rng.normal(size=y.shape)
    yt.backward(t(dy))
    for mine, theirs in zip(F.conv1d_backward(dy, x, w, **kw), (xt.grad, wt.grad, bt.grad)):
        np.testing.assert_allclose(mine, theirs.numpy(), atol=1e-10)


@pytest.mark.parametrize("k,s,p", [(2, None, 0), (3, 2, 1), ((3, 2), (1, 2), (1, 0)), (3, 1, 1)])
def test_pools_match_torch(k, s, p, rng):
    x = rng.normal(size=(2, 3, 9, 8))
    for fwd, bwd, tf in [(F.max_pool2d, F.max_pool2d_backward, torch.nn.functional.max_pool2d),
                         (F.avg_pool2d, F.avg_pool2d_backward, torch.nn.functional.avg_pool2d)]:
        xt = t(x, True)
        yt = tf(xt, k, s, p)
        y = fwd(x, k, s, p)
        np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-12)
        dy = rng.normal(size=y.shape)
        yt.backward(t(dy))
        np.testing.assert_allclose(bwd(dy, x, k, s, p), xt.grad.numpy(), atol=1e-12)


def test_max_pool_ties_match_torch():
    x = np.ones((1, 1, 4, 4))
    x[0, 0, 1, 1] = 1.0
    xt = t(x, True)
    torch.nn.functional.max_pool2d(xt, 3, 1, 1).sum().backward()
    np.testing.assert_array_equal(F.max_pool2d_backward(np.ones((1, 1, 4, 4)), x, 3, 1, 1), xt.grad.numpy())


def test_relu_linear_loss_match_torch(rng):
    x = rng.normal(size=(5, 7))
    w, b = rng.normal(size=(3, 7)), rng.normal(size=3)
    labels = rng.integers(0, 3, size=5)
    xt, wt, bt = t(x, True), t(w, True), t(b, True)
    h = torch.nn.functional.relu(xt)
    z = torch.nn.functional.linear(h, wt, bt)
    loss = torch.nn.functional.cross_entropy(z, torch.tensor(labels))
    loss.backward()
    hn = F.relu(x)
    zn = F.linear(hn, w, b)
    lossn, dz = F.softmax_cross_entropy(zn, labels)
    assert abs(lossn - loss.item()) < 1e-12
    dh, dw, db = F.linear_backward(dz, hn, w)
    dx = F.relu_backward(dh, x)
    np.testing.assert_allclose(dx, xt.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(dw, wt.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(db, bt.grad.numpy(), atol=1e-12)


def test_sequential_state_dict_keys_and_shapes_match_torch():
    mine = nn.Sequential(nn.Conv2d(3, 6, 5, padding=2, rng=0), nn.ReLU(), nn.MaxPool2d(2), nn.Conv1d(6, 2, 3, rng=0),
                         nn.Conv2d(6, 4, 3, bias=False, rng=1), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(16, 10, rng=2))
    theirs = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                 torch.nn.Conv1d(6, 2, 3), torch.nn.Conv2d(6, 4, 3, bias=False), torch.nn.AvgPool2d(2),
                                 torch.nn.Flatten(), torch.nn.Linear(16, 10))
    ts = theirs.state_dict()
    ms = mine.state_dict()
    assert list(ms) == list(ts)
    assert all(ms[k].shape == tuple(ts[k].shape) for k in ms)


def test_default_init_has_torch_bounds():
    torch.manual_seed(0)
    theirs = torch.nn.Conv2d(6, 16, 5)
    mine = nn.Conv2d(6, 16, 5, rng=0)
    tb = theirs.weight.detach().abs().max().item()
    mb = np.abs(mine.weight.data).max()
    bound = 1 / np.sqrt(6 * 25)
    assert tb <= bound and mb <= bound and mb > 0.95 * bound and tb > 0.95 * bound


def test_lenet_outputs_and_gradients_match_torch_after_moving_weights(rng):
    def mine():
        return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2, rng=0), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(6, 16, 5, rng=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(400, 120, rng=2), nn.ReLU(), nn.Linear(120, 84, rng=3), nn.ReLU(),
                             nn.Linear(84, 10, rng=4))
    tnet = torch.nn.Sequential(torch.nn.Conv2d(1, 6, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                               torch.nn.Conv2d(6, 16, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                               torch.nn.Linear(400, 120), torch.nn.ReLU(), torch.nn.Linear(120, 84), torch.nn.ReLU(),
                               torch.nn.Linear(84, 10)).double()
    net = mine().astype(np.float64)
    # catlab -> torch
    tnet.load_state_dict({k: torch.tensor(v) for k, v in net.state_dict().items()})
    x = rng.random((4, 1, 28, 28))
    labels = np.array([0, 3, 9, 3])
    xt = t(x, True)
    loss_t = torch.nn.functional.cross_entropy(tnet(xt), torch.tensor(labels))
    loss_t.backward()
    loss, dz = F.softmax_cross_entropy(net(x), labels)
    dx = net.backward(dz)
    assert abs(loss - loss_t.item()) < 1e-12
    np.testing.assert_allclose(dx, xt.grad.numpy(), atol=1e-12)
    tgrads = {k: p.grad.numpy() for k, p in tnet.named_parameters()}
    for k, p in net.named_parameters():
        np.testing.assert_allclose(p.grad, tgrads[k], atol=1e-12, err_msg=k)
    # torch -> catlab
    other = mine().astype(np.float64)
    other.load_state_dict({k: v.detach().numpy() for k, v in tnet.state_dict().items()})
    np.testing.assert_allclose(other(x), tnet(t(x)).detach().numpy(), atol=1e-12)
