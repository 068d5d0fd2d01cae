"""The book's layers (``common/layers.py``, chapters 5 – 7) as minigrad ops.

Each layer is a :class:`minigrad.Function` written as the book writes it: the same steps in
``forward`` and ``backward``, the same names (``mask``, ``col``, ``col_W``, ``arg_max``,
``xc``, ``xn``, ``std``). What changes to fit the op contract:

- The parameters are inputs, not attributes: ``Affine()(x, W, b)``, and the gradients come
  back from ``backward`` instead of being stored as ``self.dW``; the tape puts them in
  ``W.grad``. The book's settings (stride, pad, dropout_ratio, train_flg) go to ``__init__``.
- ``backward`` multiplies by the incoming gradient and never writes into it (the book's ReLU
  zeroes ``dout`` in place; the book's SoftmaxWithLoss ignores ``dout``, which is 1 there).
- The dtype of the input is kept (float32 stays float32).

These are the plain versions, short enough to read beside the book. The ops in
:mod:`minigrad.functional` compute the same values and gradients faster; ``tests/test_book.py``
holds each pair equal and ``docs/book.md`` says why the fast one is faster.
"""

from __future__ import annotations

import numpy as np

from minigrad.book.functions import cross_entropy_error, softmax
from minigrad.book.util import _out_size, col2im, im2col
from minigrad.function import Function
from minigrad.ops import dropout as _dropout

__all__ = ["Relu", "Sigmoid", "Affine", "SoftmaxWithLoss", "Convolution", "Pooling", "Dropout",
           "BatchNormalization", "Im2col", "Col2im"]


class Relu(Function):
    """ReLU (book 5.5.1): y = x if x > 0 else 0.    dL/dx = dL/dy if x > 0 else 0.

    Any shape. At x = 0 the output and the gradient are 0 (the mask is x ≤ 0, as the book's).
    Saved: ``mask``.

    >>> from minigrad import Tensor
    >>> Relu()(Tensor(np.array([-1.0, 2.0]))).data
    array([0., 2.])
    """

    def forward(self, x):
        self.mask = (x <= 0)
        out = x.copy()
        out[self.mask] = 0
        return out

    def backward(self, dout):
        dx = dout.copy()       # the book writes into dout; here dout stays untouched
        dx[self.mask] = 0
        return dx

    def backward_graph(self, dout):
        return dout * (~self.mask).astype(dout.dtype)   # the mask is a constant


class Sigmoid(Function):
    """Sigmoid (book 5.5.2): y = 1 / (1 + exp(−x)).    dL/dx = dL/dy · y (1 − y).

    Any shape. Saved: ``out`` (y), which is all the gradient needs. For x below about −709
    exp(−x) overflows to inf in float64 and y is 0 with a NumPy warning, as in the book.

    >>> from minigrad import Tensor
    >>> Sigmoid()(Tensor(np.array([0.0]))).data
    array([0.5])
    """

    def forward(self, x):
        out = 1 / (1 + np.exp(-x))
        self.out = out
        return out

    def backward(self, dout):
        return dout * (1.0 - self.out) * self.out

    def backward_graph(self, dout):
        y = self.output
        return dout * (1.0 - y) * y


class Affine(Function):
    """Affine (book 5.6.2): Y = X·W + b     X:(N, D)  W:(D, M)  b:(M,)  Y:(N, M)

    dL/dX = dL/dY · Wᵀ    dL/dW = Xᵀ · dL/dY    dL/db = Σₙ dL/dY[n]

    An input (N, C, H, W) after a convolution is reshaped to (N, C·H·W) first and dL/dX is
    reshaped back (book 7.5). Saved: ``x`` (flattened), ``W``, ``original_x_shape``.

    >>> from minigrad import Tensor
    >>> Affine()(Tensor(np.ones((2, 3))), Tensor(np.ones((3, 4))), Tensor(np.arange(4.0))).data
    array([[3., 4., 5., 6.],
           [3., 4., 5., 6.]])
    """

    def forward(self, x, W, b):  # noqa: N803  (the book's names)
        self.original_x_shape = x.shape
        x = x.reshape(x.shape[0], -1)
        if W.ndim != 2 or x.shape[1] != W.shape[0] or np.shape(b) != (W.shape[1],):
            raise ValueError(f"Affine: need x (N, D), W (D, M) and b (M,); got x.shape="
                             f"{self.original_x_shape} (D={x.shape[1]}), W.shape={W.shape}, "
                             f"b.shape={np.shape(b)}")
        self.x, self.W = x, W
        return np.dot(x, W) + b

    def backward(self, dout):
        dx = np.dot(dout, self.W.T)
        dW = np.dot(self.x.T, dout)
        db = np.sum(dout, axis=0)
        return dx.reshape(*self.original_x_shape), dW, db

    def backward_graph(self, dout):
        x, W, _ = self.inputs
        x2 = x.reshape(x.shape[0], -1)
        return (dout @ W.T).reshape(*x.shape), x2.T @ dout, dout.sum(axis=0)


