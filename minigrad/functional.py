"""The layers of the textbook CNN as functions: ``import minigrad.functional as F``.

Each function builds one op (a :class:`minigrad.Function` whose forward and backward sit side
by side, see ``minigrad/ops``) and calls it, so each layer is one node on the tape. Arguments
may be Tensors, NumPy arrays or nested lists (lists become float32 Tensors); settings that are
not tensors (stride, padding, kernel_size, axis, p, training) are keyword-style arguments named
as in PyTorch. Weight layouts follow the textbook: conv w is (FN, C, FH, FW), affine w is
(in, out).

>>> import numpy as np
>>> import minigrad
>>> import minigrad.functional as F
>>> x = minigrad.Tensor(np.arange(16.0, dtype=np.float32).reshape(1, 1, 4, 4))
>>> w = minigrad.Tensor(np.ones((1, 1, 2, 2), np.float32), requires_grad=True)
>>> y = F.max_pool2d(F.relu(F.conv2d(x, w)), 2)
>>> y.shape, y.dtype
((1, 1, 1, 1), dtype('float32'))
>>> y.sum().backward()
>>> w.grad[0, 0]
array([[ 5.,  6.],
       [ 9., 10.]], dtype=float32)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from minigrad.ops.activation import ReLU, Sigmoid, Tanh
from minigrad.ops.conv import Conv2d, ConvTranspose2d, col2im, im2col
from minigrad.ops.dropout import Dropout, manual_seed
from minigrad.ops.elementwise import ELU, LeakyReLU, Softplus
from minigrad.ops.linear import Affine
from minigrad.ops.loss import (
    BinaryCrossEntropy,
    BinaryCrossEntropyWithLogits,
    CrossEntropy,
    L1Loss,
    LogSoftmax,
    MSELoss,
    NLLLoss,
    Softmax,
    SoftmaxCrossEntropy,
)
from minigrad.ops.normalization import BatchNorm, GroupNorm, LayerNorm
from minigrad.ops.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from minigrad.ops.shape import Reshape
from minigrad.tensor import Tensor

__all__ = [
    "conv2d", "im2col", "col2im", "max_pool2d", "avg_pool2d",
    "conv_transpose2d", "adaptive_avg_pool2d",
    "relu", "sigmoid", "tanh", "affine", "softmax", "log_softmax", "softmax_cross_entropy",
    "dropout", "manual_seed", "flatten",
    "leaky_relu", "elu", "softplus", "mse_loss", "l1_loss", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "nll_loss",
]


def _tensor(x: Any) -> Any:
    """Tensors and arrays pass through (ops take both); anything else becomes a Tensor."""
    if isinstance(x, _PASS_THROUGH) or x is None:
        return x
    return Tensor(x)


_PASS_THROUGH = (Tensor, np.ndarray)


def _inputs(*xs: Any) -> list:
    """The op's inputs: each converted by ``_tensor``, a missing (None) bias left out."""
    return [_tensor(x) for x in xs if x is not None]


def conv2d(x: Any, w: Any, b: Any = None, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1) -> Tensor:
    """2-D convolution (cross-correlation) of a batch of images: im2col and one matrix product.

    Args:
        x: images (N, C, H, W).
        w: filters (FN, C/groups, FH, FW).
        b: bias (FN,) or None.
        stride: an int or an (SH, SW) pair.
        padding: an int or a (PH, PW) pair of zeros added on each side; ``'valid'`` (no
            padding) or ``'same'`` (stride 1 only: y keeps x's H and W; D·(F − 1) zeros in
            all, the odd one at the bottom and right, as PyTorch pads).
        dilation: an int or a (DH, DW) pair: the spacing of the kernel's taps.
        groups: G, dividing C and FN: filter f sees only the C/G channels of its group.

    Returns:
        y (N, FN, OH, OW) with OH = 1 + (H + 2·PH − DH·(FH − 1) − 1) // SH (likewise OW).

    Dilation, groups and uneven 'same' padding run a general path (a dilated im2col per group);
    the default settings keep the fast path. See ``docs/ops.md``.

    >>> x = np.arange(9.0).reshape(1, 1, 3, 3)
    >>> conv2d(x, np.ones((1, 1, 2, 2)), np.array([0.5])).data[0, 0]
    array([[ 8.5, 12.5],
           [20.5, 24.5]])
    >>> conv2d(x, np.ones((1, 1, 2, 2)), padding="same").data[0, 0]   # the extra row/column last
    array([[ 8., 12.,  7.],
           [20., 24., 13.],
           [13., 15.,  8.]])
    """
    op = Conv2d(stride, padding, dilation, groups)
    if b is None:
        return op(_tensor(x), _tensor(w))
    return op(_tensor(x), _tensor(w), _tensor(b))


