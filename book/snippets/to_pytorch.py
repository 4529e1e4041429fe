# The same LeNet-style network in catlab and in PyTorch, with the weights moved over.
# Shown in the book's appendix "From catlab to PyTorch" and run by tests/test_book_snippets.py.
import numpy as np
import torch
from catlab import nn

# 1. The network in catlab (layers numbered 0..11, as in torch.nn.Sequential)
net = nn.Sequential(
    nn.Conv2d(1, 6, 5, padding=2, rng=0), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(6, 16, 5, rng=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
    nn.Linear(400, 120, rng=2), nn.ReLU(), nn.Linear(120, 84, rng=3), nn.ReLU(), nn.Linear(84, 10, rng=4),
)

# 2. The same architecture in PyTorch: same arguments, same order, so the same state_dict keys
tnet = torch.nn.Sequential(
    torch.nn.Conv2d(1, 6, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
    torch.nn.Conv2d(6, 16, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
    torch.nn.Linear(400, 120), torch.nn.ReLU(), torch.nn.Linear(120, 84), torch.nn.ReLU(), torch.nn.Linear(84, 10),
)

# 3. Move the weights: catlab's state_dict holds NumPy arrays with torch's names and shapes
tnet.load_state_dict({k: torch.from_numpy(v) for k, v in net.state_dict().items()})

# 4. Same input, same outputs
x = np.random.default_rng(0).random((8, 1, 28, 28), dtype=np.float32)   # (N, C, H, W)
y_catlab = net(x)                                                         # (8, 10)
y_torch = tnet(torch.from_numpy(x)).detach().numpy()
print("largest output difference:", np.abs(y_catlab - y_torch).max())
assert np.allclose(y_catlab, y_torch, rtol=1e-4, atol=1e-5)

# 5. Same gradients: backpropagate the same upstream gradient through both
dy = np.random.default_rng(1).standard_normal(y_catlab.shape).astype(np.float32)
dx_catlab = net.backward(dy)
xt = torch.from_numpy(x).requires_grad_(True)
tnet.zero_grad()
tnet(xt).backward(torch.from_numpy(dy))
grads_torch = {k: p.grad.numpy() for k, p in tnet.named_parameters()}
worst = max(np.abs(p.grad - grads_torch[k]).max() for k, p in net.named_parameters())
print("largest parameter-gradient difference:", worst)
assert np.allclose(dx_catlab, xt.grad.numpy(), rtol=1e-4, atol=1e-5)
for k, p in net.named_parameters():
    assert np.allclose(p.grad, grads_torch[k], rtol=1e-3, atol=1e-4), k

# 6. And back: weights trained in PyTorch load into catlab the same way
net.load_state_dict({k: v.detach().numpy() for k, v in tnet.state_dict().items()})