class SoftmaxWithLoss(Function):
    """Softmax-with-Loss (book 5.6.3): L = −(1/N) Σₙ log(softmax(x)ₙ,tₙ + δ).

    dL/dx = (softmax(x) − onehot(t)) / N · dL     (t gets no gradient)

    x: scores (N, K); t: labels (N,) or one-hot rows (N, K); L: a 0-d array. The gradient is
    the book's (y − t) / N, which leaves out δ: it is the gradient of the loss without δ, and
    each sample's part of it differs from the derivative of the δ loss by the factor
    y_t / (y_t + δ) (1 − 1e-6 at y_t = 0.1 with the book's δ = 1e-7). ``delta=0`` gives the
    exact log-likelihood (the value of ``minigrad.functional.softmax_cross_entropy``).
    Saved: ``y`` (softmax(x)) and ``t``.

    Args (settings):
        delta: the book's δ inside the log.

    >>> from minigrad import Tensor
    >>> loss = SoftmaxWithLoss(delta=0)(Tensor(np.zeros((2, 2))), np.array([0, 1]))
    >>> round(float(loss.data), 6)   # log 2
    0.693147
    """

    def __init__(self, delta=1e-7):
        self.delta = delta

    def forward(self, x, t):
        t = np.asarray(t)
        if x.ndim != 2 or t.shape not in ((x.shape[0],), x.shape):
            raise ValueError(f"SoftmaxWithLoss: need scores (N, K) and labels (N,) or one-hot "
                             f"(N, K); got x.shape={x.shape}, t.shape={t.shape}")
        self.t = t
        self.y = softmax(x)
        return np.asarray(cross_entropy_error(self.y, t, self.delta), dtype=x.dtype)

    def backward(self, dout):
        batch_size = self.t.shape[0]
        if self.t.size == self.y.size:  # one-hot
            dx = (self.y - self.t) / batch_size
        else:
            dx = self.y.copy()
            dx[np.arange(batch_size), self.t] -= 1
            dx = dx / batch_size
        return dx * dout, None

    def backward_graph(self, dout):
        from minigrad.functional import softmax as softmax_op

        x = self.inputs[0]
        t = self.t
        if t.size != x.data.size:  # labels → one-hot rows
            t = np.eye(x.shape[1], dtype=x.dtype)[t]
        return (softmax_op(x, axis=-1) - t.astype(x.dtype)) * (dout / len(t)), None


class Im2col(Function):
    """im2col as an op: col = im2col(x) (N·OH·OW, C·FH·FW).    dL/dx = col2im(dL/dcol).

    im2col only copies elements, so its gradient adds each copy's gradient back: col2im, its
    adjoint. Recorded in the gradients of ``Convolution`` and ``Pooling`` (``backward_graph``),
    so that they can be differentiated again.
    """

    def __init__(self, filter_h, filter_w, stride=1, pad=0):
        self.filter_h, self.filter_w = filter_h, filter_w
        self.stride, self.pad = stride, pad

    def forward(self, x):
        self.x_shape = x.shape
        return im2col(x, self.filter_h, self.filter_w, self.stride, self.pad)

    def backward(self, dcol):
        return col2im(dcol, self.x_shape, self.filter_h, self.filter_w, self.stride, self.pad)

    def backward_graph(self, dcol):
        return Col2im(self.x_shape, self.filter_h, self.filter_w, self.stride, self.pad)(dcol)


class Col2im(Function):
    """col2im as an op: x = col2im(col).    dL/dcol = im2col(dL/dx), its adjoint."""

    def __init__(self, input_shape, filter_h, filter_w, stride=1, pad=0):
        self.input_shape = tuple(input_shape)
        self.filter_h, self.filter_w = filter_h, filter_w
        self.stride, self.pad = stride, pad

    def forward(self, col):
        return col2im(col, self.input_shape, self.filter_h, self.filter_w, self.stride,
                      self.pad)

    def backward(self, dx):
        return im2col(dx, self.filter_h, self.filter_w, self.stride, self.pad)

    def backward_graph(self, dx):
        return Im2col(self.filter_h, self.filter_w, self.stride, self.pad)(dx)


