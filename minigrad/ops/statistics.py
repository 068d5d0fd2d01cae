"""More reductions over axes: min, variance, standard deviation, log-sum-exp.

``axis`` and ``keepdims`` mean what they mean in NumPy (and in ``sum``/``mean``/``max``).
Each op has ``backward_graph``, its gradient as recorded ops, so every order of derivative
can be taken (``create_graph=True``).
"""

from __future__ import annotations

import math

import numpy as np

from minigrad.function import Function
from minigrad.ops.reduction import normalize_axis


def _kept(dy: np.ndarray, axes, keepdims: bool, shape) -> np.ndarray:
    """dL/dy with the reduced axes kept as size 1 (so it broadcasts against x).

    An array or a Tensor (whose reshape is recorded)."""
    if keepdims:
        return dy
    return dy.reshape([1 if (axes is None or i in axes) else n for i, n in enumerate(shape)])


class Min(Function):
    """y = min_axis x.    dL/dx = dL/dy · 1[x == y] / (number of minima)

    Ties share the gradient equally (as ``Tensor.max`` and ``torch.amin`` do).
    Piecewise linear: recorded, dL/dy / count times the same constant mask, so the second
    derivative is 0 off the ties (the minimum's position does not move).
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

    def backward_graph(self, dy):
        return _kept(dy, self.axes, self.keepdims, self.mask.shape) / self.count * self.mask


class Var(Function):
    """y = Σ_axis (x − μ)² / (n − ddof), μ the mean along the axes, n the elements per mean.

    dL/dx = dL/dy · 2 (x − μ) / (n − ddof)   (the μ term vanishes: Σ (x − μ) = 0)
    d²y/dx_i dx_j = 2 (δ_ij − 1/n) / (n − ddof); recorded: the same product, with x − μ
    recorded as (x − r) − mean(x − r).

    The deviations are taken from x − r, r the first element along the axes (a constant: a
    shift changes neither y nor its derivatives). A row of equal values then gives deviations
    of exactly 0, hence a variance of exactly 0, where x − mean(x) would leave rounding noise
    (mean(x) is not always exactly the common value); Std's derivatives at such a row rely on
    it. Shapes: x (…) → x without the reduced axes (kept as 1 with keepdims). Smooth.
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
        self.d = _deviations(x, self.axes)
        y = (self.d * self.d).sum(axis=self.axes, keepdims=self.keepdims) / self.dof
        return np.asarray(y, dtype=x.dtype)

    def backward(self, dy):
        scale = dy.dtype.type(2 / self.dof)
        return _kept(dy, self.axes, self.keepdims, self.d.shape) * scale * self.d

    def backward_graph(self, dy):
        d = _deviations(self.inputs[0], self.axes)
        scale = dy.dtype.type(2 / self.dof)
        return _kept(dy, self.axes, self.keepdims, d.shape) * scale * d


def _deviations(x, axes):
    """x − mean(x) along ``axes``, computed as (x − r) − mean(x − r), r = x's first element
    along the axes (a constant). An array, or a recorded Tensor for a Tensor x."""
    data = x if isinstance(x, np.ndarray) else x.data
    first = tuple(slice(0, 1) if axes is None or i in axes else slice(None)
                  for i in range(data.ndim))
    shifted = x - np.asarray(data[first])
    return shifted - shifted.mean(axis=axes, keepdims=True)


class LogSumExp(Function):
    """y = log Σ_axis exp(x), computed as m + log Σ exp(x − m), m the maximum (no overflow).

    dL/dx = dL/dy · exp(x − y) = dL/dy · softmax(x) along the axes.

    d²y/dx_i dx_j = p_i (δ_ij − p_j), p = softmax(x); recorded: dL/dy · exp(x − y) with y
    the output Tensor, so the next order follows from Exp and the op itself.

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

    def backward_graph(self, dy):
        from minigrad.ops.elementwise import Where

        shape = self.p.shape
        y = _kept(self.output, self.axes, self.keepdims, shape)
        finite = np.isfinite(y.data)
        if not finite.all():              # a row of −∞: exp(x − 0) = 0 there, as above
            y = Where()(finite, y, np.zeros((), y.dtype))
        return _kept(dy, self.axes, self.keepdims, shape) * (self.inputs[0] - y).exp()


class Std(Var):
    """y = sqrt(Σ_axis (x − μ)² / (n − ddof)), the standard deviation.

    dL/dx = dL/dy · (x − μ) / ((n − ddof) · y); where y = 0 (no spread, the kink of sqrt) the
    gradient is 0, as in PyTorch. Recorded: the same quotient with x − μ as in Var and y the
    output Tensor (through where(y ≠ 0, y, 1)), so the next order is
    d²y/dx_i dx_j = ((δ_ij − 1/n) − (x_i − μ)(x_j − μ) / ((n − ddof) y²)) / ((n − ddof) y),
    and 0 at y = 0: a row of equal values has deviations of exactly 0 (see Var), so it sits
    exactly on that choice, not a rounding error away from it.
    Shapes as Var. Saved: x − μ and y (kept dims).
    """

    def forward(self, x):
        self.y = np.sqrt(super().forward(x))
        return self.y

    def backward(self, dy):
        y = _kept(self.y, self.axes, self.keepdims, self.d.shape)
        safe = np.where(y == 0, y.dtype.type(1), y)
        g = _kept(dy, self.axes, self.keepdims, self.d.shape) * (y != 0) / (self.dof * safe)
        return g * self.d

    def backward_graph(self, dy):
        from minigrad.ops.elementwise import Where

        shape = self.d.shape
        d = _deviations(self.inputs[0], self.axes)
        y = _kept(self.output, self.axes, self.keepdims, shape)
        spread = _kept(self.y, self.axes, self.keepdims, shape) != 0
        safe = Where()(spread, y, np.ones((), y.dtype))
        g = _kept(dy, self.axes, self.keepdims, shape) * spread / (self.dof * safe)
        return g * d
