"""The linear ops that gradients are made of, for gradients of gradients.

Every op's ``backward`` works on arrays: that is the fast path, and what ``Tensor.backward()``
runs. With ``create_graph=True`` the engine calls each op's ``backward_graph`` instead, which
computes the same gradient from recorded ops on Tensors, so the gradient is itself on the tape
and can be differentiated again. Most ops' gradients are built from ops that exist already
(``dy * y`` for Exp, ``dy @ Wᵀ`` for Affine); the ops in this module close the set. Each is
linear in its gradient input, and the backward of each is another op of the set (its adjoint):

=====================  ==========================================  ==========================
op                     forward                                      its adjoint (backward)
=====================  ==========================================  ==========================
BroadcastTo            x copied along new and size-1 axes           SumTo
SumTo                  ``unbroadcast``: x summed back to a shape    BroadcastTo
ScatterAdd             zeros with x added at ``index``              GetItem
Cast                   x in another dtype                           Cast back
Conv2dInputGrad        dL/dx of a convolution, from (dy, w)         Conv2d, Conv2dWeightGrad
Conv2dWeightGrad       dL/dw of a convolution, from (x, dy)         Conv2dInputGrad, Conv2d
MaxPool2dBackward      dy scattered to each window's winner         MaxPool2dGather
MaxPool2dGather        each window's winner picked from g           MaxPool2dBackward
AvgPool2dBackward      dy spread over each window (its backward)    AvgPool2d (or adaptive)
=====================  ==========================================  ==========================

BroadcastTo and SumTo are the user-facing ops of ``minigrad.ops.join`` (``t.broadcast_to``,
``t.sum_to``), imported here with their helpers ``broadcast_to`` and ``sum_to`` (which skip the
op when the shape is already right). ConvTranspose2d needs no op of its own: it is the adjoint
of a Conv2d in x.

Notation as in ``minigrad.ops.conv``: x (N, C, H, W), w (FN, C, FH, FW), dy (N, FN, OH, OW).
"""

from __future__ import annotations

import math

import numpy as np

from minigrad.function import Function
from minigrad.ops.join import BroadcastTo, SumTo, broadcast_to, sum_to  # noqa: F401 (re-exported)
from minigrad.ops.shape import GetItem, _is_basic, scatter_add


class ScatterAdd(Function):
    """The adjoint of ``x[index]``: y = zeros(shape) with x added at ``index``.

    Repeated indices accumulate. dL/dx = (dL/dy)[index]. Linear. Saved: nothing.
    """

    def __init__(self, index, shape):
        self.index, self.shape = index, tuple(shape)

    def forward(self, x):
        if not _is_basic(self.index):
            return scatter_add(self.shape, self.index, x)
        y = np.zeros(self.shape, dtype=x.dtype)
        y[self.index] = x
        return y

    def backward(self, dy):
        return np.asarray(dy[self.index])

    def backward_graph(self, dy):
        return GetItem(self.index)(dy)


