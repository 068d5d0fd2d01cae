"""Softmax, log-softmax and the fused softmax cross-entropy loss, all computed stably.

Each subtracts the maximum along the class axis before exponentiating: softmax(z) is unchanged
by a shift of z, and then every exponent is ≤ 0, so nothing overflows; log-softmax is
(z − m) − log Σ exp(z − m), which never takes the log of an underflowed 0.
"""

from __future__ import annotations

import numpy as np

from minigrad.function import Function


def _axis(op: str, axis, ndim: int, shape) -> int:
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise TypeError(f"{op}: axis must be an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{op}: axis {axis} is out of range for an input of shape {shape}")
    return int(axis) % ndim


def _short_rows(z: np.ndarray, axis: int) -> bool:
    """A 2-D z reduced along rows of at most 64 elements (logits (N, C) with few classes)."""
    return z.ndim == 2 and axis == 1 and z.shape[1] <= 64


def _max_along(z: np.ndarray, axis: int) -> np.ndarray:
    """z.max(axis, keepdims=True), fast for short rows too.

    NumPy reduces a short last axis one row at a time (about 9 µs for logits of shape
    (100, 10)); the maxima across the rows of the transposed copy take one vectorised pass
    (about 2.5 µs). Long rows are reduced directly.
    """
    if _short_rows(z, axis):
        return np.ascontiguousarray(z.T).max(axis=0)[:, np.newaxis]
    return z.max(axis=axis, keepdims=True)


def _log_softmax(z: np.ndarray, axis: int) -> np.ndarray:
    """log softmax(z) along ``axis``: (z − m) − log Σ exp(z − m), m the maximum.

    For short rows of a 2-D z (logits (N, C) with few classes) every step runs on the
    transposed copy (C, N), where the max and the sum over the classes are vectorised across
    the N rows; the result is returned as a (N, C) view of it.
    """
    if _short_rows(z, axis):
        st = np.array(z.T, order="C")          # (C, N): a copy of its own, worked on in place
        st -= np.maximum.reduce(st, axis=0)
        lse = np.add.reduce(np.exp(st), axis=0)
        st -= np.log(lse, out=lse)
        return st.T
    s = z - _max_along(z, axis)
    return s - np.log(np.exp(s).sum(axis=axis, keepdims=True))


class Softmax(Function):
    """Softmax along ``axis``: y_i = exp(x_i − m) / Σ_j exp(x_j − m), m = max_j x_j.

    dL/dx = y ⊙ (dL/dy − Σ_j dL/dy_j · y_j)      (the sum along ``axis``)

    Shapes: x (…) → y of the same shape. Smooth: no kinks. Saved: y.
    """

    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, x):
        x = np.asarray(x)
        axis = _axis("softmax", self.axis, x.ndim, x.shape)
        e = np.exp(x - _max_along(x, axis))
        e /= e.sum(axis=axis, keepdims=True)
        self.y, self.ax = e, axis
        return e

    def backward(self, dy):
        y = self.y
        return y * (dy - (dy * y).sum(axis=self.ax, keepdims=True))

    def backward_graph(self, dy):
        y = self.output
        return y * (dy - (dy * y).sum(axis=self.ax, keepdims=True))


class LogSoftmax(Function):
    """Log-softmax along ``axis``: y_i = (x_i − m) − log Σ_j exp(x_j − m), m = max_j x_j.

    dL/dx = dL/dy − softmax(x) · Σ_j dL/dy_j      (the sum along ``axis``; softmax(x) = eʸ)

    Shapes: x (…) → y of the same shape. Smooth: no kinks. Saved: y.
    """

    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, x):
        x = np.asarray(x)
        axis = _axis("log_softmax", self.axis, x.ndim, x.shape)
        self.y, self.ax = np.ascontiguousarray(_log_softmax(x, axis)), axis
        return self.y

    def backward(self, dy):
        return dy - np.exp(self.y) * dy.sum(axis=self.ax, keepdims=True)

    def backward_graph(self, dy):
        return dy - self.output.exp() * dy.sum(axis=self.ax, keepdims=True)


