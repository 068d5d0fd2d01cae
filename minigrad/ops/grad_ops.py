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
AvgPool2dBackward      dy / (KH·KW) spread over each window         AvgPool2d
=====================  ==========================================  ==========================

Notation as in ``minigrad.ops.conv``: x (N, C, H, W), w (FN, C, FH, FW), dy (N, FN, OH, OW).
"""

from __future__ import annotations

import math

import numpy as np

from minigrad.function import Function, unbroadcast
from minigrad.ops.conv import Conv2d, _col2im, im2col, pad, window_view
from minigrad.ops.pooling import AvgPool2d, _offset_slices, _unpad
from minigrad.ops.shape import GetItem, _is_basic


def sum_to(x, shape):
    """x summed back to ``shape`` (undoing broadcasting), recorded; x itself if it has it."""
    shape = tuple(shape)
    return x if x.shape == shape else SumTo(shape)(x)


def broadcast_to(x, shape):
    """x broadcast to ``shape``, recorded; x itself if it has it."""
    shape = tuple(shape)
    return x if x.shape == shape else BroadcastTo(shape)(x)


class BroadcastTo(Function):
    """y = x broadcast to ``shape`` (NumPy's rule).    dL/dx = unbroadcast(dL/dy, x.shape)

    Linear. Saved: x's shape. The output is a read-only broadcast view of x.
    """

    def __init__(self, shape):
        self.shape = tuple(int(n) for n in shape)

    def forward(self, x):
        try:
            y = np.broadcast_to(x, self.shape)
        except ValueError:
            raise ValueError(f"broadcast_to: cannot broadcast a tensor of shape {np.shape(x)} "
                             f"to {self.shape}") from None
        self.x_shape = np.shape(x)
        return y

    def backward(self, dy):
        return unbroadcast(dy, self.x_shape)

    def backward_graph(self, dy):
        return sum_to(dy, self.x_shape)


class SumTo(Function):
    """y = x summed over the axes that broadcasting to x.shape would add or stretch.

    dL/dx = dL/dy broadcast to x.shape.    Linear. Saved: x's shape.
    """

    def __init__(self, shape):
        self.shape = tuple(int(n) for n in shape)

    def forward(self, x):
        shape = self.shape
        if len(shape) > x.ndim or any(n != 1 and n != m for n, m in
                                      zip(reversed(shape), reversed(x.shape))):
            raise ValueError(f"sum_to: a tensor of shape {x.shape} cannot be summed to "
                             f"{shape}: {shape} does not broadcast to {x.shape}")
        self.x_shape = x.shape
        return np.asarray(unbroadcast(x, shape))

    def backward(self, dy):
        return np.broadcast_to(dy, self.x_shape)

    def backward_graph(self, dy):
        return broadcast_to(dy, self.x_shape)


class ScatterAdd(Function):
    """The adjoint of ``x[index]``: y = zeros(shape) with x added at ``index``.

    Repeated indices accumulate. dL/dx = (dL/dy)[index]. Linear. Saved: nothing.
    """

    def __init__(self, index, shape):
        self.index, self.shape = index, tuple(shape)

    def forward(self, x):
        y = np.zeros(self.shape, dtype=x.dtype)
        if _is_basic(self.index):
            y[self.index] = x
        else:
            np.add.at(y, self.index, x)
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


def _conv_input_grad(dy, w, x_shape, stride, padding):
    """dL/dx = col2im(w.reshape(FN, K)ᵀ · dy[n] for each n): Conv2d's backward for x."""
    N, FN, OH, OW = dy.shape
    dcol = np.matmul(w.reshape(FN, -1).T, dy.reshape(N, FN, OH * OW))   # (N, K, P)
    return _col2im(dcol, tuple(x_shape), w.shape[2:], stride, padding, (OH, OW))


def _conv_weight_grad(x, dy, w_shape, stride, padding):
    """dL/dw = Σ_n dy[n] · im2col(x)[n]ᵀ: Conv2d's backward for w."""
    N, FN, OH, OW = dy.shape
    col = im2col(x, w_shape[2], w_shape[3], stride, padding)             # (N, K, P)
    dw = np.matmul(dy.reshape(N, FN, OH * OW), col.transpose(0, 2, 1)).sum(axis=0)
    return dw.reshape(w_shape)


def _conv(x, w, stride, padding):
    return Conv2d(stride=stride, padding=padding).forward(x, w)


class Conv2dInputGrad(Function):
    """dL/dx of a convolution as an op of (dy, w): dx = col2im(w.reshape(FN, K)ᵀ · dy).

    Bilinear in (dy, w). With g = dL/d(dx):
      dL/d(dy) = conv2d(g, w)        dL/dw = Conv2dWeightGrad(g, dy)
    since ⟨g, dx(dy, w)⟩ = ⟨conv2d(g, w), dy⟩.

    Shapes: dy (N, FN, OH, OW), w (FN, C, FH, FW) → dx (N, C, H, W) = ``x_shape``.
    Saved: dy and w.
    """

    def __init__(self, x_shape, stride=1, padding=0):
        self.x_shape = tuple(int(n) for n in x_shape)
        self.stride, self.padding = stride, padding

    def forward(self, dy, w):
        self.dy, self.w = dy, w
        return _conv_input_grad(dy, w, self.x_shape, self.stride, self.padding)

    def backward(self, g):
        need_dy, need_w = self.needs_input_grad
        return (_conv(g, self.w, self.stride, self.padding) if need_dy else None,
                _conv_weight_grad(g, self.dy, self.w.shape, self.stride, self.padding)
                if need_w else None)

    def backward_graph(self, g):
        need_dy, need_w = self.needs_input_grad
        dy, w = self.inputs
        return (Conv2d(self.stride, self.padding)(g, w) if need_dy else None,
                Conv2dWeightGrad(w.shape, self.stride, self.padding)(g, dy)
                if need_w else None)


class Conv2dWeightGrad(Function):
    """dL/dw of a convolution as an op of (x, dy): dw = Σ_n dy[n] · im2col(x)[n]ᵀ.

    Bilinear in (x, dy). With g = dL/d(dw):
      dL/dx = Conv2dInputGrad(dy, g)        dL/d(dy) = conv2d(x, g)
    since ⟨g, dw(x, dy)⟩ = ⟨conv2d(x, g), dy⟩.

    Shapes: x (N, C, H, W), dy (N, FN, OH, OW) → dw (FN, C, FH, FW) = ``w_shape``.
    Saved: x and dy.
    """

    def __init__(self, w_shape, stride=1, padding=0):
        self.w_shape = tuple(int(n) for n in w_shape)
        self.stride, self.padding = stride, padding

    def forward(self, x, dy):
        self.x, self.dy = x, dy
        return _conv_weight_grad(x, dy, self.w_shape, self.stride, self.padding)

    def backward(self, g):
        need_x, need_dy = self.needs_input_grad
        return (_conv_input_grad(self.dy, g, self.x.shape, self.stride, self.padding)
                if need_x else None,
                _conv(self.x, g, self.stride, self.padding) if need_dy else None)

    def backward_graph(self, g):
        need_x, need_dy = self.needs_input_grad
        x, dy = self.inputs
        return (Conv2dInputGrad(x.shape, self.stride, self.padding)(dy, g) if need_x else None,
                Conv2d(self.stride, self.padding)(x, g) if need_dy else None)


def conv2d_backward_graph(op, dy):
    """Conv2d's gradients as recorded ops (``Conv2d.backward_graph``)."""
    needs = op.needs_input_grad
    x, w = op.inputs[0], op.inputs[1]
    dx = (Conv2dInputGrad(x.shape, op.stride, op.padding)(dy, w) if needs[0] else None)
    dw = (Conv2dWeightGrad(w.shape, op.stride, op.padding)(x, dy) if needs[1] else None)
    if len(needs) == 2:
        return dx, dw
    db = dy.sum(axis=(0, 2, 3)) if needs[2] else None
    return dx, dw, db


# ----------------------------------------------------------------------------- pooling


def max_pool_winners(x, kernel, stride, padding):
    """Flat index into x padded with −∞ (N, C, H + 2·PH, W + 2·PW) of each window's winner.

    The winner is the window's first maximum in row-major order (MaxPool2d's rule at ties).
    Returns (winners (N, C, OH, OW) of intp, the padded shape).
    """
    (KH, KW), (SH, SW) = kernel, stride
    fill = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    xp = pad(x, padding, fill)
    N, C, HP, WP = xp.shape
    OH, OW = 1 + (HP - KH) // SH, 1 + (WP - KW) // SW
    view = window_view(xp, kernel, stride, (OH, OW))                    # (N, C, KH, KW, OH, OW)
    k = view.reshape(N, C, KH * KW, OH, OW).argmax(axis=2)             # first maximum
    i, j = np.divmod(k, KW)
    rows = np.arange(OH)[:, None] * SH + i
    cols = np.arange(OW) * SW + j
    planes = np.arange(N * C).reshape(N, C, 1, 1) * (HP * WP)
    return planes + rows * WP + cols, xp.shape


def _scatter_winners(dy, winners, padded_shape, padding):
    flat = np.bincount(winners.reshape(-1), weights=dy.reshape(-1),
                       minlength=math.prod(padded_shape))
    return _unpad(flat.astype(dy.dtype, copy=False).reshape(padded_shape), padding)


def _gather_winners(g, winners, padding):
    return pad(g, padding).reshape(-1)[winners]


class MaxPool2dBackward(Function):
    """MaxPool2d's backward as an op of dy: dx = dy added at each window's winner.

    Linear in dy; the winners depend on x only through comparisons, so its derivative in x is
    zero almost everywhere (the winners are fixed). dL/d(dy) = g at the winners
    (MaxPool2dGather). Shapes: dy (N, C, OH, OW) → dx (N, C, H, W). Saved: the winners.
    """

    def __init__(self, kernel_size, stride, padding):
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, dy, x):
        self.winners, self.padded = max_pool_winners(x, self.kernel_size, self.stride,
                                                     self.padding)
        return _scatter_winners(dy, self.winners, self.padded, self.padding)

    def backward(self, g):
        return _gather_winners(g, self.winners, self.padding), None

    def backward_graph(self, g):
        return MaxPool2dGather(self.kernel_size, self.stride, self.padding)(
            g, self.inputs[1]), None


