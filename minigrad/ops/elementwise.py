"""Elementwise ops beyond arithmetic: abs, clip, sin, cos, maximum, minimum, where, and the
activations leaky_relu, elu, softplus.

Each keeps the input's float dtype, and its memory layout: NumPy's ufuncs and ``np.where``
allocate their results in the order of their inputs' strides (``order="K"``), so a channels-last
x gives a channels-last y. Binary ops broadcast like NumPy and sum each gradient back
to its input's shape with ``unbroadcast``. At kinks the gradient is PyTorch's choice, stated in
each docstring.

Each op also has ``backward_graph``, the same gradient as recorded ops (for
``create_graph=True``): the smooth ops differentiate their own derivative (sin's is cos, ELU's
is αeˣ, softplus's is σ(βx)); the piecewise-linear ones multiply dL/dy by the same constant mask
or slope as ``backward``, so their second derivative is 0 off the kinks and every choice at a
kink or tie is the first-order one.
"""

from __future__ import annotations

import numpy as np

from minigrad.function import Function, unbroadcast
from minigrad.ops.activation import Sigmoid
from minigrad.ops.join import sum_to


def _broadcast_shape(op: str, *shapes: tuple[int, ...]) -> tuple[int, ...]:
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(f"{op}: shapes {', '.join(str(s) for s in shapes)} cannot be "
                         f"broadcast together") from None


class Abs(Function):
    """y = |x|.    dL/dx = dL/dy · sign(x)    d²y/dx² = 0 (x ≠ 0)

    Shapes: any, y like x. At the kink x = 0 the gradient is 0 (sign(0) = 0, as in PyTorch).
    Recorded: dy · sign(x), sign(x) a constant. Saved: x.
    """

    float_inputs = True

    def forward(self, x):
        self.x = x
        return np.abs(x)

    def backward(self, dy):
        return dy * np.sign(self.x)

    def backward_graph(self, dy):
        return dy * np.sign(self.x)


class Clip(Function):
    """y = min(max(x, lo), hi) (either bound may be None).

    dL/dx = dL/dy · 1[lo ≤ x ≤ hi]: at x equal to a bound the gradient passes (as
    ``torch.clamp``). d²y/dx² = 0 off the bounds. Shapes: any, y like x; the bounds are
    numbers. Recorded: dy times the mask, a constant. Saved: the mask.
    """

    float_inputs = True

    def __init__(self, min=None, max=None):  # noqa: A002  (PyTorch's and NumPy's names)
        if min is None and max is None:
            raise ValueError("clip: give min, max or both (both are None)")
        if min is not None and max is not None and min > max:
            raise ValueError(f"clip: min={min} is greater than max={max}")
        self.min, self.max = min, max

    def forward(self, x):
        lo = None if self.min is None else x.dtype.type(self.min)
        hi = None if self.max is None else x.dtype.type(self.max)
        # Comparisons allocate in x's memory layout (NumPy's order "K"), as np.clip does: a
        # channels-last x gives a channels-last y and mask, and dL/dx follows dL/dy's layout.
        if lo is not None and hi is not None:
            self.mask = (x >= lo) & (x <= hi)
        else:
            self.mask = x >= lo if lo is not None else x <= hi
        return np.clip(x, lo, hi)

    def backward(self, dy):
        return dy * self.mask

    def backward_graph(self, dy):
        return dy * self.mask.astype(dy.dtype)


class Sin(Function):
    """y = sin x.    dL/dx = dL/dy · cos x    (recorded: d²y/dx² = −sin x follows from Cos)

    Shapes: any. Smooth. Saved: x.
    """

    float_inputs = True

    def forward(self, x):
        self.x = x
        return np.sin(x)

    def backward(self, dy):
        return dy * np.cos(self.x)

    def backward_graph(self, dy):
        return dy * self.inputs[0].cos()


