"""More reductions over axes: min, variance, standard deviation, log-sum-exp.

``axis`` and ``keepdims`` mean what they mean in NumPy (and in ``sum``/``mean``/``max``).
"""

from __future__ import annotations

import math

import numpy as np

from minigrad.function import Function
from minigrad.ops.reduction import normalize_axis


def _kept(dy: np.ndarray, axes, keepdims: bool, shape) -> np.ndarray:
    """dL/dy with the reduced axes kept as size 1 (so it broadcasts against x)."""
    if keepdims:
        return dy
    return dy.reshape([1 if (axes is None or i in axes) else n for i, n in enumerate(shape)])


class Min(Function):
    """y = min_axis x.    dL/dx = dL/dy · 1[x == y] / (number of minima)

    Ties share the gradient equally (as ``Tensor.max`` and ``torch.amin`` do).
    Shapes: x (…) → x without the reduced axes (kept as 1 with keepdims). Saved: the mask of
    minima and their count.
    """

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        if x.size == 0:
            raise ValueError(f"min: the tensor is empty (shape {x.shape})")
        self.axes = normalize_axis("min", self.axis, x.ndim, x.shape)
        y = x.min(axis=self.axes, keepdims=True)
        self.mask = x == y
        self.count = self.mask.sum(axis=self.axes, keepdims=True).astype(x.dtype)
        if self.keepdims:
            return np.asarray(y)
        return np.asarray(y.reshape([n for i, n in enumerate(x.shape)
                                     if self.axes is not None and i not in self.axes]))

    def backward(self, dy):
        return self.mask * (_kept(dy, self.axes, self.keepdims, self.mask.shape) / self.count)


class Var(Function):
    """y = Σ_axis (x − μ)² / (n − ddof), μ the mean along the axes, n the elements per mean.

    dL/dx = dL/dy · 2 (x − μ) / (n − ddof)   (the μ term vanishes: Σ (x − μ) = 0)

    Shapes: x (…) → x without the reduced axes (kept as 1 with keepdims). Smooth.
    Saved: x − μ. n − ddof ≤ 0 is an error (NumPy would give inf or nan with a warning).
    """

    float_inputs = True

    def __init__(self, axis=None, keepdims=False, ddof=0):
        self.axis, self.keepdims, self.ddof = axis, keepdims, ddof

    def forward(self, x):
        self.axes = normalize_axis("var", self.axis, x.ndim, x.shape)
        n = x.size if self.axes is None else math.prod(x.shape[a] for a in self.axes)
        self.dof = n - self.ddof
        if self.dof <= 0:
            op = type(self).__name__.lower()
            raise ValueError(f"{op}: ddof={self.ddof} leaves no degrees of freedom for {n} "
                             f"element(s) per variance (x.shape={x.shape}, axis={self.axis})")
        self.d = x - x.mean(axis=self.axes, keepdims=True)
        y = (self.d * self.d).sum(axis=self.axes, keepdims=self.keepdims) / self.dof
        return np.asarray(y, dtype=x.dtype)

    def backward(self, dy):
        scale = dy.dtype.type(2 / self.dof)
        return _kept(dy, self.axes, self.keepdims, self.d.shape) * scale * self.d


class LogSumExp(Function):
    """y = log Σ_axis exp(x), computed as m + log Σ exp(x − m), m the maximum (no overflow).

    dL/dx = dL/dy · exp(x − y) = dL/dy · softmax(x) along the axes.

    Shapes: x (…) → x without the reduced axes (kept as 1 with keepdims). Smooth. Where every
    element is −∞ the result is −∞ (m is taken as 0 there) and the gradient 0.
    Saved: softmax(x).
    """

    float_inputs = True

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        if x.size == 0:
            raise ValueError(f"logsumexp: the tensor is empty (shape {x.shape})")
        self.axes = normalize_axis("logsumexp", self.axis, x.ndim, x.shape)
        m = x.max(axis=self.axes, keepdims=True)
        m = np.where(np.isfinite(m), m, x.dtype.type(0))
        with np.errstate(divide="ignore"):
            y = m + np.log(np.exp(x - m).sum(axis=self.axes, keepdims=True))
        # softmax(x) = exp(x − y); a row of −∞ has y = −∞ and gets 0 (not exp(−∞ + ∞) = nan).
        self.p = np.exp(x - np.where(np.isfinite(y), y, x.dtype.type(0)))
        if self.keepdims:
            return np.asarray(y)
        return np.asarray(y.reshape([n for i, n in enumerate(x.shape)
                                     if self.axes is not None and i not in self.axes]))

    def backward(self, dy):
        return _kept(dy, self.axes, self.keepdims, self.p.shape) * self.p



class Std(Var):
    """y = sqrt(Σ_axis (x − μ)² / (n − ddof)), the standard deviation.

    dL/dx = dL/dy · (x − μ) / ((n − ddof) · y); where y = 0 (no spread, the kink of sqrt) the
    gradient is 0, as in PyTorch. Shapes as Var. Saved: x − μ and y (kept dims).
    """

    def forward(self, x):
        self.y = np.sqrt(super().forward(x))
        return self.y

    def backward(self, dy):
        y = _kept(self.y, self.axes, self.keepdims, self.d.shape)
        safe = np.where(y == 0, y.dtype.type(1), y)
        g = _kept(dy, self.axes, self.keepdims, self.d.shape) * (y != 0) / (self.dof * safe)
        return g * self.d