class Convolution(Function):
    """Convolution (book 7.4.3): im2col, one matrix product, and col2im for the gradient.

    y[n, f, oh, ow] = Σ_{c,i,j} W[f, c, i, j] · xp[n, c, oh·S + i, ow·S + j] + b[f]

    With col = im2col(x) (N·OH·OW, C·FH·FW) and col_W = W.reshape(FN, −1)ᵀ:
    Y = col · col_W + b, so (as the affine layer)
    dL/dcol = dL/dY · col_Wᵀ → dL/dx = col2im(dL/dcol)    dL/dcol_W = colᵀ · dL/dY
    dL/db = Σ dL/dY over N, OH, OW.

    x:(N, C, H, W)  W:(FN, C, FH, FW)  b:(FN,)  y:(N, FN, OH, OW),
    OH = (H + 2·pad − FH) // stride + 1 (likewise OW). Saved: ``col``, ``col_W``, x's shape.

    Args (settings):
        stride, pad: ints, as in the book.
    """

    def __init__(self, stride=1, pad=0):
        self.stride = stride
        self.pad = pad

    def forward(self, x, W, b):  # noqa: N803
        if x.ndim != 4 or W.ndim != 4 or x.shape[1] != W.shape[1] or np.shape(b) != W.shape[:1]:
            raise ValueError(f"Convolution: need x (N, C, H, W), W (FN, C, FH, FW) and b (FN,); "
                             f"got x.shape={x.shape}, W.shape={W.shape}, b.shape={np.shape(b)}")
        FN, C, FH, FW = W.shape
        N = x.shape[0]
        out_h, out_w = _out_size("Convolution", x.shape, FH, FW, self.stride, self.pad)
        col = im2col(x, FH, FW, self.stride, self.pad)
        col_W = W.reshape(FN, -1).T
        out = np.dot(col, col_W) + b
        out = out.reshape(N, out_h, out_w, -1).transpose(0, 3, 1, 2)
        self.x_shape, self.W_shape = x.shape, W.shape
        self.col, self.col_W = col, col_W
        return out

    def backward(self, dout):
        FN, C, FH, FW = self.W_shape
        dout = dout.transpose(0, 2, 3, 1).reshape(-1, FN)
        db = np.sum(dout, axis=0)
        dW = np.dot(self.col.T, dout).transpose(1, 0).reshape(FN, C, FH, FW)
        dcol = np.dot(dout, self.col_W.T)
        dx = col2im(dcol, self.x_shape, FH, FW, self.stride, self.pad)
        return dx, dW, db

    def backward_graph(self, dout):
        x, W, _ = self.inputs
        FN, C, FH, FW = W.shape
        dout = dout.transpose(0, 2, 3, 1).reshape(-1, FN)
        col = Im2col(FH, FW, self.stride, self.pad)(x)
        dW = (col.T @ dout).T.reshape(FN, C, FH, FW)
        dcol = dout @ W.reshape(FN, -1)                  # col_Wᵀ
        dx = Col2im(x.shape, FH, FW, self.stride, self.pad)(dcol)
        return dx, dW, dout.sum(axis=0)