def conv_transpose2d(x: Any, w: Any, b: Any = None, stride: Any = 1, padding: Any = 0,
                     output_padding: Any = 0, groups: int = 1, dilation: Any = 1) -> Tensor:
    """2-D transposed convolution ("deconvolution"): the transpose of :func:`conv2d` in x.

    Its forward is conv2d's input gradient (a product with the weight, then col2im) and its
    backward is conv2d's forward (im2col of dy, then a product). It upsamples: with stride 2 a
    (H, W) image becomes about (2H, 2W).

    Args:
        x: (N, C_in, H, W).
        w: (C_in, C_out/groups, FH, FW), PyTorch's layout (the conv2d it transposes has this
            weight as its (FN, C, FH, FW)).
        b: bias (C_out,) or None.
        stride, padding, dilation: those of the conv2d it transposes; padding removes PH rows
            at the top and at the bottom of the full output.
        output_padding: an int or an (h, w) pair, smaller than the stride or the dilation:
            rows and columns added at the bottom and right.
        groups: G, dividing C_in.

    Returns:
        y (N, C_out, OH, OW), OH = (H − 1)·SH − 2·PH + DH·(FH − 1) + OPH + 1 (likewise OW).

    >>> conv_transpose2d(np.ones((1, 1, 2, 2)), np.ones((1, 1, 2, 2)), stride=2).shape
    (1, 1, 4, 4)
    >>> conv_transpose2d(np.ones((1, 1, 2, 2)), np.ones((1, 1, 2, 2))).data[0, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    """
    return ConvTranspose2d(stride=stride, padding=padding, output_padding=output_padding,
                           groups=groups, dilation=dilation)(*_inputs(x, w, b))


def max_pool2d(x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
               dilation: Any = 1, ceil_mode: bool = False,
               return_indices: bool = False) -> Any:
    """Max pooling over KH×KW windows; the gradient goes to the first maximum of each window.

    Args:
        x: (N, C, H, W).
        kernel_size: an int or a (KH, KW) pair.
        stride: an int or an (SH, SW) pair; default: the kernel size.
        padding: an int or a (PH, PW) pair, each smaller than the kernel; padded cells count
            as −∞, so they never win (a window of −∞ sends its gradient to its first input
            cell).
        dilation: an int or a (DH, DW) pair: the spacing of the window's cells.
        ceil_mode: round OH and OW up instead of down (PyTorch's rule: the last window must
            start inside the input or the top/left padding, else it is dropped).
        return_indices: also return the flat index h·W + w of each window's winner in its
            input plane, an int64 array (N, C, OH, OW), as PyTorch does.

    Returns:
        y (N, C, OH, OW), OH = 1 + (H + 2·PH − DH·(KH − 1) − 1) // SH (rounded up with
        ceil_mode); or (y, indices) with return_indices.

    Dilation, return_indices and a ceil_mode that changes the size run a general path (one
    loop over the window's offsets); the default settings keep the fast paths.

    >>> max_pool2d(np.arange(16.0).reshape(1, 1, 4, 4), 2).data[0, 0]
    array([[ 5.,  7.],
           [13., 15.]])
    >>> y, indices = max_pool2d(np.arange(25.0).reshape(1, 1, 5, 5), 2, ceil_mode=True,
    ...                         return_indices=True)
    >>> indices[0, 0]
    array([[ 6,  8,  9],
           [16, 18, 19],
           [21, 23, 24]])
    """
    op = MaxPool2d(kernel_size, stride=stride, padding=padding, dilation=dilation,
                   ceil_mode=ceil_mode, return_indices=return_indices)
    y = op(_tensor(x))
    if return_indices:
        return y, op.indices.astype(np.int64, copy=False)
    return y


