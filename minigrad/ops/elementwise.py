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
from minigrad.ops.activation import Sigmoid, constant, in_runs
from minigrad.ops.join import sum_to
from minigrad.parallel import elementwise, empty_like


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
    Shapes: any, y and dL/dx laid out like x. Saved: y (y > 0 exactly where x > 0), and for
    other slopes the mask x > 0 too.

    For 0 < a ≤ 1 (the usual slopes), y = max(x, a·x) and dL/dx = dL/dy · max(1[y > 0], a):
    two and three passes with no mask, on runs that stay in the cache, split over the
    threads; the same bits as the plain ``np.where`` formulation (±0, ±inf and NaN included),
    which other slopes run and ``leaky_relu_reference`` keeps; a test holds the two equal.
    """

    float_inputs = True

    def __init__(self, negative_slope=0.01):
        self.negative_slope = float(negative_slope)

    def forward(self, x):
        a = self.negative_slope
        if 0 < a <= 1:
            self.y = elementwise(_leaky_body(a), empty_like(x), x)
        else:
            self.y = leaky_relu_reference(x, a)
            self.positive = x > 0       # y > 0 is not the same for a < 0
        return self.y

    def backward(self, dy):
        a, y = self.negative_slope, self.y
        if 0 < a <= 1:
            return elementwise(_leaky_grad_body(a), empty_like(y, dy.dtype), y, dy)
        return np.where(self._positive(), dy, dy * dy.dtype.type(a))

    def backward_graph(self, dy):
        a = dy.dtype.type(self.negative_slope)
        return dy * np.where(self._positive(), dy.dtype.type(1), a)

    def _positive(self):
        """1[x > 0]: y > 0 for 0 < a ≤ 1, else the mask saved by forward."""
        return self.y > 0 if 0 < self.negative_slope <= 1 else self.positive


def leaky_relu_reference(x: np.ndarray, a: float) -> np.ndarray:
    """where(x > 0, x, a·x): LeakyReLU's plain formulation."""
    return np.where(x > 0, x, x * x.dtype.type(a))


def _leaky_body(a: float):
    def kernel(y, x):
        np.multiply(x, x.dtype.type(a), out=y)
        np.maximum(x, y, out=y)             # x where x > 0, else a·x (0 < a ≤ 1)
    return in_runs(kernel, 0)


def _leaky_grad_body(a: float):
    def kernel(dx, y, dy):
        np.greater(y, 0, out=dx, casting="unsafe")          # 1 where x > 0, else 0
        np.maximum(dx, constant(a, dx), out=dx)            # the slope: 1 or a, exactly
        dx *= dy
    return in_runs(kernel, 0)


class ELU(Function):
    """y = x for x > 0, α·(eˣ − 1) otherwise.

    dL/dx = dL/dy for x > 0, dL/dy · α·eˣ otherwise (not y + α, which cancels for very
    negative x); at x = 0 the gradient is α (PyTorch's choice).
    d²y/dx² = 0 for x > 0, α·eˣ otherwise; recorded: dy · where(x > 0, 1, α·exp(min(x, 0))),
    with min(x, 0) as where(x > 0, 0, x) so that no exp(x) of a large x is formed.
    Shapes: any, y and dL/dx laid out like x. Saved: y and u = exp(min(x, 0)).

    eˣ − 1 cancels near 0, and NumPy's ``expm1`` is ten times slower than ``exp``. For
    0 < α ≤ 1 the op computes it by Kahan's identity eˣ − 1 = (u − 1)·x / log u, u = eˣ,
    which is accurate because log u is taken of the same rounded u (the error of u cancels in
    the ratio); where u = 1 the ratio is 0/0 and ``fmin(·, 1)`` turns its NaN into 1, giving
    eˣ − 1 = x. x is clamped at −32 (−64 in float64), where eˣ − 1 is −1 to the last bit, so
    the log never sees an underflowed u; then y = max(x, α·(eˣ − 1)), exact since
    α·(eˣ − 1) ≥ x for x ≤ 0 and 0 for x > 0. Measured against long double (every 97th
    float32; 2.2 million float64): y within 4.9 ulp in float32 and 2.9 in float64, the
    gradient 3.8 and 1.2 ulp (NumPy's float32 exp and log alone are off by up to 2.3 and
    3.1 ulp). The gradient α·u is u itself for α = 1. Other α (and float16) run the plain
    formulation, ``elu_reference``; a test holds the two together.
    """

    float_inputs = True

    def __init__(self, alpha=1.0):
        self.alpha = float(alpha)

    def forward(self, x):
        alpha = self.alpha
        if 0 < alpha <= 1 and x.dtype in _ELU_CLAMP:
            self.u = empty_like(x)
            self.y = elementwise(_elu_body(alpha), empty_like(x), self.u, x)
        else:
            self.y, self.u = elu_reference(x, alpha)
            self.positive = x > 0       # y > 0 is not the same for α < 0
        return self.y

    def backward(self, dy):
        alpha, u = self.alpha, self.u
        if getattr(self, "positive", None) is not None:
            return np.where(self.positive, dy, dy * dy.dtype.type(alpha) * u)
        dx = empty_like(u, np.result_type(dy, u))
        if alpha == 1:
            return elementwise(_elu_grad_1, dx, u, dy)
        return elementwise(_elu_grad_body(alpha), dx, u, self.y, dy)

    def backward_graph(self, dy):
        x = self.inputs[0]
        positive = getattr(self, "positive", None)
        positive = self.y > 0 if positive is None else positive
        zero, one = np.zeros((), x.dtype), np.ones((), x.dtype)
        negative_part = Where()(positive, zero, x)
        return dy * Where()(positive, one, negative_part.exp() * self.alpha)