class Pooling(Function):
    """Max pooling (book 7.4.4): im2col, then the maximum of each row and its argmax.

    y[n, c, oh, ow] = max_{i,j} xp[n, c, oh·S + i, ow·S + j]
    dL/dx: each dL/dy goes to the (first) largest element of its window, through col2im.

    x:(N, C, H, W) → y:(N, C, OH, OW). The book pads with zeros (its im2col's padding), so a
    padded window of negative values has the maximum 0 and sends no gradient to x;
    ``minigrad.functional.max_pool2d`` pads with −∞. The two agree without padding, or with
    positive inputs. (The book's OH leaves out the padding, which only works with pad = 0;
    here OH = (H + 2·pad − pool_h) // stride + 1.) Saved: ``arg_max`` and x's shape.

    Args (settings):
        pool_h, pool_w: the window; stride (1 by default, as in the book), pad: ints.

    >>> from minigrad import Tensor
    >>> Pooling(2, 2, stride=2)(Tensor(np.arange(16.0).reshape(1, 1, 4, 4))).data[0, 0]
    array([[ 5.,  7.],
           [13., 15.]])
    """

    def __init__(self, pool_h, pool_w, stride=1, pad=0):
        self.pool_h = pool_h
        self.pool_w = pool_w
        self.stride = stride
        self.pad = pad

    def forward(self, x):
        out_h, out_w = _out_size("Pooling", x.shape, self.pool_h, self.pool_w, self.stride,
                                 self.pad)
        N, C = x.shape[:2]
        col = im2col(x, self.pool_h, self.pool_w, self.stride, self.pad)
        col = col.reshape(-1, self.pool_h * self.pool_w)   # one row per (n, oh, ow, c)
        arg_max = np.argmax(col, axis=1)
        out = np.max(col, axis=1)
        out = out.reshape(N, out_h, out_w, C).transpose(0, 3, 1, 2)
        self.x_shape, self.arg_max = x.shape, arg_max
        return out

    def backward(self, dout):
        dout = dout.transpose(0, 2, 3, 1)
        pool_size = self.pool_h * self.pool_w
        dmax = np.zeros((dout.size, pool_size), dout.dtype)
        dmax[np.arange(self.arg_max.size), self.arg_max.flatten()] = dout.flatten()
        dmax = dmax.reshape(dout.shape + (pool_size,))
        dcol = dmax.reshape(dmax.shape[0] * dmax.shape[1] * dmax.shape[2], -1)
        return col2im(dcol, self.x_shape, self.pool_h, self.pool_w, self.stride, self.pad)

    def backward_graph(self, dout):
        # The winners are constants: dmax is dout times a one-hot row per window.
        pool_size = self.pool_h * self.pool_w
        winners = np.zeros((self.arg_max.size, pool_size), dout.dtype)
        winners[np.arange(self.arg_max.size), self.arg_max] = 1
        dmax = dout.transpose(0, 2, 3, 1).reshape(-1, 1) * winners
        dcol = dmax.reshape(-1, self.x_shape[1] * pool_size)
        return Col2im(self.x_shape, self.pool_h, self.pool_w, self.stride, self.pad)(dcol)


class Dropout(Function):
    """Dropout (book 6.4.3), not inverted: the kept values are not scaled in training; at test
    time every value is scaled by (1 − ratio) instead.

    Training:  y = x ⊙ m, m[k] = 1 if u[k] > dropout_ratio else 0, u ~ U[0, 1)
               dL/dx = dL/dy ⊙ m
    Test:      y = x · (1 − dropout_ratio)      dL/dx = dL/dy · (1 − dropout_ratio)

    So E[y] in training equals y at test. ``minigrad.functional.dropout`` is inverted dropout
    (scale by 1/(1 − p) in training, identity at test): with the same mask its training output
    is this one's divided by (1 − p), and at test this one's is (1 − p) times its. Any shape.
    Saved: ``mask``.

    Args (settings):
        dropout_ratio: the probability of dropping an element.
        train_flg: training (True) or test (False), as the book's ``forward(x, train_flg)``.
        rng: a ``np.random.Generator`` (default: the one ``minigrad.nn.manual_seed`` seeds).
    """

    def __init__(self, dropout_ratio=0.5, train_flg=True, rng=None):
        if not 0 <= dropout_ratio < 1:
            raise ValueError(f"Dropout: dropout_ratio must be in [0, 1), got {dropout_ratio}")
        self.dropout_ratio = dropout_ratio
        self.train_flg = train_flg
        self.rng = rng

    def forward(self, x):
        if self.train_flg:
            rng = self.rng if self.rng is not None else _dropout.generator()
            self.mask = rng.random(x.shape) > self.dropout_ratio
            return x * self.mask
        return x * x.dtype.type(1.0 - self.dropout_ratio)

    def backward(self, dout):
        if self.train_flg:
            return dout * self.mask
        return dout * dout.dtype.type(1.0 - self.dropout_ratio)

    def backward_graph(self, dout):
        if self.train_flg:
            return dout * self.mask.astype(dout.dtype)     # the same mask, a constant
        return dout * (1.0 - self.dropout_ratio)