def avg_pool2d(x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
               ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None) -> Tensor:
    """Average pooling over KH×KW windows; zero padding is counted in the average.

    Args:
        x: (N, C, H, W), floating point.
        kernel_size, stride, padding: as for :func:`max_pool2d` (padded cells count as 0).
        ceil_mode: round OH and OW up, as for :func:`max_pool2d`.
        count_include_pad: divide by the window's cells inside the padded input (KH·KW except
            where ceil_mode's last window overhangs); False: by its input cells only.
        divisor_override: a nonzero int to divide every window by instead.

    Returns:
        (N, C, OH, OW).

    The options, where they change anything, run a general path; the default settings keep
    the fast paths.

    >>> avg_pool2d(np.arange(16.0).reshape(1, 1, 4, 4), 2).data[0, 0]
    array([[ 2.5,  4.5],
           [10.5, 12.5]])
    >>> avg_pool2d(np.ones((1, 1, 2, 2)), 2, stride=1, padding=1,
    ...            count_include_pad=False).data[0, 0]
    array([[1., 1., 1.],
           [1., 1., 1.],
           [1., 1., 1.]])
    """
    return AvgPool2d(kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode,
                     count_include_pad=count_include_pad,
                     divisor_override=divisor_override)(_tensor(x))


def adaptive_avg_pool2d(x: Any, output_size: Any) -> Tensor:
    """Average pooling to a fixed output size: PyTorch's windows rows [⌊o·H/OH⌋, ⌈(o+1)·H/OH⌉).

    Args:
        x: (N, C, H, W), floating point.
        output_size: an int or an (OH, OW) pair (None in the pair keeps that side of x);
            1 gives global average pooling.

    Returns:
        (N, C, OH, OW).

    >>> adaptive_avg_pool2d(np.arange(16.0).reshape(1, 1, 4, 4), 1).data[0, 0]
    array([[7.5]])
    >>> adaptive_avg_pool2d(np.arange(3.0).reshape(1, 1, 1, 3), (1, 2)).data[0, 0]
    array([[0.5, 1.5]])
    """
    return AdaptiveAvgPool2d(output_size)(_tensor(x))


def relu(x: Any) -> Tensor:
    """max(x, 0) elementwise; the gradient at 0 is 0.

    >>> relu([-1.0, 2.0]).data
    array([0., 2.], dtype=float32)
    """
    return ReLU()(_tensor(x))


def sigmoid(x: Any) -> Tensor:
    """1 / (1 + e⁻ˣ) elementwise, without overflow for large |x|.

    >>> sigmoid([0.0]).data
    array([0.5], dtype=float32)
    """
    return Sigmoid()(_tensor(x))


def tanh(x: Any) -> Tensor:
    """tanh x elementwise.

    >>> tanh([0.0]).data
    array([0.], dtype=float32)
    """
    return Tanh()(_tensor(x))


def affine(x: Any, w: Any, b: Any = None) -> Tensor:
    """The fully connected layer Y = X·W + b, with W of shape (in, out) as in the textbook.

    Args:
        x: (N, in), or (N, …) flattened to (N, in) (the gradient keeps x's shape).
        w: (in, out).
        b: (out,) or None.

    Returns:
        (N, out).

    >>> affine(np.ones((2, 3)), np.ones((3, 4)), np.arange(4.0)).data
    array([[3., 4., 5., 6.],
           [3., 4., 5., 6.]])
    """
    if b is None:
        return Affine()(_tensor(x), _tensor(w))
    return Affine()(_tensor(x), _tensor(w), _tensor(b))


def softmax(x: Any, axis: int = -1) -> Tensor:
    """exp(x) / Σ exp(x) along ``axis``, computed after subtracting the maximum.

    >>> softmax(np.array([0.0, np.log(3.0)])).data
    array([0.25, 0.75])
    """
    return Softmax(axis=axis)(_tensor(x))


