"""Slow, obvious references for the layer ops, written with loops: the oracles of the tests.

Each follows the definition directly (one output element at a time) and shares no code with
``minigrad.ops``. Settings are (h, w) pairs; arrays are float64.
"""

from __future__ import annotations

import numpy as np


def pad(x, padding, value=0.0):
    """x (N, C, H, W) with PH rows of ``value`` above and below, PW columns left and right."""
    PH, PW = padding
    N, C, H, W = x.shape
    xp = np.full((N, C, H + 2 * PH, W + 2 * PW), value, dtype=np.float64)
    for n in range(N):
        for c in range(C):
            for h in range(H):
                for w in range(W):
                    xp[n, c, h + PH, w + PW] = x[n, c, h, w]
    return xp


def out_size(size, kernel, stride, padding):
    return 1 + (size + 2 * padding - kernel) // stride


def conv2d(x, w, b=None, stride=(1, 1), padding=(0, 0)):
    """y[n, f, oh, ow] = Σ_{c,i,j} w[f, c, i, j] · xp[n, c, oh·SH + i, ow·SW + j] + b[f]."""
    N, C, H, W = x.shape
    FN, _, FH, FW = w.shape
    (SH, SW), (PH, PW) = stride, padding
    OH, OW = out_size(H, FH, SH, PH), out_size(W, FW, SW, PW)
    xp = pad(x, padding)
    y = np.zeros((N, FN, OH, OW))
    for n in range(N):
        for f in range(FN):
            for oh in range(OH):
                for ow in range(OW):
                    total = 0.0 if b is None else b[f]
                    for c in range(C):
                        for i in range(FH):
                            for j in range(FW):
                                total += w[f, c, i, j] * xp[n, c, oh * SH + i, ow * SW + j]
                    y[n, f, oh, ow] = total
    return y


def conv2d_backward(x, w, dy, stride=(1, 1), padding=(0, 0)):
    """(dx, dw, db) of conv2d for the upstream gradient dy, by the chain rule term by term."""
    N, C, H, W = x.shape
    FN, _, FH, FW = w.shape
    (SH, SW), (PH, PW) = stride, padding
    xp = pad(x, padding)
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w, dtype=np.float64)
    db = np.zeros(FN)
    for n in range(N):
        for f in range(FN):
            for oh in range(dy.shape[2]):
                for ow in range(dy.shape[3]):
                    g = dy[n, f, oh, ow]
                    db[f] += g
                    for c in range(C):
                        for i in range(FH):
                            for j in range(FW):
                                h, v = oh * SH + i, ow * SW + j
                                dw[f, c, i, j] += g * xp[n, c, h, v]
                                dxp[n, c, h, v] += g * w[f, c, i, j]
    return dxp[:, :, PH:PH + H, PW:PW + W], dw, db


def im2col(x, FH, FW, stride=(1, 1), padding=(0, 0)):  # noqa: N803
    """col[n, (c·FH + i)·FW + j, oh·OW + ow] = xp[n, c, oh·SH + i, ow·SW + j]."""
    N, C, H, W = x.shape
    (SH, SW), (PH, PW) = stride, padding
    OH, OW = out_size(H, FH, SH, PH), out_size(W, FW, SW, PW)
    xp = pad(x, padding)
    col = np.zeros((N, C * FH * FW, OH * OW))
    for n in range(N):
        for c in range(C):
            for i in range(FH):
                for j in range(FW):
                    for oh in range(OH):
                        for ow in range(OW):
                            col[n, (c * FH + i) * FW + j, oh * OW + ow] = \
                                xp[n, c, oh * SH + i, ow * SW + j]
    return col


def _windows(x, kernel, stride, padding, fill, dilation=(1, 1), out=None):
    """Yield (n, c, oh, ow, [(h, w, value, inside) for each window cell in row-major order])."""
    N, C, H, W = x.shape
    (KH, KW), (SH, SW), (PH, PW), (DH, DW) = kernel, stride, padding, dilation
    OH, OW = out if out is not None else (out_size(H, KH, SH, PH), out_size(W, KW, SW, PW))
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                for ow in range(OW):
                    cells = []
                    for i in range(KH):
                        for j in range(KW):
                            h, v = oh * SH + i * DH - PH, ow * SW + j * DW - PW
                            inside = 0 <= h < H and 0 <= v < W
                            cells.append((h, v, x[n, c, h, v] if inside else fill, inside))
                    yield n, c, oh, ow, cells


def _pooled_shape(x, kernel, stride, padding):
    N, C, H, W = x.shape
    return (N, C, out_size(H, kernel[0], stride[0], padding[0]),
            out_size(W, kernel[1], stride[1], padding[1]))