def elu_reference(x: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """(where(x > 0, x, α·expm1(min(x, 0))), exp(min(x, 0))): ELU's plain formulation."""
    negative_part = np.minimum(x, 0)
    y = np.where(x > 0, x, x.dtype.type(alpha) * np.expm1(negative_part))
    return y, np.exp(negative_part)


# x is clamped at −c: below it eˣ − 1 rounds to −1, and eˣ is still a normal number; a power
# of 2, so that (e^{−c} − 1)·(−c)/log e^{−c} = −1 exactly. Other dtypes (float16) run the plain
# formulation.
_ELU_CLAMP = {np.dtype(np.float32): 32.0, np.dtype(np.float64): 64.0}
_ELU_FLOOR = {dtype: (dtype.type(-c), np.exp(np.full(1, -c, dtype))[0])
              for dtype, c in _ELU_CLAMP.items()}


def _elu_body(alpha: float):
    def kernel(y, u, x, a, b):
        low, e_low = _ELU_FLOOR[x.dtype]
        np.minimum(x, constant(0, a), out=a)                # min(x, 0)
        np.exp(a, out=u)                                    # u = e^{min(x, 0)}, saved
        np.maximum(a, constant(low, a), out=a)              # x clamped at −c
        np.maximum(u, constant(e_low, u), out=b)            # and its eˣ
        np.log(b, out=y)
        b -= 1                                              # exact for b ≥ 1/2
        np.divide(b, y, out=b)                              # (u − 1)/log u; 0/0 where u = 1
        np.fmin(b, constant(1, b), out=b)                   # NaN → 1: eˣ − 1 = x there
        b *= a                                              # eˣ − 1
        if alpha != 1:
            b *= b.dtype.type(alpha)
        np.maximum(x, b, out=y)                             # x for x > 0, α·(eˣ − 1) else
    return in_runs(kernel, 2, quiet=True)


def _elu_grad_1(dx, u, dy):
    np.multiply(dy, u, out=dx)                              # u = 1 where x > 0


def _elu_grad_body(alpha: float):
    def kernel(dx, u, y, dy, h):
        np.multiply(u, dx.dtype.type(alpha), out=dx)        # α·eˣ (α where x > 0)
        np.greater(y, 0, out=h, casting="unsafe")
        np.maximum(dx, h, out=dx)                           # 1 where x > 0 (α < 1)
        dx *= dy
    return in_runs(kernel, 1)


class Softplus(Function):
    """y = (1/β) · log(1 + e^{βx}), or y = x where βx > threshold (PyTorch's numerics).

    dL/dx = dL/dy · σ(βx), or dL/dy where βx > threshold.
    d²y/dx² = β·σ(βx)(1 − σ(βx)), or 0 where βx > threshold; recorded:
    dy · where(βx > threshold, 1, sigmoid(βx)).
    Shapes: any, y and dL/dx laid out like x. Smooth (a step of at most e^{−threshold} at the
    threshold). Saved: βx and z = e^{−|βx|}.

    log(1 + e^{βx}) = max(βx, 0) + log1p(z) never overflows for any threshold. NumPy's
    ``log1p`` and ``logaddexp`` are 2 to 7 and 12 times slower than ``log``; log1p(z) is computed
    as z · log(v)/(v − 1), v = 1 + z (v − 1 exact; the error of the rounded v cancels in the
    ratio), with ``fmin(·, 1)`` turning the 0/0 of v = 1 into 1 (log1p(z) = z there). σ(βx)
    is max(z, 1[βx ≥ 0]) / (1 + z), as in Sigmoid. Passes on runs in the cache, split over
    the threads. Measured against long double (as for ELU): y within 5.4 ulp in float32
    and 2.3 in float64, σ 3.4 and 2.3 ulp (docs/ops.md). ``softplus_reference`` keeps the
    plain formulation, and a test holds the two together.
    """

    float_inputs = True

    def __init__(self, beta=1.0, threshold=20.0):
        if beta == 0:
            raise ValueError("softplus: beta must not be 0")
        self.beta, self.threshold = float(beta), float(threshold)

    def forward(self, x):
        beta = x.dtype.type(self.beta)
        self.bx = bx = x if self.beta == 1 else x * beta
        self.z = empty_like(bx)
        y = elementwise(_SOFTPLUS, empty_like(bx), self.z, bx)
        if self.beta != 1:
            y /= beta
        linear = bx > self.threshold
        self.linear = linear if linear.any() else None
        if self.linear is not None:
            np.copyto(y, x, where=linear)       # few: the mask is rarely dense
        return y

    def backward(self, dy):
        bx = self.bx
        dx = empty_like(bx, np.result_type(dy, bx))
        if self.linear is None:
            return elementwise(_SOFTPLUS_GRAD, dx, bx, self.z, dy)
        return elementwise(_softplus_grad_body(self.threshold), dx, bx, self.z, dy)

    def backward_graph(self, dy):
        x = self.inputs[0]
        sigma = Sigmoid()(x * self.beta)
        linear = self.bx > self.threshold
        return dy * Where()(linear, np.ones((), sigma.dtype), sigma)


def softplus_reference(x: np.ndarray, beta: float = 1.0, threshold: float = 20.0):
    """(y, dy/dx) by ``np.logaddexp``: Softplus's plain formulation."""
    bx = x * x.dtype.type(beta)
    linear = bx > threshold
    y = np.where(linear, x, np.logaddexp(x.dtype.type(0), bx) / x.dtype.type(beta))
    sigma = np.exp(-np.logaddexp(bx.dtype.type(0), -bx))
    return y, np.where(linear, bx.dtype.type(1), sigma)


def softplus_of(y, z, x, v):
    """y = log(1 + eˣ) = max(x, 0) + log1p(z), leaving z = e^{−|x|} behind; v is scratch.
    NumPy warns of the 0/0 taken on purpose unless told not to (``in_runs(quiet=True)``)."""
    np.abs(x, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)                                        # z = e^{−|x|} ∈ [0, 1]
    np.add(z, 1, out=v)                                     # v = 1 + z
    np.log(v, out=y)
    v -= 1                                                  # exact: v ∈ [1, 2]
    np.divide(y, v, out=v)                                  # log v/(v − 1); 0/0 where v = 1
    np.fmin(v, constant(1, v), out=v)                       # NaN → 1
    v *= z                                                  # log1p(z)
    np.maximum(x, constant(0, x), out=y)
    y += v


def _sigma_from(dx, x, z, h):
    """dx = σ(x) from z = e^{−|x|}: max(z, 1[x ≥ 0]) / (1 + z)."""
    np.greater_equal(x, 0, out=h, casting="unsafe")
    np.maximum(h, z, out=h)
    np.add(z, 1, out=dx)
    np.divide(h, dx, out=dx)


def _softplus_grad(dx, bx, z, dy, h):
    _sigma_from(dx, bx, z, h)
    dx *= dy


def _softplus_grad_body(threshold: float):
    def kernel(dx, bx, z, dy, h):
        _sigma_from(dx, bx, z, h)
        np.greater(bx, threshold, out=h, casting="unsafe")
        np.maximum(dx, h, out=dx)                           # 1 where βx > threshold (σ ≤ 1)
        dx *= dy
    return in_runs(kernel, 1)


_SOFTPLUS = in_runs(softplus_of, 1, quiet=True)
_SIGMA_FROM = in_runs(_sigma_from, 1)
_SOFTPLUS_GRAD = in_runs(_softplus_grad, 1)