class BatchNormalization(Function):
    """Batch Normalization (book 6.3), per activation: each of the D = C·H·W values of a sample
    is normalised over the batch (an input (N, C, H, W) is reshaped to (N, D), as the book does).

    Training:  μ = (1/N) Σₙ xₙ    xc = x − μ    σ² = (1/N) Σₙ xcₙ²    std = √(σ² + ε)
               xn = xc / std      y = γ ⊙ xn + β
               running_mean ← momentum · running_mean + (1 − momentum) · μ   (likewise σ²)
    Test:      xn = (x − running_mean) / √(running_var + ε)     y = γ ⊙ xn + β

    Gradients (training, the book's computational graph, figure 6-17):
    dL/dβ = Σₙ dL/dy    dL/dγ = Σₙ xn ⊙ dL/dy    dxn = γ ⊙ dL/dy
    dstd = −Σₙ dxn ⊙ xc / std²    dσ² = dstd / (2 std)
    dxc = dxn / std + (2/N) xc ⊙ dσ²    dL/dx = dxc − (1/N) Σₙ dxc
    At test the statistics are constants: dL/dx = γ ⊙ dL/dy / std.

    x:(N, D) or (N, C, H, W); gamma, beta:(D,). ``minigrad.functional.batch_norm`` normalises
    per channel of (N, C, *); on x.reshape(N, −1) that is this per-activation normalisation.
    The book's momentum 0.9 weighs the old running value; PyTorch's (and ``batch_norm``'s)
    ``momentum=0.1`` weighs the new batch value, the same update. (Their running variance
    uses the unbiased N/(N − 1) batch variance; the book's uses σ².) Saved: ``xc``, ``xn``,
    ``std``, ``batch_size``.

    Args (settings):
        momentum: the weight of the old running statistics (0.9 in the book).
        running_mean, running_var: (D,) float arrays, updated in place in training and used
            at test (the book keeps them in the layer; an op is called once, so they live
            with the caller). Needed at test; may be None in training.
        train_flg: training (True) or test (False).
        eps: the book's 10e-7 under the square root.
    """

    def __init__(self, momentum=0.9, running_mean=None, running_var=None, train_flg=True,
                 eps=10e-7):
        self.momentum = momentum
        self.train_flg = train_flg
        self.eps = eps
        self._running_mean = running_mean
        self._running_var = running_var

    def forward(self, x, gamma, beta):
        self.input_shape = x.shape
        x = x.reshape(x.shape[0], -1)
        D = x.shape[1]
        if np.shape(gamma) != (D,) or np.shape(beta) != (D,):
            raise ValueError(f"BatchNormalization: gamma and beta need shape (D,)=({D},) for "
                             f"x.shape={self.input_shape}; got gamma.shape={np.shape(gamma)}, "
                             f"beta.shape={np.shape(beta)}")
        rm, rv = self._running_mean, self._running_var
        if self.train_flg:
            mu = x.mean(axis=0)
            xc = x - mu
            var = np.mean(xc ** 2, axis=0)
            std = np.sqrt(var + self.eps)
            xn = xc / std
            self.batch_size, self.xc, self.xn, self.std = x.shape[0], xc, xn, std
            if rm is not None:
                rm[...] = self.momentum * rm + (1 - self.momentum) * mu
            if rv is not None:
                rv[...] = self.momentum * rv + (1 - self.momentum) * var
        else:
            if rm is None or rv is None:
                raise ValueError("BatchNormalization: train_flg=False needs running_mean and "
                                 "running_var")
            xc = x - rm
            self.std = np.sqrt(rv + self.eps)
            self.xn = xc / self.std
        self.gamma = gamma
        out = gamma * self.xn + beta
        return out.reshape(*self.input_shape)

    def backward(self, dout):
        dout = dout.reshape(dout.shape[0], -1)
        dbeta = dout.sum(axis=0)
        dgamma = np.sum(self.xn * dout, axis=0)
        dxn = self.gamma * dout
        if not self.train_flg:
            return (dxn / self.std).reshape(*self.input_shape), dgamma, dbeta
        dxc = dxn / self.std
        dstd = -np.sum((dxn * self.xc) / (self.std * self.std), axis=0)
        dvar = 0.5 * dstd / self.std
        dxc = dxc + (2.0 / self.batch_size) * self.xc * dvar
        dmu = np.sum(dxc, axis=0)
        dx = dxc - dmu / self.batch_size
        return dx.reshape(*self.input_shape), dgamma, dbeta

    def backward_graph(self, dout):
        # backward's steps on Tensors, with xc, std and xn recomputed from x on the tape.
        x, gamma, _ = self.inputs
        N = x.shape[0]
        x = x.reshape(N, -1)
        dout = dout.reshape(N, -1)
        if self.train_flg:
            xc = x - x.mean(axis=0)
            std = ((xc * xc).mean(axis=0) + self.eps).sqrt()
        else:
            xc = x - self._running_mean
            std = self.std                                   # a constant at test time
        xn = xc / std
        dbeta = dout.sum(axis=0)
        dgamma = (xn * dout).sum(axis=0)
        dxn = gamma * dout
        dxc = dxn / std
        if self.train_flg:
            dstd = -((dxn * xc) / (std * std)).sum(axis=0)
            dvar = 0.5 * dstd / std
            dxc = dxc + (2.0 / N) * xc * dvar
            dxc = dxc - dxc.sum(axis=0) / N
        return dxc.reshape(*self.input_shape), dgamma, dbeta
