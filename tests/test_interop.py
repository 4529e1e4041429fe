"""PyTorch interop: weights both ways, and identical training (fit + optimizers) from the same weights."""

import subprocess
import sys

import numpy as np
import pytest

from catlab import interop, nn
from catlab.optim import SGD, Adam
from catlab.train import fit


def lenet(dtype=np.float64):
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2, rng=0, dtype=dtype),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5, rng=1, dtype=dtype),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120, rng=2, dtype=dtype),
        nn.ReLU(),
        nn.Linear(120, 84, rng=3, dtype=dtype),
        nn.ReLU(),
        nn.Linear(84, 10, rng=4, dtype=dtype),
    )


def test_importing_catlab_does_not_import_torch():
    code = (
        "import sys, catlab, catlab.interop, catlab.train, catlab.optim, catlab.checkpoint, catlab.datasets; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_from_torch_state_dict_copies_arrays():
    w = np.ones((2, 3))
    out = interop.from_torch_state_dict({"weight": w})
    out["weight"][0, 0] = 5
    assert w[0, 0] == 1
    with pytest.raises(TypeError, match="state"):
        interop.from_torch_state_dict([w])


def test_state_dicts_move_both_ways():
    torch = pytest.importorskip("torch")
    net = lenet()
    tnet = interop.to_torch(net)
    assert isinstance(tnet, torch.nn.Sequential) and len(tnet) == len(net)
    x = np.random.default_rng(0).random((3, 1, 28, 28))
    np.testing.assert_allclose(tnet(torch.from_numpy(x)).detach().numpy(), net(x), atol=1e-12)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in tnet.parameters():
            p.mul_(-2.0)
    other = lenet()
    other.load_state_dict(interop.from_torch_state_dict(tnet.state_dict()))
    np.testing.assert_allclose(other[3].weight.data, -2 * net[3].weight.data)
    sd = interop.to_torch_state_dict(other)
    assert list(sd) == list(tnet.state_dict()) and sd["0.weight"].dtype == torch.float64


def test_to_torch_float32_and_unsupported_layer():
    torch = pytest.importorskip("torch")
    tnet = interop.to_torch(nn.Sequential(nn.Conv1d(2, 4, 3, padding="same", rng=0), nn.Flatten()))
    assert tnet[0].weight.dtype == torch.float32 and tnet[0].padding == "same"

    class Odd(nn.Module):
        pass

    with pytest.raises(TypeError, match=r"model\[1\]: no torch equivalent for Odd"):
        interop.to_torch(nn.Sequential(nn.ReLU(), Odd()))


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda params, torch: (
            SGD(params[0], lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
            torch.optim.SGD(params[1], lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
        ),
        lambda params, torch: (
            Adam(params[0], lr=2e-3, amsgrad=True),
            torch.optim.Adam(params[1], lr=2e-3, amsgrad=True),
        ),
    ],
    ids=["sgd-nesterov", "adam-amsgrad"],
)
def test_fit_trains_lenet_exactly_like_a_torch_loop(make_opt, rng):
    """catlab's fit and a plain torch loop, same weights, same batches: the same parameters after training."""
    torch = pytest.importorskip("torch")
    net = lenet()
    tnet = interop.to_torch(net)
    x = rng.random((20, 1, 28, 28))
    y = rng.integers(0, 10, size=20)
    opt, topt = make_opt((net.parameters(), tnet.parameters()), torch)
    epochs, batch, seed = 2, 8, 3
    history = fit(net, x, y, epochs, batch, opt, seed=seed, progress=False)
    order = np.random.default_rng(seed)  # fit's shuffling: one permutation per epoch
    tloss = []
    for _ in range(epochs):
        perm = order.permutation(len(x))
        total = 0.0
        for s in range(0, len(x), batch):
            idx = perm[s : s + batch]
            loss = torch.nn.functional.cross_entropy(tnet(torch.from_numpy(x[idx])), torch.from_numpy(y[idx]))
            topt.zero_grad()
            loss.backward()
            topt.step()
            total += loss.item() * len(idx)
        tloss.append(total / len(x))
    np.testing.assert_allclose(history["loss"], tloss, rtol=1e-10)
    theirs = interop.from_torch_state_dict(tnet.state_dict())
    for k, v in net.state_dict().items():
        np.testing.assert_allclose(v, theirs[k], rtol=1e-9, atol=1e-11, err_msg=k)
    assert not np.allclose(net[0].weight.data, lenet()[0].weight.data)  # it did train