def _check_labels(z: np.ndarray, t: np.ndarray) -> None:
    op = "softmax_cross_entropy"
    if z.ndim != 2:
        raise ValueError(f"{op}: logits must be 2-D (N, C), got logits.shape={z.shape}")
    N, C = z.shape
    if N == 0:
        raise ValueError(f"{op}: the batch is empty (logits.shape={z.shape}): the mean loss "
                         f"is undefined")
    if t.ndim not in (1, 2):
        raise ValueError(f"{op}: labels must be class indices (N,) or one-hot rows (N, C); "
                         f"got t.shape={t.shape} for logits.shape={z.shape}")
    if t.shape[0] != N:
        raise ValueError(f"{op}: {t.shape[0]} labels for {N} rows of logits; "
                         f"logits.shape={z.shape}, t.shape={t.shape}")
    if t.ndim == 1:
        if t.dtype.kind not in "iu":
            raise ValueError(f"{op}: labels of shape (N,)={t.shape} are class indices and "
                             f"must be integers, got dtype {t.dtype}")
        # One pass: seen as unsigned, a negative index is huge, so the largest is ≥ C.
        unsigned = t.view(t.dtype.str.replace("i", "u")) if t.dtype.kind == "i" else t
        if int(np.maximum.reduce(unsigned)) >= C:
            low, high = int(t.min()), int(t.max())
            raise ValueError(f"{op}: class indices must lie in [0, C)=[0, {C}) for "
                             f"logits.shape={z.shape}; got labels from {low} to {high}")
    elif t.shape[1] != C:
        raise ValueError(f"{op}: one-hot labels have width {t.shape[1]} but the logits have "
                         f"C={C} classes; logits.shape={z.shape}, t.shape={t.shape}")
    elif t.dtype.kind not in "fiub":
        raise ValueError(f"{op}: one-hot labels must be numbers, got dtype {t.dtype}")


class SoftmaxCrossEntropy(Function):
    """Softmax cross-entropy, averaged over the batch (the textbook's SoftmaxWithLoss, fused).

    Forward: L = −(1/N) Σ_n Σ_c t[n, c] · log softmax(z[n])_c, with log softmax computed as
    (z − m) − log Σ exp(z − m) (never log of softmax): finite at logits of ±1e4. Class indices
    t (N,) stand for one-hot rows.

    Backward: dL/dz = (softmax(z) − t) · dL/dL₀ / N for one-hot t (or indices);
    for any label rows, (softmax(z) · Σ_c t[n, c] − t) · dL/dL₀ / N. The labels get None.

    Shapes: z (N, C); t (N,) integer class indices, or (N, C) one-hot (any rows of weights,
    e.g. probabilities, are accepted) → a 0-d loss of z's dtype. Smooth: no kinks.
    Saved: log softmax(z) (N, C) and the labels.
    """

    def forward(self, z, t):
        z, t = np.asarray(z), np.asarray(t)
        _check_labels(z, t)
        N = z.shape[0]
        logp = _log_softmax(z, axis=1)
        if t.ndim == 1:
            loss = -logp[np.arange(N), t].sum() / N
        else:
            t = t.astype(z.dtype, copy=False)   # float64 one-hot must not upcast float32 logits
            loss = -(t * logp).sum() / N
        self.logp, self.t = logp, t
        return np.asarray(loss, dtype=z.dtype)

    def backward(self, dy):
        logp, t = self.logp, self.t
        N = logp.shape[0]
        dz = np.exp(logp, order="C")            # softmax(z), a fresh array to work in
        if t.ndim == 1:
            dz[np.arange(N), t] -= 1
        else:
            dz *= t.sum(axis=1, keepdims=True)
            dz -= t
        dz *= dy / N
        return dz, None

    def backward_graph(self, dy):
        if not self.needs_input_grad[0]:
            return None, None
        t = self.t
        N = t.shape[0]
        p = LogSoftmax(axis=1)(self.inputs[0]).exp()       # softmax(z), recorded
        if t.ndim == 1:
            onehot = np.zeros(p.shape, p.dtype)
            onehot[np.arange(N), t] = 1
            dz = p - onehot
        else:
            dz = p * t.sum(axis=1, keepdims=True) - t
        return dz * (dy / N), None