def log_softmax(x: Any, axis: int = -1) -> Tensor:
    """log softmax(x) along ``axis``, as (x − m) − log Σ exp(x − m): finite for any finite x.

    >>> log_softmax(np.array([0.0, 1e4])).data
    array([-10000.,      0.])
    """
    return LogSoftmax(axis=axis)(_tensor(x))


def softmax_cross_entropy(logits: Any, t: Any, reduction: str = "mean",
                          ignore_index: int | None = None, label_smoothing: float = 0.0,
                          weight: Any = None) -> Tensor:
    """Cross-entropy between softmax(logits) and the labels, as one fused op (PyTorch's
    ``cross_entropy``).

    Args:
        logits: (N, C) scores, or (N, C, d1, …) (e.g. per-pixel classes). Integer logits are
            computed in floating point (float32, or float64 for 32- and 64-bit integers).
        t: class indices (N,) / (N, d1, …) as integers, or soft labels shaped like the logits
            (one-hot or probability rows). Labels get no gradient.
        reduction: 'mean' (over the labels; with ``weight``, divided by the total weight of
            the labels, as PyTorch), 'sum', or 'none' (one loss per label, shape (N, d1, …)).
        ignore_index: a class-index value that counts for nothing (e.g. -100 as PyTorch's
            default); None (the default) accepts only labels in [0, C).
        label_smoothing: ε in [0, 1]: the target becomes (1 − ε)·onehot + ε/C.
        weight: (C,) per-class weights, or None.

    Returns:
        A 0-d Tensor (or the per-label losses for 'none'). With the defaults its gradient with
        respect to the logits is (softmax(logits) − onehot(t)) / N times the incoming one.

    >>> z = np.array([[0.0, 0.0], [0.0, 1e4]])
    >>> float(softmax_cross_entropy(z, np.array([0, 1])).data)   # log 2 / 2
    0.34657359027997264
    >>> softmax_cross_entropy(z, np.array([0, -100]), ignore_index=-100, reduction="none").data
    array([0.69314718, 0.        ])
    """
    labels = t if isinstance(t, (Tensor, np.ndarray)) else np.asarray(t)
    if (reduction == "mean" and ignore_index is None and not label_smoothing and weight is None
            and np.ndim(logits.data if isinstance(logits, Tensor) else logits) == 2):
        return SoftmaxCrossEntropy()(_tensor(logits), labels)   # the fast path of the defaults
    op = CrossEntropy(reduction=reduction, ignore_index=ignore_index,
                      label_smoothing=label_smoothing, weight=weight)
    return op(_tensor(logits), labels)


def leaky_relu(x: Any, negative_slope: float = 0.01) -> Tensor:
    """x for x > 0, negative_slope · x otherwise (PyTorch's ``leaky_relu``).

    >>> leaky_relu(np.array([-2.0, 3.0]), 0.1).data
    array([-0.2,  3. ])
    """
    return LeakyReLU(negative_slope)(_tensor(x))


def elu(x: Any, alpha: float = 1.0) -> Tensor:
    """x for x > 0, alpha · (eˣ − 1) otherwise (PyTorch's ``elu``).

    >>> elu(np.array([-1.0, 2.0])).data.round(4)
    array([-0.6321,  2.    ])
    """
    return ELU(alpha)(_tensor(x))


