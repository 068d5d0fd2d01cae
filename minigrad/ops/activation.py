"""Elementwise activations: ReLU, Sigmoid, Tanh.

Each saves its output y, from which its derivative follows (as in the textbook's layers), and
each stays in the input's float dtype. Each keeps the input's memory layout: y and dL/dx are
allocated by ``parallel.empty_like`` in x's order of axes (C order for a C-contiguous x,
channels-last for the channels-last view a convolution may return), so that the op reads and writes
memory in one sweep, split over the threads like a contiguous array, and hands the next op the
layout it got; an incoming dL/dy in another layout is still read correctly, by NumPy's strides.
Masks are applied by multiplying with a boolean array,
never with ``np.where`` or ``copyto(where=...)``: on a random mask those branch on every
element and run several times slower.
"""

from __future__ import annotations

import numpy as np

from minigrad.function import Function
from minigrad.parallel import elementwise, empty_like


def _zero(x: np.ndarray):
    """0 as a scalar of x's dtype, so float32 stays float32."""
    return x.dtype.type(0)


def _float(x: np.ndarray) -> np.dtype:
    """The dtype of a smooth function's result: x's own when float, else NumPy's choice."""
    return np.result_type(x.dtype, np.float16) if x.dtype.kind != "f" else x.dtype


class ReLU(Function):
    """y = max(x, 0).    dL/dx = dL/dy · 1[y > 0]

    Shapes: any, y like x, laid out like x; dL/dx laid out like x too. At the kink x = 0 the
    gradient is 0 (as in PyTorch).
    Saved: y; its positive entries are exactly where x > 0.
    """

    def forward(self, x):
        if x.size <= _SMALL and x.flags.c_contiguous:
            self.y = np.maximum(x, _zeros(x))
        else:
            self.y = elementwise(_relu, empty_like(x), x)
        return self.y

    def backward(self, dy):
        return elementwise(_relu_grad, empty_like(self.y, np.result_type(dy, self.y)),
                           self.y, dy)

    def backward_graph(self, dy):
        return dy * (self.y > 0)            # the mask is a constant: ReLU'' = 0 off the kink


def _relu(y, x):
    np.maximum(x, _zero(x), out=y)


# NumPy's maximum of two arrays runs vector loops that its maximum with a scalar lacks: on
# C-contiguous arrays that fit in cache it is twice as fast against an array of zeros. On big
# arrays the extra array to read costs more than it saves, so they keep the scalar, as do
# arrays in other layouts (the zeros are C-contiguous).
_SMALL = 1 << 16
_ZEROS: dict = {}


def _zeros(x: np.ndarray) -> np.ndarray:
    """Read-only zeros of x's (small) shape and dtype, kept for the next call."""
    key = (x.shape, x.dtype)
    zeros = _ZEROS.get(key)
    if zeros is None:
        if len(_ZEROS) >= 16:               # a few shapes recur; never keep many
            _ZEROS.clear()
        zeros = np.zeros(x.shape, x.dtype)
        zeros.flags.writeable = False
        _ZEROS[key] = zeros
    return zeros


def _relu_grad(dx, y, dy):
    # The mask straight into the float buffer (1.0 where y > 0), then one in-place product:
    # faster than multiplying dy by a boolean array, which casts it chunk by chunk.
    np.greater(y, 0, out=dx, casting="unsafe")
    dx *= dy


class Sigmoid(Function):
    """y = 1 / (1 + e⁻ˣ).    dL/dx = dL/dy · y · (1 − y)

    Shapes: any, y and dL/dx like x (and laid out like x). Smooth: no kinks. Saved: y.
    Computed as y = exp(−log(1 + e⁻ˣ)) with log(1 + e⁻ˣ) = ``np.logaddexp(0, −x)``, which
    never overflows: finite at x = ±1e4, and accurate in relative terms for very negative x
    too (where 1/(1 + e⁻ˣ) would overflow e⁻ˣ and (1 + tanh(x/2))/2 would cancel).
    """

    float_inputs = True

    def forward(self, x):
        self.y = elementwise(_sigmoid, empty_like(x, _float(x)), x)
        return self.y

    def backward(self, dy):
        return elementwise(_sigmoid_grad, empty_like(self.y, np.result_type(dy, self.y)),
                           self.y, dy)

    def backward_graph(self, dy):
        y = self.output
        return dy * ((1 - y) * y)


def _sigmoid(y, x):
    np.logaddexp(_zero(y), -x, out=y)
    np.negative(y, out=y)
    np.exp(y, out=y)


def _sigmoid_grad(dx, y, dy):
    np.subtract(1, y, out=dx)
    dx *= y
    dx *= dy


class Tanh(Function):
    """y = tanh x.    dL/dx = dL/dy · (1 − y²)

    Shapes: any, y and dL/dx like x (and laid out like x). Smooth: no kinks; np.tanh
    saturates to ±1 without overflow. Saved: y.
    """

    float_inputs = True

    def forward(self, x):
        self.y = elementwise(_tanh, empty_like(x, _float(x)), x)
        return self.y

    def backward(self, dy):
        return elementwise(_tanh_grad, empty_like(self.y, np.result_type(dy, self.y)),
                           self.y, dy)

    def backward_graph(self, dy):
        y = self.output
        return dy * (1 - y * y)


def _tanh(y, x):
    np.tanh(x, out=y)


def _tanh_grad(dx, y, dy):
    np.multiply(y, y, out=dx)
    np.subtract(1, dx, out=dx)
    dx *= dy
