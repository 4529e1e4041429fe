# The same LeNet-style network in catlab and in PyTorch, weights moved over.
# Shown in the appendix "From catlab to PyTorch" (book/17_to_pytorch.ipynb)
# and run by tests/test_book_snippets.py.
import numpy as np
import torch
from catlab import nn

# 1. The network in catlab (layers 0..11, numbered as in torch.nn.Sequential)
net = nn.Sequential(
    nn.Conv2d(1, 6, 5, padding=2, rng=0),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Conv2d(6, 16, 5, rng=1),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Flatten(),
    nn.Linear(400, 120, rng=2),
    nn.ReLU(),
    nn.Linear(120, 84, rng=3),
    nn.ReLU(),
    nn.Linear(84, 10, rng=4),
)

# 2. The same architecture in PyTorch: same arguments, same order,
#    hence the same state_dict keys ("0.weight", "0.bias", "3.weight", ...)
T = torch.nn
tnet = T.Sequential(
    T.Conv2d(1, 6, 5, padding=2),
    T.ReLU(),
    T.MaxPool2d(2),
    T.Conv2d(6, 16, 5),
    T.ReLU(),
    T.MaxPool2d(2),
    T.Flatten(),
    T.Linear(400, 120),
    T.ReLU(),
    T.Linear(120, 84),
    T.ReLU(),
    T.Linear(84, 10),
)

# 3. Move the weights: catlab's state_dict holds NumPy arrays with
#    torch's names and shapes
tnet.load_state_dict(
    {k: torch.from_numpy(v) for k, v in net.state_dict().items()}
)

# 4. Same input, same outputs
rng = np.random.default_rng(0)
x = rng.random((8, 1, 28, 28), dtype=np.float32)  # (N, C, H, W)
y_catlab = net(x)  # (8, 10)
y_torch = tnet(torch.from_numpy(x)).detach().numpy()
print("largest output difference:", np.abs(y_catlab - y_torch).max())
assert np.allclose(y_catlab, y_torch, rtol=1e-4, atol=1e-5)

# 5. Same gradients: send the same upstream gradient back through both
dy = rng.standard_normal(y_catlab.shape).astype(np.float32)
dx_catlab = net.backward(dy)  # fills p.grad of every parameter
xt = torch.from_numpy(x).requires_grad_(True)
tnet.zero_grad()
tnet(xt).backward(torch.from_numpy(dy))
assert np.allclose(dx_catlab, xt.grad.numpy(), rtol=1e-4, atol=1e-5)
tgrads = {k: p.grad.numpy() for k, p in tnet.named_parameters()}
for k, p in net.named_parameters():
    assert np.allclose(p.grad, tgrads[k], rtol=1e-3, atol=1e-4), k
worst = max(np.abs(p.grad - tgrads[k]).max() for k, p in net.named_parameters())
print("largest parameter-gradient difference:", worst)

# 6. And back: weights trained in PyTorch load into catlab the same way
net.load_state_dict(
    {k: v.detach().numpy() for k, v in tnet.state_dict().items()}
)