def softplus(x: Any, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """(1/beta) · log(1 + e^{beta·x}), and x itself where beta·x > threshold (as PyTorch).

    >>> softplus(np.array([0.0, 30.0])).data.round(4)
    array([ 0.6931, 30.    ])
    """
    return Softplus(beta, threshold)(_tensor(x))


def _label(t: Any) -> Any:
    return t if isinstance(t, (Tensor, np.ndarray)) else np.asarray(t)


def mse_loss(y: Any, t: Any, reduction: str = "mean") -> Tensor:
    """Mean squared error (y − t)², reduced by 'mean', 'sum' or 'none'.

    Args:
        y: predictions; t: targets of the same shape (no broadcasting). Both may require
            gradients.
        reduction: 'mean' | 'sum' | 'none'.

    Returns:
        A 0-d Tensor, or the elementwise losses for 'none'.

    >>> mse_loss(np.array([1.0, 3.0]), np.array([0.0, 1.0])).data
    array(2.5)
    """
    return MSELoss(reduction)(_tensor(y), _label(t))


def l1_loss(y: Any, t: Any, reduction: str = "mean") -> Tensor:
    """Mean absolute error |y − t| (gradient 0 where y = t), reduced as ``mse_loss``.

    >>> l1_loss(np.array([1.0, 3.0]), np.array([0.0, 1.0]), reduction="sum").data
    array(3.)
    """
    return L1Loss(reduction)(_tensor(y), _label(t))


def binary_cross_entropy(p: Any, t: Any, reduction: str = "mean", weight: Any = None) -> Tensor:
    """−(t·log p + (1 − t)·log(1 − p)) for probabilities p, each log clamped at −100 (PyTorch).

    Args:
        p: probabilities in [0, 1] (e.g. a sigmoid's output); values outside are an error.
        t: targets in [0, 1], same shape.
        reduction: 'mean' | 'sum' | 'none'.
        weight: an array of weights that broadcasts against p (PyTorch's ``weight``), or None.

    Returns:
        A 0-d Tensor, or the elementwise losses for 'none'.

    >>> binary_cross_entropy(np.array([0.5, 1.0]), np.array([1.0, 0.0]), "none").data.round(4)
    array([  0.6931, 100.    ])
    """
    return BinaryCrossEntropy(reduction, weight)(_tensor(p), _label(t))


def binary_cross_entropy_with_logits(z: Any, t: Any, reduction: str = "mean",
                                     weight: Any = None, pos_weight: Any = None) -> Tensor:
    """binary_cross_entropy(sigmoid(z), t) as one fused op: finite and exact at logits ±1e4.

    Args:
        z: logits; t: targets in [0, 1], same shape.
        reduction: 'mean' | 'sum' | 'none'.
        weight: an array of weights that broadcasts against z, or None.
        pos_weight: the weight of the positive term, e.g. per class (C,) for z (N, C) as in
            PyTorch (negatives / positives for imbalanced labels), or None.

    Returns:
        A 0-d Tensor, or the elementwise losses for 'none'; dL/dz = sigmoid(z) − t.

    >>> binary_cross_entropy_with_logits(np.array([1e4, 0.0]), np.array([0.0, 1.0]), "none").data
    array([1.00000000e+04, 6.93147181e-01])
    """
    op = BinaryCrossEntropyWithLogits(reduction, weight=weight, pos_weight=pos_weight)
    return op(_tensor(z), _label(t))


def nll_loss(log_probs: Any, t: Any, reduction: str = "mean", ignore_index: int | None = None,
             weight: Any = None) -> Tensor:
    """Negative log-likelihood −log_probs[n, t[n]] (PyTorch's ``nll_loss``).

    Args:
        log_probs: (N, C) or (N, C, d1, …), e.g. from ``log_softmax(x, axis=1)``.
        t: integer class indices (N,) or (N, d1, …).
        reduction, ignore_index, weight: as for :func:`softmax_cross_entropy`.

    Returns:
        A 0-d Tensor, or the per-label losses for 'none'.

    >>> round(float(nll_loss(np.log(np.array([[0.25, 0.75]])), np.array([1])).data), 4)
    0.2877
    """
    op = NLLLoss(reduction=reduction, ignore_index=ignore_index, weight=weight)
    return op(_tensor(log_probs), _label(t))


def dropout(x: Any, p: float = 0.5, training: bool = True,
            rng: np.random.Generator | None = None) -> Any:
    """Inverted dropout: zero elements with probability ``p``, scale the rest by 1/(1 − p).

    Args:
        x: any shape.
        p: the drop probability, in [0, 1).
        training: when False, dropout is the identity and ``x`` itself is returned (no op is
            recorded).
        rng: a ``np.random.Generator`` to draw the mask from; default: the module generator,
            reseeded by :func:`manual_seed`.

    Returns:
        A Tensor of x's shape (x itself when not training).

    >>> manual_seed(0)
    >>> y = dropout(np.ones(6), p=0.5)
    >>> sorted(set(y.data.tolist()))   # kept elements are scaled by 1 / (1 − p)
    [0.0, 2.0]
    >>> x = Tensor([1.0])
    >>> dropout(x, training=False) is x
    True
    """
    op = Dropout(p, training=training, rng=rng)  # checks p even when not training
    if not training:
        return x
    return op(_tensor(x))


def flatten(x: Any) -> Tensor:
    """(N, …) → (N, everything else): keeps the batch axis, e.g. before an affine layer. A
    Tensor (N, D) has nothing to merge and is returned itself, as PyTorch's ``flatten`` returns
    its input when no axes are flattened.

    >>> flatten(np.zeros((2, 3, 4, 5))).shape
    (2, 60)
    """
    x = _tensor(x)
    shape = x.shape
    if len(shape) == 2 and isinstance(x, Tensor):
        return x
    if len(shape) < 1:
        raise ValueError(f"flatten: input must have a batch axis, got x.shape={shape}")
    return Reshape((shape[0], math.prod(shape[1:])))(x)


# ---------------------------------------------------------------------------- normalisation
__all__ += ["batch_norm", "layer_norm", "group_norm"]


def _affine_params(x: Any, w: Any, b: Any, shape: tuple[int, ...]) -> tuple:
    """w and b as op inputs; a missing one becomes a constant of ones or zeros in x's dtype
    (it then gets no gradient)."""
    if w is not None and b is not None:
        return _tensor(w), _tensor(b)
    data = x.data if isinstance(x, Tensor) else np.asarray(x)
    dtype = data.dtype if data.dtype.kind == "f" else np.float32
    w = np.ones(shape, dtype) if w is None else _tensor(w)
    b = np.zeros(shape, dtype) if b is None else _tensor(b)
    return w, b


def _stat_array(name: str, value: Any) -> np.ndarray | None:
    """The array a running statistic is kept in (a Tensor's data, or the array itself)."""
    if value is None or isinstance(value, np.ndarray):
        return value
    if isinstance(value, Tensor):
        return value.data
    raise TypeError(f"batch_norm: {name} must be an ndarray or a Tensor (updated in place), "
                    f"got {type(value).__name__}")


def _check_momentum(momentum: Any) -> None:
    if momentum is None:
        raise ValueError("batch_norm: momentum=None (a cumulative average) needs the number of "
                         "batches seen, which the BatchNorm modules keep; pass the factor "
                         "1/num_batches_tracked as momentum, or use minigrad.nn.BatchNorm1d/"
                         "BatchNorm2d(momentum=None)")
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float, np.number)) \
            or not 0 <= momentum <= 1:
        raise ValueError(f"batch_norm: momentum must be a number in [0, 1], got {momentum!r}")