def max_pool2d(x, kernel, stride, padding=(0, 0)):
    """The largest element of each window; padded cells count as −∞."""
    y = np.zeros(_pooled_shape(x, kernel, stride, padding))
    for n, c, oh, ow, cells in _windows(x, kernel, stride, padding, -np.inf):
        y[n, c, oh, ow] = max(cell[2] for cell in cells)
    return y


def max_pool2d_backward(x, dy, kernel, stride, padding=(0, 0)):
    """dx: each window's dy goes to its FIRST maximal input cell in row-major order."""
    dx = np.zeros(x.shape)
    for n, c, oh, ow, cells in _windows(x, kernel, stride, padding, -np.inf):
        best = max(cell[2] for cell in cells)
        h, v, _, _ = next(cell for cell in cells if cell[3] and cell[2] == best)
        dx[n, c, h, v] += dy[n, c, oh, ow]
    return dx


def avg_pool2d(x, kernel, stride, padding=(0, 0)):
    """The mean of each window, padded zeros included (divisor KH·KW)."""
    y = np.zeros(_pooled_shape(x, kernel, stride, padding))
    for n, c, oh, ow, cells in _windows(x, kernel, stride, padding, 0.0):
        y[n, c, oh, ow] = sum(cell[2] for cell in cells) / len(cells)
    return y


# ------------------------------------------------------------- options (PyTorch's semantics)