class Cast(Function):
    """y = x as ``dtype``.    dL/dx = dL/dy as x's dtype. Linear. Saved: x's dtype."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)

    def forward(self, x):
        self.x_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, dy):
        return dy.astype(self.x_dtype)

    def backward_graph(self, dy):
        return Cast(self.x_dtype)(dy)


# ----------------------------------------------------------------------------- convolution
# The convolution's gradients run Conv2d's own kernels through its public contract: an uncalled
# instance with the same settings (stride, padding, dilation, groups, ...) is given the
# needs_input_grad that selects the gradient wanted, its forward is run on a zero in place of
# the other operand (only to save what its backward reads) and its backward gives the result.
# Every option of Conv2d is thus covered, at the price of that extra forward, paid only when
# gradients are recorded.


def like(op: Function) -> Function:
    """A fresh, uncalled instance of op's class with op's settings (its ``__init__`` values)."""
    new = type(op).__new__(type(op))
    new.__dict__.update(op.settings())
    return new


def _conv_input_grad(conv, dy, w, x_shape):
    t = like(conv)
    t.needs_input_grad = (True, False)
    t.forward(np.zeros(x_shape, np.result_type(dy, w)), w)
    return t.backward(dy)[0]


def _conv_weight_grad(conv, x, dy, w_shape):
    t = like(conv)
    t.needs_input_grad = (False, True)
    t.forward(x, np.zeros(w_shape, np.result_type(x, dy)))
    return t.backward(dy)[1]


def _conv(conv, x, w):
    t = like(conv)
    t.needs_input_grad = (False, False)
    return t.forward(x, w)


class Conv2dInputGrad(Function):
    """dL/dx of a convolution as an op of (dy, w): dx = col2im(w.reshape(FN, K)ᵀ · dy).

    Bilinear in (dy, w). With g = dL/d(dx):
      dL/d(dy) = conv2d(g, w)        dL/dw = Conv2dWeightGrad(g, dy)
    since ⟨g, dx(dy, w)⟩ = ⟨conv2d(g, w), dy⟩. The convolution's settings are shown as its own.

    Shapes: dy (N, FN, OH, OW), w (FN, C, FH, FW) → dx (N, C, H, W) = ``x_shape``.
    Saved: dy and w.
    """

    def __init__(self, conv, x_shape):
        self.x_shape = tuple(int(n) for n in x_shape)
        self.__dict__.update(conv.settings())
        self._conv = like(conv)

    def forward(self, dy, w):
        self.dy, self.w = dy, w
        return _conv_input_grad(self._conv, dy, w, self.x_shape)

    def backward(self, g):
        need_dy, need_w = self.needs_input_grad
        return (_conv(self._conv, g, self.w) if need_dy else None,
                _conv_weight_grad(self._conv, g, self.dy, self.w.shape) if need_w else None)

    def backward_graph(self, g):
        need_dy, need_w = self.needs_input_grad
        dy, w = self.inputs
        return (like(self._conv)(g, w) if need_dy else None,
                Conv2dWeightGrad(self._conv, w.shape)(g, dy) if need_w else None)


class Conv2dWeightGrad(Function):
    """dL/dw of a convolution as an op of (x, dy): dw = Σ_n dy[n] · im2col(x)[n]ᵀ.

    Bilinear in (x, dy). With g = dL/d(dw):
      dL/dx = Conv2dInputGrad(dy, g)        dL/d(dy) = conv2d(x, g)
    since ⟨g, dw(x, dy)⟩ = ⟨conv2d(x, g), dy⟩.

    Shapes: x (N, C, H, W), dy (N, FN, OH, OW) → dw (FN, C, FH, FW) = ``w_shape``.
    Saved: x and dy.
    """

    def __init__(self, conv, w_shape):
        self.w_shape = tuple(int(n) for n in w_shape)
        self.__dict__.update(conv.settings())
        self._conv = like(conv)

    def forward(self, x, dy):
        self.x, self.dy = x, dy
        return _conv_weight_grad(self._conv, x, dy, self.w_shape)

    def backward(self, g):
        need_x, need_dy = self.needs_input_grad
        return (_conv_input_grad(self._conv, self.dy, g, self.x.shape) if need_x else None,
                _conv(self._conv, self.x, g) if need_dy else None)

    def backward_graph(self, g):
        need_x, need_dy = self.needs_input_grad
        x, dy = self.inputs
        return (Conv2dInputGrad(self._conv, x.shape)(dy, g) if need_x else None,
                like(self._conv)(x, g) if need_dy else None)


def conv2d_backward_graph(op, dy):
    """Conv2d's gradients as recorded ops (``Conv2d.backward_graph``)."""
    needs = op.needs_input_grad
    x, w = op.inputs[0], op.inputs[1]
    dx = Conv2dInputGrad(op, x.shape)(dy, w) if needs[0] else None
    dw = Conv2dWeightGrad(op, w.shape)(x, dy) if needs[1] else None
    if len(needs) == 2:
        return dx, dw
    db = dy.sum(axis=(0, 2, 3)) if needs[2] else None
    return dx, dw, db


def conv_transpose2d_backward_graph(op, dy):
    """ConvTranspose2d's gradients as recorded ops (``ConvTranspose2d.backward_graph``).

    conv_transpose2d(x, w) is the adjoint in x of the Conv2d with weight w and the same stride,
    padding, dilation and groups, so dL/dx = conv2d(dy, w) and dL/dw is that convolution's
    weight gradient at input dy and upstream gradient x: Conv2dWeightGrad(dy, x).
    """
    from minigrad.ops.conv import Conv2d

    needs = op.needs_input_grad
    x, w = op.inputs[0], op.inputs[1]
    conv = Conv2d(stride=op.stride, padding=op.padding, dilation=op.dilation, groups=op.groups)
    dx = like(conv)(dy, w) if needs[0] else None
    dw = Conv2dWeightGrad(conv, w.shape)(dy, x) if needs[1] else None
    if len(needs) == 2:
        return dx, dw
    db = dy.sum(axis=(0, 2, 3)) if needs[2] else None
    return dx, dw, db


# ----------------------------------------------------------------------------- pooling