def batch_norm(x: Any, running_mean: Any, running_var: Any, weight: Any = None,
               bias: Any = None, training: bool = False, momentum: float = 0.1,
               eps: float = 1e-5) -> Tensor:
    """Batch normalisation per channel, as PyTorch's ``batch_norm``.

    In training, each channel is normalised with the mean and the biased variance of the
    batch (over N and the further axes), and the running statistics, when given, are updated
    in place: ``running = (1 − momentum)·running + momentum·batch``, with the *unbiased*
    variance of the batch in ``running_var``. Out of training, the running statistics
    normalise.

    Args:
        x: (N, C) or (N, C, *) (e.g. (N, C, L) or (N, C, H, W)).
        running_mean, running_var: (C,) ndarrays or Tensors, or None (training only: no
            running statistics kept).
        weight, bias: (C,), or None for 1 and 0.
        training: use the batch's statistics (and update the running ones).
        momentum: the weight of the new batch in the running statistics, in [0, 1]. None
            (PyTorch's cumulative average) needs the count of batches seen, which only the
            modules keep (``minigrad.nn.BatchNorm1d(momentum=None)``); here it is an error.
        eps: ε added to the variance.

    Returns:
        y, shaped like x.

    >>> x = np.array([[1.0, 10.0], [3.0, 30.0]])
    >>> mean, var = np.zeros(2), np.ones(2)
    >>> batch_norm(x, mean, var, training=True, eps=0.0).data
    array([[-1., -1.],
           [ 1.,  1.]])
    >>> mean, var                    # 0.9·old + 0.1·batch (unbiased variance)
    (array([0.2, 2. ]), array([ 1.1, 20.9]))
    """
    op = "batch_norm"
    # The common arguments (a float momentum, arrays) pass the checks in one test each: at
    # batch 1 the call's own work is a few µs, and every check counts.
    if type(momentum) is not float or not 0.0 <= momentum <= 1.0:
        _check_momentum(momentum)
    mean_array = (running_mean if type(running_mean) is np.ndarray
                  else _stat_array("running_mean", running_mean))
    var_array = (running_var if type(running_var) is np.ndarray
                 else _stat_array("running_var", running_var))
    x = _tensor(x)
    shape = () if x is None else x.shape        # a Tensor's or an ndarray's
    C = shape[1] if len(shape) >= 2 else 0
    w, b = _affine_params(x, weight, bias, (C,))
    fn = BatchNorm(training, eps, mean_array, var_array)
    y = fn(x, w, b)
    if training and (mean_array is not None or var_array is not None):
        m = math.prod(shape) // C
        for name, array in (("running_mean", mean_array), ("running_var", var_array)):
            if array is not None and array.shape != (C,):
                raise ValueError(f"{op}: {name} must have shape ({C},) (one value per "
                                 f"channel) for an input of shape {shape}; got "
                                 f"{name}.shape={array.shape}")
        for stat, array, batch in ((running_mean, mean_array, fn.mu),
                                   (running_var, var_array, fn.var * (m / (m - 1)))):
            if array is None:
                continue
            if isinstance(stat, Tensor):
                array = stat._writable()      # counts as an in-place change of the Tensor
            array *= 1 - momentum
            array += momentum * batch.astype(array.dtype, copy=False)
    return y


