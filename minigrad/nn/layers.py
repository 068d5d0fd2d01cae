"""Layers with parameters and the shape-changing layers: ``Linear``, ``Conv2d``, ``MaxPool2d``,
``AvgPool2d``, ``Flatten``, ``Dropout``.

Initialisation: weights are drawn from a normal distribution with standard deviation
``sqrt(2 / fan_in)`` (He et al., suited to ReLU networks), where ``fan_in`` is the number of
inputs of one output unit (``in_features`` for ``Linear``, ``C·FH·FW`` for ``Conv2d``). Pass
``init="xavier"`` for ``sqrt(1 / fan_in)`` (the textbook's Xavier, suited to sigmoid and tanh
networks) or a number for a fixed standard deviation (the textbook's ``weight_init_std=0.01``).
Biases start at zero. The draws come from a ``np.random.Generator``: pass ``rng=`` to a layer,
or call :func:`minigrad.nn.manual_seed` to reseed the generators that layers and dropout use by
default.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from minigrad import functional as F
from minigrad.nn.init import _normal, init_std
from minigrad.nn.module import Module, Parameter
from minigrad.tensor import Tensor

__all__ = ["Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "Flatten", "Dropout"]


def _pair(value: Any, what: str, layer: str, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints, each ≥ minimum, as a pair."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                 for v in pair):
        raise TypeError(f"{layer}: {what} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{layer}: {what} must be at least {minimum}, got {value!r}")
    return int(pair[0]), int(pair[1])


def _count(value: Any, what: str, layer: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{layer}: {what} must be a positive int, got {value!r}")
    if value < 1:
        raise ValueError(f"{layer}: {what} must be a positive int, got {value}")
    return int(value)


def _show(pair: tuple[int, int]) -> str:
    return str(pair[0]) if pair[0] == pair[1] else str(pair)


class Linear(Module):
    """Affine layer: y = x·W + b with W of shape (in_features, out_features), as the textbook.

    Inputs of shape (N, ...) are flattened to (N, in_features) first, so a Linear layer may
    follow a convolution or pooling layer directly.

    Args:
        in_features, out_features: D and M in x:(N, D), W:(D, M), b:(M,).
        bias: learn b (otherwise y = x·W).
        init: ``"he"`` (default), ``"xavier"`` or a standard deviation (see the module doc).
        rng: the generator for the initial weights (default: the one ``manual_seed`` sets).
        dtype: of the parameters.

    >>> layer = Linear(784, 100)
    >>> layer.weight.shape, layer.bias.shape, float(layer.bias.data.max())
    ((784, 100), (100,), 0.0)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 init: str | float = "he", rng: np.random.Generator | None = None,
                 dtype: Any = np.float32) -> None:
        super().__init__()
        self.in_features = _count(in_features, "in_features", "Linear")
        self.out_features = _count(out_features, "out_features", "Linear")
        std = init_std(init, self.in_features)
        self.weight = Parameter(_normal((self.in_features, self.out_features), std, rng, dtype),
                                dtype=dtype)
        self.bias = Parameter(np.zeros(self.out_features), dtype=dtype) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        shape = np.shape(x.data if isinstance(x, Tensor) else x)
        features = int(np.prod(shape[1:])) if len(shape) >= 2 else None
        if features != self.in_features:
            got = (f"input has {features} features" if features is not None
                   else f"input has {len(shape)} dimension(s), expected (N, ...)")
            raise ValueError(f"Linear({self.in_features}, {self.out_features}): {got}, "
                             f"expected {self.in_features}; x.shape={shape}")
        return F.affine(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Conv2d(Module):
    """2-D convolution (cross-correlation, as the textbook and PyTorch compute it).

    x:(N, C, H, W) → y:(N, FN, OH, OW), with weight (FN, C, FH, FW), bias (FN,),
    OH = (H + 2·PH − FH) // SH + 1 and likewise OW.

    Args:
        in_channels, out_channels: C and FN.
        kernel_size: FH = FW, or (FH, FW).
        stride, padding: an int or a pair (rows, columns).
        bias: learn a bias per output channel.
        init, rng, dtype: as for :class:`Linear`; fan_in = C·FH·FW.

    >>> conv = Conv2d(1, 30, kernel_size=5)
    >>> conv
    Conv2d(1, 30, kernel_size=5, stride=1, padding=0)  [weight (30, 1, 5, 5)  bias (30,)]
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                 bias: bool = True, *, init: str | float = "he",
                 rng: np.random.Generator | None = None, dtype: Any = np.float32) -> None:
        super().__init__()
        self.in_channels = _count(in_channels, "in_channels", "Conv2d")
        self.out_channels = _count(out_channels, "out_channels", "Conv2d")
        self.kernel_size = _pair(kernel_size, "kernel_size", "Conv2d", 1)
        self.stride = _pair(stride, "stride", "Conv2d", 1)
        self.padding = _pair(padding, "padding", "Conv2d", 0)
        FH, FW = self.kernel_size
        std = init_std(init, self.in_channels * FH * FW)
        shape = (self.out_channels, self.in_channels, FH, FW)
        self.weight = Parameter(_normal(shape, std, rng, dtype), dtype=dtype)
        self.bias = Parameter(np.zeros(self.out_channels), dtype=dtype) if bias else None

    def _short(self) -> str:
        return (f"Conv2d({self.in_channels}, {self.out_channels}, "
                f"kernel_size={_show(self.kernel_size)})")

    def forward(self, x: Tensor) -> Tensor:
        shape = np.shape(x.data if isinstance(x, Tensor) else x)
        if len(shape) != 4:
            raise ValueError(f"{self._short()}: expected input (N, C, H, W), got "
                             f"{len(shape)} dimension(s); x.shape={shape}")
        if shape[1] != self.in_channels:
            raise ValueError(f"{self._short()}: input has {shape[1]} channels, expected "
                             f"{self.in_channels}; x.shape={shape}")
        (FH, FW), (PH, PW) = self.kernel_size, self.padding
        if shape[2] + 2 * PH < FH or shape[3] + 2 * PW < FW:
            raise ValueError(f"{self._short()}: the padded input ({shape[2] + 2 * PH}, "
                             f"{shape[3] + 2 * PW}) is smaller than the kernel ({FH}, {FW}); "
                             f"x.shape={shape}, padding={_show(self.padding)}")
        return F.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)

    def extra_repr(self) -> str:
        text = (f"{self.in_channels}, {self.out_channels}, "
                f"kernel_size={_show(self.kernel_size)}, stride={_show(self.stride)}, "
                f"padding={_show(self.padding)}")
        return text if self.bias is not None else text + ", bias=False"


class _Pool2d(Module):
    _function = staticmethod(F.max_pool2d)

    def __init__(self, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] | None = None,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        layer = type(self).__name__
        self.kernel_size = _pair(kernel_size, "kernel_size", layer, 1)
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride", layer, 1)
        self.padding = _pair(padding, "padding", layer, 0)

    def forward(self, x: Tensor) -> Tensor:
        shape = np.shape(x.data if isinstance(x, Tensor) else x)
        if len(shape) != 4:
            raise ValueError(f"{type(self).__name__}(kernel_size={_show(self.kernel_size)}): "
                             f"expected input (N, C, H, W), got {len(shape)} dimension(s); "
                             f"x.shape={shape}")
        return type(self)._function(x, self.kernel_size, stride=self.stride,
                                    padding=self.padding)

    def extra_repr(self) -> str:
        text = f"kernel_size={_show(self.kernel_size)}, stride={_show(self.stride)}"
        return text + (f", padding={_show(self.padding)}" if any(self.padding) else "")


class MaxPool2d(_Pool2d):
    """Max pooling over KH×KW windows (stride defaults to the kernel size).

    >>> MaxPool2d(2)(Tensor(np.arange(16.0).reshape(1, 1, 4, 4))).data[0, 0]
    array([[ 5.,  7.], [13., 15.]])
    """

    _function = staticmethod(F.max_pool2d)


class AvgPool2d(_Pool2d):
    """Average pooling over KH×KW windows (stride defaults to the kernel size).

    >>> AvgPool2d(2)(Tensor(np.arange(16.0).reshape(1, 1, 4, 4))).data[0, 0]
    array([[ 2.5,  4.5], [10.5, 12.5]])
    """

    _function = staticmethod(F.avg_pool2d)


class Flatten(Module):
    """(N, ...) → (N, everything else), e.g. between the conv layers and the affine layers."""

    def forward(self, x: Tensor) -> Tensor:
        return F.flatten(x)


class Dropout(Module):
    """In training mode, zero each element with probability ``p`` and scale the rest by
    1 / (1 − p) (inverted dropout: nothing to rescale at test time); in eval mode, y = x.

    Args:
        p: the drop probability, in [0, 1).
        rng: the generator for the masks (default: the one ``manual_seed`` sets).

    >>> drop = Dropout(0.5).eval()
    >>> drop(Tensor([1.0, 2.0])).data
    array([1., 2.], dtype=float32)
    """

    def __init__(self, p: float = 0.5, *, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float, np.floating)) or not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be a probability in [0, 1), got {p!r}")
        self.p = float(p)
        self.rng = rng

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, p=self.p, training=self.training, rng=self.rng)

    def extra_repr(self) -> str:
        return f"p={self.p}"
