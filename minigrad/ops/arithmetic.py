"""Elementwise arithmetic and the matrix product.

Binary ops broadcast like NumPy; each input's gradient is summed back to its own shape by
``unbroadcast``. A gradient is computed only for inputs that need one (``needs_input_grad``).
"""

from __future__ import annotations

import math

import numpy as np

from minigrad import parallel
from minigrad.function import Function, unbroadcast
from minigrad.ops import linear
from minigrad.ops.grad_ops import sum_to
from minigrad.ops.shape import Transpose


def _shape(a) -> tuple[int, ...]:
    return a.shape if type(a) is np.ndarray else np.shape(a)


def _check_broadcast(op: str, x_shape: tuple[int, ...], y_shape: tuple[int, ...]) -> None:
    """Raise a ValueError naming the op when the shapes do not broadcast together.

    NumPy's rule, written out (``np.broadcast_shapes`` costs microseconds on the tape's hot
    path): aligned from the right, two sizes agree when they are equal or one of them is 1.
    """
    for m, n in zip(reversed(x_shape), reversed(y_shape)):
        if m != n and m != 1 and n != 1:
            raise ValueError(f"{op}: shapes {x_shape} and {y_shape} cannot be "
                             f"broadcast together")


class Add(Function):
    """z = x + y.    dL/dx = dL/dz    dL/dy = dL/dz    (each summed back to its shape)"""

    float_inputs = True

    def forward(self, x, y):
        self.x_shape, self.y_shape = _shape(x), _shape(y)
        _check_broadcast("add", self.x_shape, self.y_shape)
        return x + y

    def backward(self, dz):
        need_x, need_y = self.needs_input_grad
        return (unbroadcast(dz, self.x_shape) if need_x else None,
                unbroadcast(dz, self.y_shape) if need_y else None)

    def backward_graph(self, dz):
        need_x, need_y = self.needs_input_grad
        return (sum_to(dz, self.x_shape) if need_x else None,
                sum_to(dz, self.y_shape) if need_y else None)


class Sub(Function):
    """z = x − y.    dL/dx = dL/dz    dL/dy = −dL/dz"""

    float_inputs = True

    def forward(self, x, y):
        self.x_shape, self.y_shape = _shape(x), _shape(y)
        _check_broadcast("sub", self.x_shape, self.y_shape)
        return x - y

    def backward(self, dz):
        need_x, need_y = self.needs_input_grad
        return (unbroadcast(dz, self.x_shape) if need_x else None,
                unbroadcast(-dz, self.y_shape) if need_y else None)

    def backward_graph(self, dz):
        need_x, need_y = self.needs_input_grad
        return (sum_to(dz, self.x_shape) if need_x else None,
                sum_to(-dz, self.y_shape) if need_y else None)


class Mul(Function):
    """z = x · y (elementwise).    dL/dx = dL/dz · y    dL/dy = dL/dz · x"""

    float_inputs = True

    def forward(self, x, y):
        _check_broadcast("mul", _shape(x), _shape(y))
        self.x, self.y = x, y
        return x * y

    def backward(self, dz):
        need_x, need_y = self.needs_input_grad
        x, y = self.x, self.y
        return (unbroadcast(dz * y, x.shape) if need_x else None,
                unbroadcast(dz * x, y.shape) if need_y else None)

    def backward_graph(self, dz):
        need_x, need_y = self.needs_input_grad
        x, y = self.inputs
        return (sum_to(dz * y, x.shape) if need_x else None,
                sum_to(dz * x, y.shape) if need_y else None)


class Div(Function):
    """z = x / y.    dL/dx = dL/dz / y    dL/dy = −dL/dz · x / y² = −dL/dz · z / y"""

    float_inputs = True

    def forward(self, x, y):
        self.x_shape = _shape(x)
        _check_broadcast("div", self.x_shape, _shape(y))
        self.y = y
        self.z = x / y
        return self.z

    def backward(self, dz):
        need_x, need_y = self.needs_input_grad
        y = self.y
        return (unbroadcast(dz / y, self.x_shape) if need_x else None,
                unbroadcast(-dz * self.z / y, y.shape) if need_y else None)

    def backward_graph(self, dz):
        need_x, need_y = self.needs_input_grad
        y = self.inputs[1]
        return (sum_to(dz / y, self.x_shape) if need_x else None,
                sum_to(-dz * self.output / y, y.shape) if need_y else None)


class Neg(Function):
    """y = −x.    dL/dx = −dL/dy"""

    float_inputs = True

    def forward(self, x):
        return -x

    def backward(self, dy):
        return -dy

    def backward_graph(self, dy):
        return -dy