def max_pool_winners(pool, x_shape, out_shape):
    """Flat index into x (N·C·H·W,) of each window's winner, −1 for a window without one.

    Found with the pool's own backward (so its rule at ties, padding, dilation and ceil_mode is
    the one used): windows that do not overlap are given their numbers 1, 2, … as dL/dy, in as
    many passes as it takes (one for the usual 2×2 pooling with stride 2), and each number
    lands on its window's winner.
    """
    (KH, KW), (SH, SW) = pool.kernel_size, pool.stride
    DH, DW = getattr(pool, "dilation", (1, 1))
    every_h, every_w = -(-(DH * (KH - 1) + 1) // SH), -(-(DW * (KW - 1) + 1) // SW)
    number = np.arange(1, math.prod(out_shape) + 1, dtype=np.float64).reshape(out_shape)
    winners = np.full(out_shape, -1, np.intp)
    for a in range(every_h):
        for b in range(every_w):
            dy = np.zeros(out_shape)
            dy[:, :, a::every_h, b::every_w] = number[:, :, a::every_h, b::every_w]
            flat = np.asarray(pool.backward(dy)).reshape(-1)
            where = np.flatnonzero(flat)
            winners.reshape(-1)[flat[where].astype(np.intp) - 1] = where
    return winners


def _scatter(dy, winners, x_shape):
    keep = winners.reshape(-1) >= 0
    flat = np.bincount(winners.reshape(-1)[keep], weights=dy.reshape(-1)[keep],
                       minlength=math.prod(x_shape))
    return flat.astype(dy.dtype, copy=False).reshape(x_shape)


def _gather(g, winners):
    picked = g.reshape(-1)[np.maximum(winners, 0)]
    return picked * (winners >= 0)


class MaxPool2dBackward(Function):
    """MaxPool2d's backward as an op of dy: dx = dy added at each window's winner.

    Linear in dy; the winners depend on x only through comparisons, so its derivative in x is
    zero almost everywhere (the winners are fixed). dL/d(dy) = g at the winners
    (MaxPool2dGather). Shapes: dy (N, C, OH, OW) → dx (N, C, H, W). Saved: the winners.
    """

    def __init__(self, pool, winners, x_shape):
        self.__dict__.update(pool.settings())
        self._winners, self._x_shape = winners, tuple(x_shape)

    def forward(self, dy):
        return _scatter(dy, self._winners, self._x_shape)

    def backward(self, g):
        return _gather(g, self._winners)

    def backward_graph(self, g):
        return MaxPool2dGather(self, self._winners, self._x_shape)(g)


class MaxPool2dGather(Function):
    """Each window's winner picked from g: y[n, c, oh, ow] = g at the winner of window (oh, ow).

    The Jacobian of max pooling applied to g; linear in g. dL/dg = dL/dy scattered to the
    winners (MaxPool2dBackward). Shapes: g (N, C, H, W) → (N, C, OH, OW). Saved: the winners.
    """

    def __init__(self, pool, winners, x_shape):
        self.__dict__.update(pool.settings())
        self._winners, self._x_shape = winners, tuple(x_shape)

    def forward(self, g):
        return _gather(g, self._winners)

    def backward(self, dy):
        return _scatter(dy, self._winners, self._x_shape)

    def backward_graph(self, dy):
        return MaxPool2dBackward(self, self._winners, self._x_shape)(dy)


def max_pool2d_backward_graph(pool, dy):
    """MaxPool2d's gradient as a recorded op (``MaxPool2d.backward_graph``)."""
    x_shape = pool.inputs[0].shape
    winners = max_pool_winners(pool, x_shape, dy.shape)
    return MaxPool2dBackward(pool, winners, x_shape)(dy)


class AvgPool2dBackward(Function):
    """An average pooling's backward as an op of dy: each dy / (window's divisor) added over
    its window (AvgPool2d and AdaptiveAvgPool2d alike).

    Linear, and independent of x; its adjoint is the pooling itself (the same settings):
    dL/d(dy) = avg_pool2d(g). Runs the pool's own backward. Shapes: dy (N, C, OH, OW) → dx
    (N, C, H, W). Saved: nothing of its own.
    """

    def __init__(self, pool):
        self.__dict__.update(pool.settings())
        self._pool = pool

    def forward(self, dy):
        return self._pool.backward(dy)

    def backward(self, g):
        return like(self._pool).forward(g)

    def backward_graph(self, g):
        return like(self._pool)(g)


# ----------------------------------------------------------------------------- no second order


class OnceDifferentiable(Function):
    """The gradient of input ``i`` of an op that has no ``backward_graph``: a value only.

    Recorded (on dL/dy and the op's inputs) so that differentiating it again raises an error
    naming the op, instead of giving a silent zero.
    """

    def __init__(self, op_name, i, value):
        self.op, self.input = op_name, i
        self._value = value

    def forward(self, *arrays):
        return self._value

    def backward(self, g):
        raise RuntimeError(
            f"{self.op} cannot be differentiated twice: it has a backward (arrays) but no "
            f"backward_graph (recorded ops), so the gradient of its input {self.input} is not "
            f"on the tape; define {self.op}.backward_graph as shown in docs/custom_ops.md, "
            f"section 'Gradients of gradients'")