class Cos(Function):
    """y = cos x.    dL/dx = −dL/dy · sin x    (recorded: d²y/dx² = −cos x follows from Sin)

    Shapes: any. Smooth. Saved: x.
    """

    float_inputs = True

    def forward(self, x):
        self.x = x
        return np.cos(x)

    def backward(self, dy):
        return -dy * np.sin(self.x)

    def backward_graph(self, dy):
        return -dy * self.inputs[0].sin()


class Maximum(Function):
    """z = max(x, y) elementwise, broadcast like NumPy.

    dL/dx = dL/dz · (1[x > y] + ½·1[x = y])    dL/dy = dL/dz · (1[y > x] + ½·1[x = y])

    Ties split the gradient equally (as ``torch.maximum`` and ``Tensor.max`` do); each gradient
    is summed back to its input's shape. Piecewise linear: d²z = 0 off the ties; the recorded
    gradient is sum_to(dL/dz · m, shape) with the same constant weights m (1, ½ or 0) as the
    first order. Saved: the two masks.
    """

    _pick, _combine, _name = staticmethod(np.greater), staticmethod(np.maximum), "maximum"

    def forward(self, x, y):
        self.x_shape, self.y_shape = np.shape(x), np.shape(y)
        _broadcast_shape(self._name, self.x_shape, self.y_shape)
        self.x_wins, self.tie = self._pick(x, y), x == y
        return self._combine(x, y)

    def backward(self, dz):
        need_x, need_y = self.needs_input_grad
        half = dz * dz.dtype.type(0.5) * self.tie
        dx = unbroadcast(dz * self.x_wins + half, self.x_shape) if need_x else None
        dy = (unbroadcast(dz * ~(self.x_wins | self.tie) + half, self.y_shape)
              if need_y else None)
        return dx, dy

    def backward_graph(self, dz):
        need_x, need_y = self.needs_input_grad
        half = self.tie * dz.dtype.type(0.5)
        dx = sum_to(dz * (self.x_wins + half), self.x_shape) if need_x else None
        dy = (sum_to(dz * (~(self.x_wins | self.tie) + half), self.y_shape)
              if need_y else None)
        return dx, dy


class Minimum(Maximum):
    """z = min(x, y) elementwise, broadcast like NumPy.

    dL/dx = dL/dz · (1[x < y] + ½·1[x = y])    dL/dy = dL/dz · (1[y < x] + ½·1[x = y])

    Ties split the gradient equally (as ``torch.minimum``). Maximum's backward with the
    comparison reversed.
    """

    _pick, _combine, _name = staticmethod(np.less), staticmethod(np.minimum), "minimum"


class Where(Function):
    """z = x where condition else y, all three broadcast together.

    dL/dx = dL/dz · 1[condition]    dL/dy = dL/dz · 1[¬condition]    (summed back to each
    shape). The condition is a boolean array (input 0) and gets no gradient. Linear in (x, y)
    for a fixed condition; recorded: Where(condition, dL/dz, 0) and Where(condition, 0, dL/dz)
    summed back. Saved: the condition.
    """

    def forward(self, condition, x, y):
        condition = np.asarray(condition)
        if condition.dtype != bool:
            raise TypeError(f"where: condition must be a boolean array, got dtype "
                            f"{condition.dtype} (shape {condition.shape}); compare first, "
                            f"e.g. where(x > 0, x, y)")
        self.x_shape, self.y_shape = np.shape(x), np.shape(y)
        _broadcast_shape("where", condition.shape, self.x_shape, self.y_shape)
        self.condition = condition
        return np.where(condition, x, y)

    def backward(self, dz):
        _, need_x, need_y = self.needs_input_grad
        zero = dz.dtype.type(0)
        return (None,
                unbroadcast(np.where(self.condition, dz, zero), self.x_shape) if need_x else None,
                unbroadcast(np.where(self.condition, zero, dz), self.y_shape) if need_y else None)

    def backward_graph(self, dz):
        _, need_x, need_y = self.needs_input_grad
        zero = np.zeros((), dz.dtype)
        return (None,
                sum_to(Where()(self.condition, dz, zero), self.x_shape) if need_x else None,
                sum_to(Where()(self.condition, zero, dz), self.y_shape) if need_y else None)


