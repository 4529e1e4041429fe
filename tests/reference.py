"""Slow, obvious reference implementations that every fast kernel is compared with.

Plain Python loops over every index, written straight from the definitions,
in float64. Padding is given per edge: ``pad = ((top, bottom), (left, right))``.
"""

import numpy as np


def pad_edges(padding, kernel, dilation):
    """Turn conv ``padding`` (int, pair, 'valid' or 'same') into ((top, bottom), (left, right))."""
    if padding == "valid":
        return ((0, 0), (0, 0))
    if padding == "same":
        out = []
        for k, d in zip(kernel, dilation):
            total = d * (k - 1)
            out.append((total // 2, total - total // 2))
        return tuple(out)
    if isinstance(padding, int):
        padding = (padding, padding)
    return ((padding[0], padding[0]), (padding[1], padding[1]))


def conv2d(x, w, b, stride, pad, dilation, groups):
    """y[n, k, p, q] = b[k] + sum_{c, r, s} w[k, c, r, s] * xp[n, g*Cg + c, p*sh + r*dil_h, q*sw + s*dil_w]."""
    N, C, H, W = x.shape
    K, Cg, R, S = w.shape
    sh, sw = stride
    dil_h, dil_w = dilation
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), pad[0], pad[1]))
    Hp, Wp = xp.shape[2:]
    P = (Hp - dil_h * (R - 1) - 1) // sh + 1
    Q = (Wp - dil_w * (S - 1) - 1) // sw + 1
    Kg = K // groups
    y = np.zeros((N, K, P, Q))
    for n in range(N):
        for k in range(K):
            g = k // Kg
            for p in range(P):
                for q in range(Q):
                    acc = 0.0 if b is None else float(b[k])
                    for c in range(Cg):
                        for r in range(R):
                            for s in range(S):
                                acc += w[k, c, r, s] * xp[n, g * Cg + c, p * sh + r * dil_h, q * sw + s * dil_w]
                    y[n, k, p, q] = acc
    return y


def conv2d_backward(dy, x, w, stride, pad, dilation, groups):
    """Each forward term w*x contributes dy*x to dweight and dy*w to dx; summed by brute force."""
    N, C, H, W = x.shape
    K, Cg, R, S = w.shape
    sh, sw = stride
    dil_h, dil_w = dilation
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), pad[0], pad[1]))
    dxp = np.zeros_like(xp)
    dweight = np.zeros(w.shape)
    P, Q = dy.shape[2:]
    Kg = K // groups
    for n in range(N):
        for k in range(K):
            g = k // Kg
            for p in range(P):
                for q in range(Q):
                    for c in range(Cg):
                        for r in range(R):
                            for s in range(S):
                                ih, iw = p * sh + r * dil_h, q * sw + s * dil_w
                                dweight[k, c, r, s] += dy[n, k, p, q] * xp[n, g * Cg + c, ih, iw]
                                dxp[n, g * Cg + c, ih, iw] += dy[n, k, p, q] * w[k, c, r, s]
    dx = dxp[:, :, pad[0][0] : pad[0][0] + H, pad[1][0] : pad[1][0] + W]
    return dx, dweight, dy.sum(axis=(0, 2, 3))