class Pow(Function):
    """z = x ** c.    dL/dx = dL/dz · c · x^(c−1)    dL/dc = dL/dz · z · ln x

    The exponent may be a number or a tensor; its gradient is defined where x > 0.
    At the points where these formulas give 0 · ∞ (NaN), the limits PyTorch also takes:
    dL/dx = 0 where c = 0 (x⁰ = 1 is constant, even at x = 0), and dL/dc = 0 where x = 0 and
    c ≥ 0 (0^c is constant for c > 0).
    """

    float_inputs = True

    def forward(self, x, c):
        _check_broadcast("pow", _shape(x), _shape(c))
        self.x, self.c = x, c
        self.z = x ** c
        return self.z

    def backward(self, dz):
        need_x, need_c = self.needs_input_grad
        x, c = self.x, self.c
        dx = dc = None
        if need_x and np.ndim(c) == 0 and c != 0:
            # One exponent (x ** 2, x ** 0.5), not 0: no per-element test for the c = 0
            # limit, and the slope's products formed in place (a third of the time).
            with np.errstate(divide="ignore", invalid="ignore"):
                slope = np.asarray(x ** (c - 1))
            if slope.shape == np.shape(dz) and slope.dtype == np.result_type(dz, slope, c):
                slope *= c
                slope *= dz
            else:
                slope = dz * (c * slope)
            dx = unbroadcast(slope, x.shape)
        elif need_x:
            with np.errstate(divide="ignore", invalid="ignore"):
                slope = c * x ** (c - 1)
            dx = unbroadcast(dz * np.where(c == 0, 0, slope), x.shape)
        if need_c:
            with np.errstate(divide="ignore", invalid="ignore"):
                slope = self.z * np.log(x)
            dc = unbroadcast(dz * np.where((x == 0) & (c >= 0), 0, slope), c.shape)
        return dx, dc

    def backward_graph(self, dz):
        need_x, need_c = self.needs_input_grad
        x, c = self.inputs
        dx = sum_to(dz * c * x ** (c - 1), x.shape) if need_x else None
        dc = None
        if need_c:
            log_x = np.log(x) if isinstance(x, np.ndarray) else x.log()
            dc = sum_to(dz * self.output * log_x, c.shape)
        return dx, dc


class MatMul(Function):
    """Z = X @ Y (NumPy's matmul: 1-D operands and batch broadcasting included).

    dL/dX = dL/dZ · Yᵀ    dL/dY = Xᵀ · dL/dZ      (transposing the last two axes)

    When Y is one matrix and X a stack of them (x (…, M, K) @ y (K, N), a layer applied to
    every position of a sequence), dL/dY is one product over all of X's rows,
    x.reshape(−1, K)ᵀ · dL/dZ.reshape(−1, N), the sum over the stack taken inside the product
    rather than after a product per matrix (and Z is x.reshape(−1, K) · y once it is big
    enough to split). The products are shared out among minigrad's threads (:func:`_product`).
    """

    float_inputs = True

    def forward(self, x, y):
        if np.ndim(x) == 0 or np.ndim(y) == 0:
            raise ValueError(f"matmul: operands must have at least one axis, got shapes "
                             f"{np.shape(x)} and {np.shape(y)}; use * for scalars")
        k_x = np.shape(x)[-1]
        k_y = np.shape(y)[0] if np.ndim(y) == 1 else np.shape(y)[-2]
        if k_x != k_y:
            raise ValueError(f"matmul: inner sizes differ: X.shape={np.shape(x)} has {k_x} "
                             f"columns but Y.shape={np.shape(y)} has {k_y} rows")
        x, y = np.asarray(x), np.asarray(y)
        self.x, self.y = x, y
        return _product(x, y)

    def backward(self, dz):
        need_x, need_y = self.needs_input_grad
        x, y = self.x, self.y
        # Treat a 1-D X as one row and a 1-D Y as one column, so one rule covers all cases.
        x2 = x[np.newaxis, :] if x.ndim == 1 else x
        y2 = y[:, np.newaxis] if y.ndim == 1 else y
        dz2 = dz
        if y.ndim == 1:  # first: for a 1-D X too, dz is then 0-d
            dz2 = dz2[..., np.newaxis]
        if x.ndim == 1:
            dz2 = dz2[..., np.newaxis, :]
        dx = dy = None
        if need_x:
            dx = unbroadcast(_product(dz2, np.swapaxes(y2, -1, -2)), x2.shape)
            dx = dx.reshape(x.shape) if x.ndim == 1 else dx
        if need_y:
            if y2.ndim == 2 and x2.ndim > 2 and x2.shape[:-2] == dz2.shape[:-2]:
                K, N = y2.shape                 # one Y for a whole stack: one product
                dy = _product(x2.reshape(-1, K).T, dz2.reshape(-1, N))
            else:
                dy = unbroadcast(_product(np.swapaxes(x2, -1, -2), dz2), y2.shape)
            dy = dy.reshape(y.shape) if y.ndim == 1 else dy
        return dx, dy

    def backward_graph(self, dz):
        need_x, need_y = self.needs_input_grad
        x, y = self.inputs
        x2 = x.reshape(1, x.shape[0]) if x.ndim == 1 else x
        y2 = y.reshape(y.shape[0], 1) if y.ndim == 1 else y
        dz2 = dz
        if y.ndim == 1:
            dz2 = dz2.reshape(dz2.shape + (1,))
        if x.ndim == 1:
            dz2 = dz2.reshape(dz2.shape[:-1] + (1, dz2.shape[-1]))
        dx = dy = None
        if need_x:
            dx = sum_to(dz2 @ _swap_last(y2), x2.shape)
            dx = dx.reshape(x.shape) if x.ndim == 1 else dx
        if need_y:
            dy = sum_to(_swap_last(x2) @ dz2, y2.shape)
            dy = dy.reshape(y.shape) if y.ndim == 1 else dy
        return dx, dy