class MaxPool2dGather(Function):
    """Each window's winner picked from g: y[n, c, oh, ow] = g at the winner of window (oh, ow).

    The Jacobian of max pooling applied to g; linear in g. dL/dg = dL/dy scattered to the
    winners (MaxPool2dBackward). Shapes: g, x (N, C, H, W) → (N, C, OH, OW). Saved: winners.
    """

    def __init__(self, kernel_size, stride, padding):
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, g, x):
        self.winners, self.padded = max_pool_winners(x, self.kernel_size, self.stride,
                                                     self.padding)
        return _gather_winners(g, self.winners, self.padding)

    def backward(self, dy):
        return _scatter_winners(dy, self.winners, self.padded, self.padding), None

    def backward_graph(self, dy):
        return MaxPool2dBackward(self.kernel_size, self.stride, self.padding)(
            dy, self.inputs[1]), None


class AvgPool2dBackward(Function):
    """AvgPool2d's backward as an op of dy: each dy / (KH·KW) added over its window.

    Linear; its adjoint is average pooling itself: dL/d(dy) = avg_pool2d(g).
    Shapes: dy (N, C, OH, OW) → dx ``x_shape`` (N, C, H, W). Saved: nothing.
    """

    def __init__(self, kernel_size, stride, padding, x_shape):
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.x_shape = tuple(x_shape)

    def forward(self, dy):
        (KH, KW), (PH, PW) = self.kernel_size, self.padding
        N, C, H, W = self.x_shape
        dyk = dy * dy.dtype.type(1 / (KH * KW))
        dxp = np.zeros((N, C, H + 2 * PH, W + 2 * PW), dy.dtype)
        for index in _offset_slices(self.kernel_size, self.stride, dy.shape[2:]):
            dxp[index] += dyk
        return _unpad(dxp, self.padding)

    def backward(self, g):
        return AvgPool2d(self.kernel_size, self.stride, self.padding).forward(g)

    def backward_graph(self, g):
        return AvgPool2d(self.kernel_size, self.stride, self.padding)(g)


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
