"""catlab: convolutional layers in Numba, forward and backward, with PyTorch's conventions.

Submodules
----------
functional
    Validating functions: ``conv2d``, ``conv2d_backward``, pooling, ReLU, linear, the loss.
nn
    Layer objects (``Conv2d``, ``ReLU``, ``MaxPool2d``, ``Linear``, ``Sequential`` ...).
gradcheck
    Numerical gradient checks by centred differences in float64.
optim, train
    ``SGD`` and ``Adam`` as in ``torch.optim``; ``fit``, ``evaluate``, ``predict``.
datasets, checkpoint, interop
    Offline data sets (digits, an MNIST sample, the cat, CIFAR-10 binary); ``.npz``
    checkpoints; moving weights to and from PyTorch.

Threads
-------
``catlab.set_num_threads(n)`` and ``catlab.get_num_threads()`` set and read how
many threads catlab's kernels use, for the whole process. The default is the
environment variable ``CATLAB_NUM_THREADS`` if set, otherwise the number of
cores. Results are bit-identical for a given thread count, whichever Python
thread calls.

Examples
--------
>>> import numpy as np, catlab
>>> layer = catlab.nn.Conv2d(3, 6, 5, rng=0)
>>> layer(np.zeros((1, 3, 32, 32), dtype=np.float32)).shape
(1, 6, 28, 28)
"""

__version__ = "0.1.0"

from . import checkpoint, datasets, functional, gradcheck, interop, nn, optim, train, widgets  # noqa: E402  # noqa: E402
from ._threads import get_num_threads, set_num_threads  # noqa: E402

__all__ = [
    "functional",
    "nn",
    "gradcheck",
    "widgets",
    "optim",
    "train",
    "datasets",
    "checkpoint",
    "interop",
    "set_num_threads",
    "get_num_threads",
    "__version__",
]