def _product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b, as ``np.matmul`` computes it, shared out among minigrad's threads from
    ``linear.MIN_FLOPS`` floating-point operations (2·M·K·N a matrix), as the affine layer's
    products are: a stack of products by its first batch axis (each matrix's product then is
    the same BLAS call on any number of threads, so Z has the same bits), a single matrix by
    its rows. Smaller products run whole on the calling thread, the BLAS on one thread
    (``parallel.blas_ready``), as everywhere in minigrad. A bigger stack times one matrix is
    one product over all the stack's rows."""
    if a.ndim < 2 or b.ndim < 2:
        parallel.blas_ready()
        return np.matmul(a, b)
    M, K, N = a.shape[-2], a.shape[-1], b.shape[-1]
    batch_a, batch_b = a.shape[:-2], b.shape[:-2]
    if batch_a == batch_b or not batch_b:       # (np.broadcast_shapes costs µs: only if needed)
        batch = batch_a
    else:
        batch = batch_b if not batch_a else np.broadcast_shapes(batch_a, batch_b)
    flops = 2 * math.prod(batch) * M * K * N
    if flops < linear.MIN_FLOPS or flops == 0:
        parallel.blas_ready()
        return np.matmul(a, b)
    if batch_a and not batch_b and a.flags.c_contiguous:
        rows = math.prod(a.shape[:-1])
        return _product(a.reshape(rows, K), b).reshape(a.shape[:-1] + (N,))
    out = np.empty(batch + (M, N), np.result_type(a, b))
    if batch and batch[0] > 1:
        def first_axis(arr, lo, hi):            # arr's part of stack entries lo..hi−1
            return arr[lo:hi] if arr.ndim - 2 == len(batch) and len(arr) > 1 else arr

        def body(lo, hi):                       # stack entries lo..hi−1, on one thread
            np.matmul(first_axis(a, lo, hi), first_axis(b, lo, hi), out=out[lo:hi])

        total = batch[0]
    else:
        def body(lo, hi):                       # rows lo..hi−1 of every matrix of Z
            np.matmul(a[..., lo:hi, :], b, out=out[..., lo:hi, :])

        total = M
    parallel.parallel_for(total, body, work=flops, blas=True)
    return out


def _swap_last(a):
    """a with its last two axes swapped, as a Tensor (recorded when a is on the tape)."""
    axes = list(range(a.ndim))
    axes[-2:] = axes[-1], axes[-2]
    return Transpose(axes)(a)


class Exp(Function):
    """y = eˣ.    dL/dx = dL/dy · y"""

    float_inputs = True

    def forward(self, x):
        self.y = np.exp(x)
        return self.y

    def backward(self, dy):
        return dy * self.y



    def backward_graph(self, dy):
        return dy * self.output


class Log(Function):
    """y = ln x.    dL/dx = dL/dy / x    (x ≤ 0 gives −inf or NaN, as NumPy does)"""

    float_inputs = True

    def forward(self, x):
        self.x = x
        return np.log(x)

    def backward(self, dy):
        return dy / self.x

    def backward_graph(self, dy):
        return dy / self.inputs[0]


class Sqrt(Function):
    """y = √x.    dL/dx = dL/dy / (2y)"""

    float_inputs = True

    def forward(self, x):
        self.y = np.sqrt(x)
        return self.y

    def backward(self, dy):
        return dy / (2 * self.y)

    def backward_graph(self, dy):
        return dy / (2 * self.output)