class LeakyReLU(Function):
    """y = x for x > 0, a·x otherwise (a = negative_slope).

    dL/dx = dL/dy · (1 if x > 0 else a); at x = 0 the slope is a (as in PyTorch).
    d²y/dx² = 0 off the kink; recorded: dy times the slopes (1 or a), a constant.
    Shapes: any. Saved: the mask x > 0.
    """

    float_inputs = True

    def __init__(self, negative_slope=0.01):
        self.negative_slope = float(negative_slope)

    def forward(self, x):
        self.positive = x > 0
        return np.where(self.positive, x, x * x.dtype.type(self.negative_slope))

    def backward(self, dy):
        return np.where(self.positive, dy, dy * dy.dtype.type(self.negative_slope))

    def backward_graph(self, dy):
        a = dy.dtype.type(self.negative_slope)
        return dy * np.where(self.positive, dy.dtype.type(1), a)


class ELU(Function):
    """y = x for x > 0, α·(eˣ − 1) otherwise (computed with expm1).

    dL/dx = dL/dy for x > 0, dL/dy · α·eˣ otherwise (not y + α, which cancels for very
    negative x); at x = 0 the gradient is α (PyTorch's choice).
    d²y/dx² = 0 for x > 0, α·eˣ otherwise; recorded: dy · where(x > 0, 1, α·exp(min(x, 0))),
    with min(x, 0) as where(x > 0, 0, x) so that no exp(x) of a large x is formed.
    Shapes: any. Saved: the mask x > 0 and min(x, 0).
    """

    float_inputs = True

    def __init__(self, alpha=1.0):
        self.alpha = float(alpha)

    def forward(self, x):
        alpha = x.dtype.type(self.alpha)
        self.positive = x > 0
        self.negative_part = np.minimum(x, 0)
        return np.where(self.positive, x, alpha * np.expm1(self.negative_part))

    def backward(self, dy):
        alpha = dy.dtype.type(self.alpha)
        return np.where(self.positive, dy, dy * alpha * np.exp(self.negative_part))

    def backward_graph(self, dy):
        x = self.inputs[0]
        zero, one = np.zeros((), x.dtype), np.ones((), x.dtype)
        negative_part = Where()(self.positive, zero, x)
        return dy * Where()(self.positive, one, negative_part.exp() * self.alpha)


class Softplus(Function):
    """y = (1/β) · log(1 + e^{βx}), or y = x where βx > threshold (PyTorch's numerics).

    dL/dx = dL/dy · σ(βx), or dL/dy where βx > threshold. log(1 + e^{βx}) is computed as
    ``np.logaddexp(0, βx)`` and σ as in Sigmoid, so neither overflows for any threshold.
    d²y/dx² = β·σ(βx)(1 − σ(βx)), or 0 where βx > threshold; recorded:
    dy · where(βx > threshold, 1, sigmoid(βx)).
    Shapes: any. Smooth (a step of at most e^{−threshold} at the threshold). Saved: βx.
    """

    float_inputs = True

    def __init__(self, beta=1.0, threshold=20.0):
        if beta == 0:
            raise ValueError("softplus: beta must not be 0")
        self.beta, self.threshold = float(beta), float(threshold)

    def forward(self, x):
        beta = x.dtype.type(self.beta)
        self.bx = bx = x * beta
        self.linear = bx > self.threshold
        return np.where(self.linear, x, np.logaddexp(x.dtype.type(0), bx) / beta)

    def backward(self, dy):
        sigma = np.exp(-np.logaddexp(self.bx.dtype.type(0), -self.bx))
        return np.where(self.linear, dy, dy * sigma)

    def backward_graph(self, dy):
        x = self.inputs[0]
        sigma = Sigmoid()(x * self.beta)
        return dy * Where()(self.linear, np.ones((), sigma.dtype), sigma)