def _out_len(n, k, s, p, d, ceil):
    """PyTorch's pooling output length (``pooling_output_shape``), written out."""
    span = d * (k - 1) + 1
    if ceil:
        out = -(-(n + 2 * p - span) // s) + 1  # ceil division
        if (out - 1) * s >= n + p:  # the last window must start inside the input or its left padding
            out -= 1
    else:
        out = (n + 2 * p - span) // s + 1
    return out


def _windows(H, W, k, s, p, d=(1, 1), ceil=False):
    """Yield (i, j, in-bounds cells in row-major order, P, Q, padded size) for every window."""
    P = _out_len(H, k[0], s[0], p[0], d[0], ceil)
    Q = _out_len(W, k[1], s[1], p[1], d[1], ceil)
    for i in range(P):
        for j in range(Q):
            top, left = i * s[0] - p[0], j * s[1] - p[1]
            cells = [(top + r * d[0], left + t * d[1]) for r in range(k[0]) for t in range(k[1])]
            # avg_pool2d's count_include_pad size: the window clipped to the padded input
            size = (min(top + k[0], H + p[0]) - top) * (min(left + k[1], W + p[1]) - left)
            yield i, j, [(a, b) for a, b in cells if 0 <= a < H and 0 <= b < W], P, Q, size


def max_pool2d(x, k, s, p, d=(1, 1), ceil=False):
    N, C, H, W = x.shape
    wins = list(_windows(H, W, k, s, p, d, ceil))
    y = np.zeros((N, C, wins[0][3], wins[0][4]))
    for n in range(N):
        for c in range(C):
            for i, j, cells, *_ in wins:
                y[n, c, i, j] = max(x[n, c, a, b] for a, b in cells)
    return y


def max_pool2d_backward(dy, x, k, s, p, d=(1, 1), ceil=False):
    N, C, H, W = x.shape
    dx = np.zeros(x.shape)
    for n in range(N):
        for c in range(C):
            for i, j, cells, *_ in _windows(H, W, k, s, p, d, ceil):
                vals = [x[n, c, a, b] for a, b in cells]
                a, b = cells[int(np.argmax(vals))]  # first maximum in row-major order
                dx[n, c, a, b] += dy[n, c, i, j]
    return dx


def _divisor(cells, size, include_pad, divisor):
    if divisor is not None:
        return divisor
    return size if include_pad else len(cells)


def avg_pool2d(x, k, s, p, ceil=False, include_pad=True, divisor=None):
    N, C, H, W = x.shape
    wins = list(_windows(H, W, k, s, p, (1, 1), ceil))
    y = np.zeros((N, C, wins[0][3], wins[0][4]))
    for n in range(N):
        for c in range(C):
            for i, j, cells, _, _, size in wins:
                y[n, c, i, j] = sum(x[n, c, a, b] for a, b in cells) / _divisor(cells, size, include_pad, divisor)
    return y


def avg_pool2d_backward(dy, x, k, s, p, ceil=False, include_pad=True, divisor=None):
    N, C, H, W = x.shape
    dx = np.zeros(x.shape)
    for n in range(N):
        for c in range(C):
            for i, j, cells, _, _, size in _windows(H, W, k, s, p, (1, 1), ceil):
                for a, b in cells:
                    dx[n, c, a, b] += dy[n, c, i, j] / _divisor(cells, size, include_pad, divisor)
    return dx


def softmax_cross_entropy(logits, labels):
    """Mean of -log softmax(logits)[label], one row at a time, in float64 with math.fsum-like care."""
    N, K = logits.shape
    losses, grads = [], np.zeros((N, K))
    for n in range(N):
        row = logits[n].astype(np.float64)
        m = row.max()
        lse = m + np.log(np.sum(np.exp(row - m)))
        losses.append(lse - row[labels[n]])
        p = np.exp(row - lse)
        p[labels[n]] -= 1
        grads[n] = p / N
    return float(np.mean(losses)), grads


def max_pool2d_indices(x, k, s, p, d=(1, 1), ceil=False):
    """PyTorch's ``return_indices``: flat h*W + w of the first strict maximum in row-major order; the last NaN wins."""
    N, C, H, W = x.shape
    wins = list(_windows(H, W, k, s, p, d, ceil))
    P, Q = wins[0][3], wins[0][4]
    ind = np.zeros((N, C, P, Q), dtype=np.int64)
    for n in range(N):
        for c in range(C):
            for i, j, cells, *_ in wins:
                best, where = -np.inf, cells[0]
                for a, b in cells:
                    v = x[n, c, a, b]
                    if v > best or np.isnan(v):
                        best, where = v, (a, b)
                ind[n, c, i, j] = where[0] * W + where[1]
    return ind


def batch_norm(x, mean, var, weight, bias, eps):
    """y[n, c, h, w] = weight[c] * (x[n, c, h, w] - mean[c]) / sqrt(var[c] + eps) + bias[c], loop by loop."""
    N, C, H, W = x.shape
    y = np.zeros((N, C, H, W))
    for n in range(N):
        for c in range(C):
            for h in range(H):
                for w in range(W):
                    y[n, c, h, w] = weight[c] * (x[n, c, h, w] - mean[c]) / np.sqrt(var[c] + eps) + bias[c]
    return y


def batch_stats(x):
    """Per-channel mean, biased and unbiased variance, by explicit sums."""
    N, C, H, W = x.shape
    M = N * H * W
    mean, biased, unbiased = np.zeros(C), np.zeros(C), np.zeros(C)
    for c in range(C):
        s = 0.0
        for n in range(N):
            for h in range(H):
                for w in range(W):
                    s += x[n, c, h, w]
        mean[c] = s / M
        ss = 0.0
        for n in range(N):
            for h in range(H):
                for w in range(W):
                    ss += (x[n, c, h, w] - mean[c]) ** 2
        biased[c] = ss / M
        unbiased[c] = ss / (M - 1)
    return mean, biased, unbiased


def batch_norm_train_backward(dy, x, weight, eps):
    """dx by the full Jacobian of training-mode batch norm, entry by entry.

    Within a channel, with M values, xhat_i = (x_i - mean) * invstd and
    d y_j / d x_i = weight * invstd * (delta_ij - 1/M - xhat_i * xhat_j / M).
    """
    N, C, H, W = x.shape
    mean, var, _ = batch_stats(x)
    dx = np.zeros(x.shape)
    dw = np.zeros(C)
    db = np.zeros(C)
    idx = [(n, h, w) for n in range(N) for h in range(H) for w in range(W)]
    M = len(idx)
    for c in range(C):
        invstd = 1.0 / np.sqrt(var[c] + eps)
        for n, h, w in idx:
            xh = (x[n, c, h, w] - mean[c]) * invstd
            dw[c] += dy[n, c, h, w] * xh
            db[c] += dy[n, c, h, w]
        for n, h, w in idx:
            xi = (x[n, c, h, w] - mean[c]) * invstd
            acc = 0.0
            for m, u, v in idx:
                xj = (x[m, c, u, v] - mean[c]) * invstd
                jac = weight[c] * invstd * ((1.0 if (n, h, w) == (m, u, v) else 0.0) - 1.0 / M - xi * xj / M)
                acc += dy[m, c, u, v] * jac
            dx[n, c, h, w] = acc
    return dx, dw, db


def adaptive_windows(size, out):
    """torch's adaptive windows along one axis: [floor(i*size/out), ceil((i+1)*size/out))."""
    return [(int(np.floor(i * size / out)), int(np.ceil((i + 1) * size / out))) for i in range(out)]


def adaptive_avg_pool2d(x, P, Q):
    N, C, H, W = x.shape
    y = np.zeros((N, C, P, Q))
    for n in range(N):
        for c in range(C):
            for p, (h0, h1) in enumerate(adaptive_windows(H, P)):
                for q, (w0, w1) in enumerate(adaptive_windows(W, Q)):
                    s = 0.0
                    for h in range(h0, h1):
                        for w in range(w0, w1):
                            s += x[n, c, h, w]
                    y[n, c, p, q] = s / ((h1 - h0) * (w1 - w0))
    return y


def adaptive_avg_pool2d_backward(dy, H, W):
    N, C, P, Q = dy.shape
    dx = np.zeros((N, C, H, W))
    for n in range(N):
        for c in range(C):
            for p, (h0, h1) in enumerate(adaptive_windows(H, P)):
                for q, (w0, w1) in enumerate(adaptive_windows(W, Q)):
                    for h in range(h0, h1):
                        for w in range(w0, w1):
                            dx[n, c, h, w] += dy[n, c, p, q] / ((h1 - h0) * (w1 - w0))
    return dx
