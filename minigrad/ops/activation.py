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

from minigrad.cache import BoundedCache
from minigrad.function import Function
from minigrad.parallel import _memory_order, elementwise, empty_like


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
        if x.size <= _CHUNK:                    # one chunk (small batches)
            order, inverse, zeros = _small_plan(x)
            if order is None:                   # C order, or no single block of memory
                self.y = np.maximum(x, zeros)   # laid out like x, as both inputs are
            else:                               # one block in another order: channels last
                self.y = np.maximum(x.transpose(order), zeros).transpose(inverse)
            return self.y
        y = empty_like(x)
        if x.flags.c_contiguous:
            elementwise(_relu_flat, y.reshape(-1), x.reshape(-1))
        else:
            order = _memory_order(x)            # one run in memory (channels last, ...)?
            if order is not None and y.transpose(order).flags.c_contiguous:
                elementwise(_relu_flat, y.transpose(order).reshape(-1),
                            x.transpose(order).reshape(-1))
            else:
                np.maximum(x, _zero(x), out=y)
        self.y = y
        return y

    def backward(self, dy):
        return elementwise(_relu_grad, empty_like(self.y, np.result_type(dy, self.y)),
                           self.y, dy)

    def backward_graph(self, dy):
        return dy * (self.y > 0)            # the mask is a constant: ReLU'' = 0 off the kink


def _relu_flat(y, x):
    """y = max(x, 0) on flat runs, a chunk at a time against the block of zeros."""
    zeros = _zeros(x.dtype)
    n = x.shape[0]
    if n <= _CHUNK:
        np.maximum(x, zeros[:n], out=y)
        return
    for lo in range(0, n, _CHUNK):
        hi = min(n, lo + _CHUNK)
        np.maximum(x[lo:hi], zeros[:hi - lo], out=y[lo:hi])


# NumPy's maximum of two arrays runs vector loops that its maximum with a scalar lacks: two
# to three times as fast, small arrays and large (docs/ops.md, "ReLU"). ReLU therefore takes
# the maximum against a block of zeros, ``_CHUNK`` elements a chunk (a block that stays in
# the cache, not an array of zeros as large as x); x in no single memory order keeps the
# scalar.
_CHUNK = 1 << 16
_ZEROS: dict = {}


def _zeros(dtype) -> np.ndarray:
    """Read-only zeros of ``dtype``, ``_CHUNK`` long, made once per dtype."""
    zeros = _ZEROS.get(dtype)
    if zeros is None:
        zeros = np.zeros(_CHUNK, dtype)
        zeros.flags.writeable = False
        _ZEROS[dtype] = zeros
    return zeros


def _small_plan(x: np.ndarray) -> tuple:
    """How a small x (one chunk at most) meets the block of zeros: (order, inverse, zeros).

    - x in C order (or Fortran order): (None, None, the block seen in x's shape, in x's
      order); ``maximum(x, zeros)``.
    - x filling one block of memory in another order of its axes (a channels-last view, a
      transpose): (order, inverse, the block seen in x's shape permuted by ``order``), C
      order; ``maximum(x.transpose(order), zeros).transpose(inverse)``. Both operands are
      then C-contiguous, and NumPy runs its loop straight away instead of first building an
      iterator over the strided arrays (about 0.7 µs of a 3 µs call); y is the transpose of
      a C-contiguous array, so it has x's strides.
    - any other x (steps, negative steps, a broadcast): (None, None, the block laid out in
      the order of x's strides, outermost first); NumPy's iterator follows that order for
      both operands, where zeros in C order would cross x's order (several times slower on
      a transposed view).

    The plan is kept for the next call with the same shape, strides and dtype.
    """
    key = (x.shape, x.strides, x.dtype)
    plan = _SHAPED.get(key)
    if plan is not None:
        return plan
    flat = _zeros(x.dtype)[:x.size]
    if x.flags.c_contiguous:
        plan = (None, None, flat.reshape(x.shape))
    elif x.flags.f_contiguous:              # NumPy's straight loop takes this order too
        plan = (None, None, flat.reshape(x.shape[::-1]).T)
    else:
        order = tuple(sorted(range(x.ndim), key=lambda i: -abs(x.strides[i])))
        permuted = flat.reshape([x.shape[i] for i in order])
        inverse = tuple(int(i) for i in np.argsort(order))
        if x.transpose(order).flags.c_contiguous:
            plan = (order, inverse, permuted)
        else:
            plan = (None, None, permuted.transpose(inverse))
    _SHAPED.put(key, plan)
    return plan


_SHAPED = BoundedCache(max_bytes=None, max_entries=16)     # a few shapes recur


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
