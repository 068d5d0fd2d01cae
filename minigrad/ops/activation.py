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
    Computed from z = e^{−|x|} ∈ (0, 1], which never overflows: y = 1/(1 + z) for x ≥ 0 and
    z/(1 + z) for x < 0, both as max(z, 1[x ≥ 0]) / (1 + z) (no mask, no branch). Finite at
    x = ±1e4, and accurate in relative terms for very negative x too (where 1/(1 + e⁻ˣ) would
    overflow e⁻ˣ and (1 + tanh(x/2))/2 would cancel): at most 3.4 ulp from the exact value
    in float32 (every 97th float32), 2.3 ulp in float64, subnormal results included
    (measured against a long-double reference; docs/ops.md, "Sigmoid, ELU, softplus"). The passes
    run on runs of 256 KiB that stay in the cache (``in_runs``). The plain
    formulation, exp(−log(1 + e⁻ˣ)) with ``np.logaddexp`` (9 times slower here), is
    ``sigmoid_reference``; a test holds the two together.
    """

    float_inputs = True

    def forward(self, x):
        self.y = elementwise(_SIGMOID, empty_like(x, _float(x)), x)
        return self.y

    def backward(self, dy):
        return elementwise(_SIGMOID_GRAD, empty_like(self.y, np.result_type(dy, self.y)),
                           self.y, dy)

    def backward_graph(self, dy):
        y = self.output
        return dy * ((1 - y) * y)


def sigmoid_reference(x: np.ndarray) -> np.ndarray:
    """σ(x) = exp(−log(1 + e⁻ˣ)), the log by ``np.logaddexp(0, −x)``: Sigmoid's plain twin."""
    return np.exp(-np.logaddexp(x.dtype.type(0), -x))


def sigmoid_of(y, z, h, x):
    """y = σ(x), leaving z = e^{−|x|} behind; h is scratch. Arrays of one shape.

    y = max(z, 1[x ≥ 0]) / (1 + z): 1/(1 + z) where x ≥ 0, z/(1 + z) where x < 0 (or NaN).
    """
    np.abs(x, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)                                    # z = e^{−|x|} ∈ [0, 1]
    np.greater_equal(x, 0, out=h, casting="unsafe")     # 1 where x ≥ 0, else 0 (NaN: 0)
    np.maximum(h, z, out=h)                             # 1 or z (NaN stays NaN)
    np.add(z, 1, out=y)
    np.divide(h, y, out=y)


def _sigmoid(y, x, z, h):
    sigmoid_of(y, z, h, x)


def _sigmoid_grad(dx, y, dy):
    np.subtract(1, y, out=dx)
    dx *= y
    dx *= dy


# ------------------------------------------------------------ passes on runs in the cache
# An element-wise formula of several NumPy passes (exp, then a max, an add, a division ...)
# reads and writes its whole array once per pass; on runs of ``_RUN_BYTES`` bytes the
# intermediate values stay in the cache and only x and y cross memory. ``in_runs`` runs a
# kernel so, with scratch arrays of the run's length; each element's value does not depend
# on where a run starts, so the bits are the same whatever the runs and the threads.
_RUN_BYTES = 1 << 18


def _flat(arrays):
    """The arrays as flat views in one memory order, or None when they are not all dense in
    the same order of their axes."""
    for a in arrays:
        if not a.flags.c_contiguous:
            break
    else:
        return [a.reshape(-1) for a in arrays]
    order = _memory_order(arrays[0])
    if order is None or not all(a.transpose(order).flags.c_contiguous for a in arrays):
        return None
    return [a.transpose(order).reshape(-1) for a in arrays]


def in_runs(kernel, scratch: int, quiet: bool = False):
    """A body for ``parallel.elementwise``: ``kernel(out, *inputs, *s)`` with ``scratch``
    arrays s of out's dtype, on runs of at most ``_RUN_BYTES`` bytes of out (and at most
    ``_CHUNK`` elements, the length of the ``constant`` blocks) of flat views of the arrays
    (the whole arrays, with scratch laid out like out, when they are not dense in one order).
    Inputs may be written too (a second result). ``quiet``: the kernel divides 0 by 0 on
    purpose, and NumPy is told not to warn (in the thread that runs it: NumPy's error state
    belongs to a thread)."""

    def body(out, *inputs):
        if quiet:
            with np.errstate(invalid="ignore", divide="ignore"):
                runs(out, *inputs)
        else:
            runs(out, *inputs)

    def runs(out, *inputs):
        if out.ndim != 1:
            flat = _flat((out, *inputs)) if out.ndim else None
            if flat is None:
                kernel(out, *inputs, *[empty_like(out) for _ in range(scratch)])
                return
            out, *inputs = flat
        n = out.shape[0]
        run = min(_CHUNK, _RUN_BYTES // out.itemsize)
        if n <= run:
            kernel(out, *inputs, *[np.empty(n, out.dtype) for _ in range(scratch)])
            return
        spare = [np.empty(run, out.dtype) for _ in range(scratch)]
        for lo in range(0, n, run):
            hi = min(n, lo + run)
            if hi - lo < run:
                spare = [s[:hi - lo] for s in spare]
            kernel(out[lo:hi], *[a[lo:hi] for a in inputs], *spare)

    body.__name__ = f"in_runs({getattr(kernel, '__name__', 'kernel')})"
    return body


def constant(value, a: np.ndarray):
    """``value`` in a's dtype, to combine with a in a binary ufunc: a read-only block of it
    as long as a flat run a (NumPy's loops of two arrays run two to three times as fast as
    those of an array and a scalar), else the scalar."""
    dtype = a.dtype
    if a.ndim != 1 or a.shape[0] > _CHUNK:
        return dtype.type(value)
    key = (dtype, float(value))
    block = _BLOCKS.get(key)
    if block is None:
        if len(_BLOCKS) > 64:               # slopes and alphas set by users: a few recur
            _BLOCKS.clear()
        block = np.full(_CHUNK, value, dtype)
        block.flags.writeable = False
        _BLOCKS[key] = block
    return block[:a.shape[0]]


_BLOCKS: dict = {}


_SIGMOID = in_runs(_sigmoid, 2)
_SIGMOID_GRAD = in_runs(_sigmoid_grad, 0)     # the same three passes: 1.76 → 1.38 ms at 2M


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
