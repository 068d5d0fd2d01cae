"""Reductions over axes: sum, mean, max."""

from __future__ import annotations

import math

import numpy as np

from minigrad.function import Function


def normalize_axis(op: str, axis, ndim: int, shape) -> tuple[int, ...] | None:
    """``axis`` (None, an int or a tuple of ints, negatives allowed) as a sorted tuple.

    >>> normalize_axis("sum", -1, 3, (2, 3, 4))
    (2,)
    """
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, (int, np.integer)) else axis
    if not isinstance(axes, (tuple, list)):
        raise ValueError(f"{op}: axis must be an int or a tuple of ints, got {axis!r}")
    out = []
    for a in axes:
        if not isinstance(a, (int, np.integer)) or isinstance(a, bool):
            raise ValueError(f"{op}: axis must be an int or a tuple of ints, got {axis!r}")
        if not -ndim <= a < ndim:
            raise ValueError(f"{op}: axis {a} is out of range for a tensor of shape {shape}")
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: axis {axis!r} repeats an axis (shape {shape})")
    return tuple(sorted(out))


def _expand_back(dy: np.ndarray, axes, keepdims: bool, shape) -> np.ndarray:
    """dL/dy reshaped to keep the reduced axes as size 1, then broadcast to ``shape``."""
    if not keepdims:
        dy = dy.reshape([1 if (axes is None or i in axes) else n for i, n in enumerate(shape)])
    return np.broadcast_to(dy, shape)


class Sum(Function):
    """y = Σ_axis x.    dL/dx = dL/dy broadcast back over the summed axes"""

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.axes = normalize_axis("sum", self.axis, x.ndim, x.shape)
        self.x_shape = x.shape
        return np.asarray(x.sum(axis=self.axes, keepdims=self.keepdims))

    def backward(self, dy):
        return _expand_back(dy, self.axes, self.keepdims, self.x_shape)


class Mean(Function):
    """y = Σ_axis x / n.    dL/dx = dL/dy / n broadcast back (n = elements per mean)"""

    float_inputs = True

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.axes = normalize_axis("mean", self.axis, x.ndim, x.shape)
        self.x_shape = x.shape
        self.n = x.size if self.axes is None else math.prod(x.shape[a] for a in self.axes)
        return np.asarray(x.mean(axis=self.axes, keepdims=self.keepdims))

    def backward(self, dy):
        return _expand_back(dy / dy.dtype.type(self.n), self.axes, self.keepdims, self.x_shape)


class Max(Function):
    """y = max_axis x.    dL/dx = dL/dy · 1[x == y] / (number of maxima)

    Ties share the gradient equally (as ``torch.amax`` does).
    """

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        if x.size == 0:
            raise ValueError(f"max: the tensor is empty (shape {x.shape})")
        self.axes = normalize_axis("max", self.axis, x.ndim, x.shape)
        y = x.max(axis=self.axes, keepdims=True)
        self.mask = x == y
        self.count = self.mask.sum(axis=self.axes, keepdims=True).astype(x.dtype)
        return np.asarray(y if self.keepdims else y.reshape(
            [n for i, n in enumerate(x.shape) if self.axes is not None and i not in self.axes]))

    def backward(self, dy):
        shape = self.mask.shape
        if not self.keepdims:
            dy = dy.reshape([1 if (self.axes is None or i in self.axes) else n
                             for i, n in enumerate(shape)])
        return self.mask * (dy / self.count)