def pool_out_size(size, kernel, stride, padding, dilation=1, ceil_mode=False):
    """PyTorch's pooling size: floor or ceil of (size + 2P − D(K − 1) − 1) / S, plus 1; with
    ceil_mode a last window starting at or past size + P (in the end padding) is dropped."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def pool_windows_hold_input(size, kernel, stride, padding, dilation, ceil_mode):
    """True when every window along one axis holds at least one input cell."""
    out = pool_out_size(size, kernel, stride, padding, dilation, ceil_mode)
    return out >= 1 and all(
        any(0 <= o * stride + i * dilation - padding < size for i in range(kernel))
        for o in range(out))


def _option_out(x, kernel, stride, padding, dilation, ceil_mode):
    return tuple(pool_out_size(x.shape[2 + a], kernel[a], stride[a], padding[a], dilation[a],
                               ceil_mode) for a in (0, 1))


def max_pool2d_options(x, kernel, stride, padding, dilation=(1, 1), ceil_mode=False):
    """(y, indices, dx-function): the maximum of each (dilated) window, the flat index h·W + w
    of its first maximal input cell, and the backward for an upstream dy."""
    out = _option_out(x, kernel, stride, padding, dilation, ceil_mode)
    N, C, H, W = x.shape
    y = np.zeros((N, C) + out)
    indices = np.zeros((N, C) + out, dtype=np.int64)
    for n, c, oh, ow, cells in _windows(x, kernel, stride, padding, -np.inf, dilation, out):
        best = max(cell[2] for cell in cells)
        h, v, _, _ = next(cell for cell in cells if cell[3] and cell[2] == best)
        y[n, c, oh, ow], indices[n, c, oh, ow] = best, h * W + v

    def backward(dy):
        dx = np.zeros(x.shape)
        for n in range(N):
            for c in range(C):
                for oh in range(out[0]):
                    for ow in range(out[1]):
                        h, v = divmod(int(indices[n, c, oh, ow]), W)
                        dx[n, c, h, v] += dy[n, c, oh, ow]
        return dx

    return y, indices, backward


def avg_pool2d_options(x, kernel, stride, padding, ceil_mode=False, count_include_pad=True,
                       divisor_override=None):
    """Each window's sum over its divisor: the override, or its cells inside the padded input
    (count_include_pad), or its input cells."""
    out = _option_out(x, kernel, stride, padding, (1, 1), ceil_mode)
    N, C, H, W = x.shape
    (PH, PW) = padding
    y = np.zeros((N, C) + out)
    for n, c, oh, ow, cells in _windows(x, kernel, stride, padding, 0.0, (1, 1), out):
        if divisor_override is not None:
            divisor = divisor_override
        elif count_include_pad:
            divisor = sum(1 for h, v, _, _ in cells if -PH <= h < H + PH and -PW <= v < W + PW)
        else:
            divisor = sum(1 for cell in cells if cell[3])
        y[n, c, oh, ow] = sum(cell[2] for cell in cells) / divisor
    return y


def adaptive_avg_pool2d(x, output_size):
    """Window o covers [floor(o·H/OH), ceil((o + 1)·H/OH)) along each axis."""
    N, C, H, W = x.shape
    OH, OW = output_size
    y = np.zeros((N, C, OH, OW))
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                h0, h1 = (oh * H) // OH, -(-((oh + 1) * H) // OH)
                for ow in range(OW):
                    w0, w1 = (ow * W) // OW, -(-((ow + 1) * W) // OW)
                    y[n, c, oh, ow] = x[n, c, h0:h1, w0:w1].sum() / ((h1 - h0) * (w1 - w0))
    return y


def conv2d_options(x, w, b=None, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), groups=1):
    """y[n, f, oh, ow] = Σ_{c in f's group, i, j} w[f, c', i, j] · xp[n, c, oh·SH + i·DH,
    ow·SW + j·DW] + b[f], xp padded by (top, bottom, left, right) = pads."""
    N, C, H, W = x.shape
    FN, Cg, FH, FW = w.shape
    (SH, SW), (DH, DW) = stride, dilation
    PT, PB, PL, PR = pads
    xp = np.zeros((N, C, H + PT + PB, W + PL + PR))
    xp[:, :, PT:PT + H, PL:PL + W] = x
    OH = 1 + (H + PT + PB - DH * (FH - 1) - 1) // SH
    OW = 1 + (W + PL + PR - DW * (FW - 1) - 1) // SW
    per_group = FN // groups
    y = np.zeros((N, FN, OH, OW))
    for n in range(N):
        for f in range(FN):
            g = f // per_group
            for oh in range(OH):
                for ow in range(OW):
                    total = 0.0 if b is None else b[f]
                    for c in range(Cg):
                        for i in range(FH):
                            for j in range(FW):
                                total += w[f, c, i, j] * xp[n, g * Cg + c, oh * SH + i * DH,
                                                            ow * SW + j * DW]
                    y[n, f, oh, ow] = total
    return y


def conv_transpose2d(x, w, b=None, stride=(1, 1), padding=(0, 0), output_padding=(0, 0),
                     groups=1, dilation=(1, 1)):
    """Each input pixel scatters x[n, c, h, v] · w[c, o, i, j] onto output pixel
    (h·SH + i·DH − PH, v·SW + j·DW − PW) of channel g·C_out/G + o; cells outside are dropped."""
    N, C_in, H, W = x.shape
    _, Cg_out, FH, FW = w.shape
    (SH, SW), (PH, PW), (OPH, OPW), (DH, DW) = stride, padding, output_padding, dilation
    OH = (H - 1) * SH - 2 * PH + DH * (FH - 1) + OPH + 1
    OW = (W - 1) * SW - 2 * PW + DW * (FW - 1) + OPW + 1
    per_group = C_in // groups
    y = np.zeros((N, Cg_out * groups, OH, OW))
    for n in range(N):
        for c in range(C_in):
            g = c // per_group
            for h in range(H):
                for v in range(W):
                    for o in range(Cg_out):
                        for i in range(FH):
                            for j in range(FW):
                                oh, ow = h * SH + i * DH - PH, v * SW + j * DW - PW
                                if 0 <= oh < OH and 0 <= ow < OW:
                                    y[n, g * Cg_out + o, oh, ow] += x[n, c, h, v] * w[c, o, i, j]
    if b is not None:
        y += np.asarray(b).reshape(1, -1, 1, 1)
    return y


def affine(x, w, b=None):
    """Y[n, m] = Σ_d X[n, d] · W[d, m] + b[m], X flattened to (N, D)."""
    x2 = x.reshape(x.shape[0], -1)
    N, D = x2.shape
    M = w.shape[1]
    y = np.zeros((N, M))
    for n in range(N):
        for m in range(M):
            y[n, m] = sum(x2[n, d] * w[d, m] for d in range(D)) + (0.0 if b is None else b[m])
    return y


def log_softmax_row(z):
    """log softmax of one row, by the max-shifted formula written out."""
    m = max(z)
    lse = m + np.log(sum(np.exp(v - m) for v in z))
    return np.array([v - lse for v in z])


def softmax(x, axis=-1):
    """exp(x) / Σ exp(x) along ``axis``, one 1-D slice at a time."""
    moved = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    out = np.zeros_like(moved)
    for index in np.ndindex(moved.shape[:-1]):
        out[index] = np.exp(log_softmax_row(moved[index]))
    return np.moveaxis(out, -1, axis)


def log_softmax(x, axis=-1):
    moved = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    out = np.zeros_like(moved)
    for index in np.ndindex(moved.shape[:-1]):
        out[index] = log_softmax_row(moved[index])
    return np.moveaxis(out, -1, axis)


def one_hot(t, C):  # noqa: N803
    out = np.zeros((len(t), C))
    for n, k in enumerate(t):
        out[n, k] = 1.0
    return out


def softmax_cross_entropy(z, t):
    """−(1/N) Σ_n Σ_c t[n, c] · log softmax(z[n])_c; indices t (N,) stand for one-hot rows."""
    N, C = z.shape
    rows = one_hot(t, C) if np.ndim(t) == 1 else np.asarray(t, dtype=np.float64)
    total = 0.0
    for n in range(N):
        logp = log_softmax_row(z[n])
        total -= sum(rows[n, c] * logp[c] for c in range(C))
    return total / N
