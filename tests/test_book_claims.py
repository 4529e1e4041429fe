"""Claims the book makes about PyTorch, checked where PyTorch is installed (the book build does not need it)."""

import numpy as np
import pytest

from catlab import functional as F

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("W,K,S,P,expected", [(10, 3, 2, 0, 4), (7, 3, 2, 0, 3), (7, 3, 1, 0, 5), (32, 5, 1, 2, 32)])
def test_conv_output_size_rounds_down_like_torch(W, K, S, P, expected):
    """Chapter 6: W=10, F=3, P=0, S=2 gives (10 - 3)/2 + 1 = 4.5; both libraries return 4."""
    t = torch.nn.functional.conv2d(torch.zeros(1, 1, W, W), torch.zeros(1, 1, K, K), stride=S, padding=P)
    c = F.conv2d(np.zeros((1, 1, W, W), np.float32), np.zeros((1, 1, K, K), np.float32), stride=S, padding=P)
    assert t.shape[-1] == c.shape[-1] == expected


def test_pool_output_size_rounds_down_like_torch():
    """Chapter 7: a 2x2 stride-2 max pool on 7x7 gives (7 - 2)/2 + 1 = 3.5 -> 3."""
    t = torch.nn.functional.max_pool2d(torch.zeros(1, 1, 7, 7), 2, 2)
    assert t.shape[-1] == F.max_pool2d(np.zeros((1, 1, 7, 7)), 2, 2).shape[-1] == 3