def layer_norm(x: Any, normalized_shape: Any, weight: Any = None, bias: Any = None,
               eps: float = 1e-5) -> Tensor:
    """Layer normalisation over the trailing axes, as PyTorch's ``layer_norm``.

    Args:
        x: (*, D₁, …, D_k).
        normalized_shape: (D₁, …, D_k), or an int for k = 1.
        weight, bias: of ``normalized_shape`` (elementwise), or None for 1 and 0.
        eps: ε added to the variance.

    Returns:
        y, shaped like x: each sample standardised over its trailing axes (mean 0, biased
        variance 1), then scaled and shifted.

    >>> layer_norm(np.array([[1.0, 3.0], [0.0, 10.0]]), 2, eps=0.0).data
    array([[-1.,  1.],
           [-1.,  1.]])
    """
    fn = LayerNorm(normalized_shape, eps)
    x = _tensor(x)
    w, b = _affine_params(x, weight, bias, fn.normalized_shape)
    return fn(x, w, b)


def group_norm(x: Any, num_groups: int, weight: Any = None, bias: Any = None,
               eps: float = 1e-5) -> Tensor:
    """Group normalisation, as PyTorch's ``group_norm``: each sample's channels in
    ``num_groups`` groups, each group standardised over its channels and further axes.

    Args:
        x: (N, C) or (N, C, *), C divisible by ``num_groups``.
        num_groups: G.
        weight, bias: (C,) per channel, or None for 1 and 0.
        eps: ε added to the variance.

    Returns:
        y, shaped like x.

    >>> group_norm(np.array([[1.0, 3.0, 0.0, 10.0]]), 2, eps=0.0).data
    array([[-1.,  1., -1.,  1.]])
    """
    fn = GroupNorm(num_groups, eps)
    x = _tensor(x)
    shape = np.shape(x.data if isinstance(x, Tensor) else x)
    w, b = _affine_params(x, weight, bias, shape[1:2])
    return fn(x, w, b)
