"""Layers with parameters and the shape-changing layers: ``Linear``, ``Conv2d``,
``ConvTranspose2d``, ``MaxPool2d``, ``AvgPool2d``, ``AdaptiveAvgPool2d``, ``Flatten``,
``Unflatten``, ``Identity``, ``Dropout``.

Initialisation: weights are drawn from a normal distribution with standard deviation
``sqrt(2 / fan_in)`` (He et al., suited to ReLU networks), where ``fan_in`` is the number of
inputs of one output unit (``in_features`` for ``Linear``, ``C·FH·FW`` for ``Conv2d``). Pass
``init="xavier"`` (or ``"book-xavier"``) for ``sqrt(1 / fan_in)`` (the textbook's Xavier, suited
to sigmoid and tanh networks), ``init="glorot"`` for Glorot and Bengio's
``sqrt(2 / (fan_in + fan_out))``, or a number for a fixed standard deviation (the textbook's
``weight_init_std=0.01``). Biases start at zero. The draws come from a ``np.random.Generator``:
pass ``rng=`` to a layer, or call :func:`minigrad.nn.manual_seed` to reseed the generators that
layers and dropout use by default. :mod:`minigrad.nn.init` re-initialises any weight afterwards
(``kaiming_uniform_``, ``xavier_normal_``, ...)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from minigrad import functional as F
from minigrad.nn.init import _normal, init_std
from minigrad.nn.module import Module, Parameter
from minigrad.ops.linear import Affine
from minigrad.tensor import Tensor

__all__ = ["Linear", "Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d",
           "Flatten", "Unflatten", "Identity", "Dropout"]


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
        init: ``"he"`` (default), ``"xavier"``, ``"glorot"`` or a standard deviation (see the
            module doc).
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
        std = init_std(init, self.in_features, self.out_features)
        self.weight = Parameter(_normal((self.in_features, self.out_features), std, rng, dtype),
                                dtype=dtype)
        self.bias = Parameter(np.zeros(self.out_features), dtype=dtype) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        if isinstance(x, Tensor):
            shape = x._data.shape
            if len(shape) == 2 and shape[1] == self.in_features:
                # (N, D), the usual case: F.affine's op, called at once (its inputs are
                # Tensors already; at batch 1 each call counts)
                if self.bias is None:
                    return Affine()(x, self.weight)
                return Affine()(x, self.weight, self.bias)
        else:
            shape = np.shape(x)
        features = math.prod(shape[1:]) if len(shape) >= 2 else None
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

    x:(N, C, H, W) → y:(N, FN, OH, OW), with weight (FN, C/G, FH, FW), bias (FN,),
    OH = (H + 2·PH − DH·(FH − 1) − 1) // SH + 1 and likewise OW (D = 1: the textbook's
    (H + 2·PH − FH) // SH + 1).

    Args:
        in_channels, out_channels: C and FN (both divisible by ``groups``).
        kernel_size: FH = FW, or (FH, FW).
        stride, padding: an int or a pair (rows, columns); padding may also be ``"valid"``
            (none) or ``"same"`` (stride 1: the output keeps H and W).
        dilation: the spacing of the kernel's taps (an int or a pair).
        groups: G: filter f sees only the C/G input channels of its group.
        bias: learn a bias per output channel.
        init, rng, dtype: as for :class:`Linear`; fan_in = (C/G)·FH·FW, fan_out = FN·FH·FW.

    >>> conv = Conv2d(1, 30, kernel_size=5)
    >>> conv
    Conv2d(1, 30, kernel_size=5, stride=1, padding=0)  [weight (30, 1, 5, 5)  bias (30,)]
    >>> Conv2d(4, 8, 3, padding="same", groups=2)(Tensor(np.zeros((1, 4, 9, 9)))).shape
    (1, 8, 9, 9)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] | str = 0,
                 dilation: int | tuple[int, int] = 1, groups: int = 1, bias: bool = True, *,
                 init: str | float = "he", rng: np.random.Generator | None = None,
                 dtype: Any = np.float32) -> None:
        super().__init__()
        layer = "Conv2d"
        self.in_channels = _count(in_channels, "in_channels", layer)
        self.out_channels = _count(out_channels, "out_channels", layer)
        self.kernel_size = _pair(kernel_size, "kernel_size", layer, 1)
        self.stride = _pair(stride, "stride", layer, 1)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{layer}: padding must be an int, a pair, 'valid' or 'same', "
                                 f"got {padding!r}")
            if padding == "same" and self.stride != (1, 1):
                raise ValueError(f"{layer}: padding='same' needs stride 1 (as in PyTorch), got "
                                 f"stride={_show(self.stride)}")
            self.padding: tuple[int, int] | str = (0, 0) if padding == "valid" else "same"
        else:
            self.padding = _pair(padding, "padding", layer, 0)
        self.dilation = _pair(dilation, "dilation", layer, 1)
        self.groups = _count(groups, "groups", layer)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"{layer}: groups={self.groups} must divide in_channels="
                             f"{self.in_channels} and out_channels={self.out_channels}")
        FH, FW = self.kernel_size
        C = self.in_channels // self.groups
        std = init_std(init, C * FH * FW, self.out_channels * FH * FW)
        shape = (self.out_channels, C, FH, FW)
        self.weight = Parameter(_normal(shape, std, rng, dtype), dtype=dtype)
        self.bias = Parameter(np.zeros(self.out_channels), dtype=dtype) if bias else None

    def _short(self) -> str:
        return (f"Conv2d({self.in_channels}, {self.out_channels}, "
                f"kernel_size={_show(self.kernel_size)})")

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape if isinstance(x, (Tensor, np.ndarray)) else np.shape(x)
        if len(shape) != 4:
            raise ValueError(f"{self._short()}: expected input (N, C, H, W), got "
                             f"{len(shape)} dimension(s); x.shape={shape}")
        if shape[1] != self.in_channels:
            raise ValueError(f"{self._short()}: input has {shape[1]} channels, expected "
                             f"{self.in_channels}; x.shape={shape}")
        padding = self.padding
        if padding != "same":
            (FH, FW), (PH, PW), (DH, DW) = self.kernel_size, padding, self.dilation
            KH, KW = DH * (FH - 1) + 1, DW * (FW - 1) + 1   # the dilated kernel's extent
            if shape[2] + 2 * PH < KH or shape[3] + 2 * PW < KW:
                raise ValueError(f"{self._short()}: the padded input ({shape[2] + 2 * PH}, "
                                 f"{shape[3] + 2 * PW}) is smaller than the kernel ({KH}, {KW}); "
                                 f"x.shape={shape}, padding={_show(padding)}")
        return F.conv2d(x, self.weight, self.bias, self.stride, padding, self.dilation,
                        self.groups)

    def extra_repr(self) -> str:
        padding = self.padding if isinstance(self.padding, str) else _show(self.padding)
        text = (f"{self.in_channels}, {self.out_channels}, "
                f"kernel_size={_show(self.kernel_size)}, stride={_show(self.stride)}, "
                f"padding={padding}")
        if self.dilation != (1, 1):
            text += f", dilation={_show(self.dilation)}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        return text if self.bias is not None else text + ", bias=False"


class ConvTranspose2d(Module):
    """2-D transposed convolution ("deconvolution"): the transpose of a :class:`Conv2d` in its
    input, an upsampling layer (stride 2 roughly doubles H and W).

    x:(N, C_in, H, W) → y:(N, C_out, OH, OW), with weight (C_in, C_out/G, FH, FW) (PyTorch's
    layout), bias (C_out,), OH = (H − 1)·SH − 2·PH + DH·(FH − 1) + OPH + 1 and likewise OW.

    Args:
        in_channels, out_channels: C_in and C_out, both divisible by ``groups``.
        kernel_size: FH = FW, or (FH, FW).
        stride, padding, dilation: those of the convolution it transposes (an int or a pair).
        output_padding: rows and columns added at the bottom and right, smaller than the stride
            or the dilation.
        groups: G.
        bias: learn a bias per output channel.
        init, rng, dtype: as for :class:`Linear`; fan_in = (C_in/G)·FH·FW (the products that
            sum into one output at stride 1), fan_out = (C_out/G)·FH·FW.

    >>> up = ConvTranspose2d(8, 4, kernel_size=2, stride=2)
    >>> up(Tensor(np.zeros((1, 8, 5, 5), np.float32))).shape
    (1, 4, 10, 10)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                 output_padding: int | tuple[int, int] = 0, groups: int = 1, bias: bool = True,
                 dilation: int | tuple[int, int] = 1, *, init: str | float = "he",
                 rng: np.random.Generator | None = None, dtype: Any = np.float32) -> None:
        super().__init__()
        layer = "ConvTranspose2d"
        self.in_channels = _count(in_channels, "in_channels", layer)
        self.out_channels = _count(out_channels, "out_channels", layer)
        self.kernel_size = _pair(kernel_size, "kernel_size", layer, 1)
        self.stride = _pair(stride, "stride", layer, 1)
        self.padding = _pair(padding, "padding", layer, 0)
        self.output_padding = _pair(output_padding, "output_padding", layer, 0)
        self.dilation = _pair(dilation, "dilation", layer, 1)
        self.groups = _count(groups, "groups", layer)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"{layer}: groups={self.groups} must divide in_channels="
                             f"{self.in_channels} and out_channels={self.out_channels}")
        for i, side in enumerate(("rows", "columns")):
            if self.output_padding[i] >= max(self.stride[i], self.dilation[i]):
                raise ValueError(
                    f"{layer}: output_padding must be smaller than the stride or the dilation; "
                    f"got output_padding={_show(self.output_padding)} for stride="
                    f"{_show(self.stride)}, dilation={_show(self.dilation)} ({side})")
        FH, FW = self.kernel_size
        G = self.groups
        std = init_std(init, self.in_channels // G * FH * FW, self.out_channels // G * FH * FW)
        shape = (self.in_channels, self.out_channels // G, FH, FW)
        self.weight = Parameter(_normal(shape, std, rng, dtype), dtype=dtype)
        self.bias = Parameter(np.zeros(self.out_channels), dtype=dtype) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        shape = np.shape(x.data if isinstance(x, Tensor) else x)
        short = (f"ConvTranspose2d({self.in_channels}, {self.out_channels}, "
                 f"kernel_size={_show(self.kernel_size)})")
        if len(shape) != 4:
            raise ValueError(f"{short}: expected input (N, C, H, W), got {len(shape)} "
                             f"dimension(s); x.shape={shape}")
        if shape[1] != self.in_channels:
            raise ValueError(f"{short}: input has {shape[1]} channels, expected "
                             f"{self.in_channels}; x.shape={shape}")
        return F.conv_transpose2d(x, self.weight, self.bias, stride=self.stride,
                                  padding=self.padding, output_padding=self.output_padding,
                                  groups=self.groups, dilation=self.dilation)

    def extra_repr(self) -> str:
        text = (f"{self.in_channels}, {self.out_channels}, "
                f"kernel_size={_show(self.kernel_size)}, stride={_show(self.stride)}")
        for name, value, default in (("padding", self.padding, (0, 0)),
                                     ("output_padding", self.output_padding, (0, 0)),
                                     ("dilation", self.dilation, (1, 1))):
            if value != default:
                text += f", {name}={_show(value)}"
        if self.groups != 1:
            text += f", groups={self.groups}"
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
        shape = x._data.shape if type(x) is Tensor else np.shape(
            x.data if isinstance(x, Tensor) else x)
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


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size, whatever the input's: output row o averages the
    input rows [⌊o·H/OH⌋, ⌈(o+1)·H/OH⌉) (PyTorch's windows; equal windows when OH divides H),
    likewise for columns.

    Args:
        output_size: OH = OW, or (OH, OW); None in the pair keeps that side of the input.
            ``AdaptiveAvgPool2d(1)`` is global average pooling.

    >>> AdaptiveAvgPool2d((1, 2))(Tensor(np.arange(8.0).reshape(1, 1, 2, 4))).data[0, 0]
    array([[2.5, 4.5]])
    """

    def __init__(self, output_size: int | tuple[int | None, int | None]) -> None:
        super().__init__()
        pair = (tuple(output_size) if isinstance(output_size, (tuple, list))
                else (output_size, output_size))
        if len(pair) != 2 or not all(
                v is None or (isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                              and v >= 1) for v in pair):
            raise ValueError(f"AdaptiveAvgPool2d: output_size must be a positive int or a pair "
                             f"of positive ints (or None), got {output_size!r}")
        self.output_size = tuple(None if v is None else int(v) for v in pair)

    def forward(self, x: Tensor) -> Tensor:
        shape = np.shape(x.data if isinstance(x, Tensor) else x)
        if len(shape) != 4:
            raise ValueError(f"AdaptiveAvgPool2d(output_size={self.output_size}): expected "
                             f"input (N, C, H, W), got {len(shape)} dimension(s); "
                             f"x.shape={shape}")
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        OH, OW = self.output_size
        return f"output_size={OH if OH == OW else self.output_size}"


class Flatten(Module):
    """Merge the axes start_dim … end_dim into one; by default (N, ...) → (N, everything else),
    e.g. between the conv layers and the affine layers. With nothing to merge (start_dim and
    end_dim the same axis, a 2-D input by default) the input is returned itself, as PyTorch's
    ``Flatten`` does.

    >>> Flatten()(Tensor(np.zeros((2, 3, 4, 5)))).shape, Flatten(0, 1)(np.zeros((2, 3, 4))).shape
    ((2, 60), (6, 4))
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        for what, value in (("start_dim", start_dim), ("end_dim", end_dim)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"Flatten: {what} must be an int, got {value!r}")
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)

    def forward(self, x: Tensor) -> Tensor:
        if (self.start_dim, self.end_dim) == (1, -1):
            return F.flatten(x)
        x = x if isinstance(x, Tensor) else Tensor(x)
        shape = x.shape
        start = _axis(self.start_dim, len(shape), "Flatten", "start_dim", shape)
        end = _axis(self.end_dim, len(shape), "Flatten", "end_dim", shape)
        if start > end:
            raise ValueError(f"Flatten: start_dim={self.start_dim} comes after end_dim="
                             f"{self.end_dim} for x.shape={shape}")
        if start == end:                    # nothing to merge: x itself, as in PyTorch
            return x
        merged = int(np.prod(shape[start:end + 1]))
        return x.reshape(shape[:start] + (merged,) + shape[end + 1:])

    def extra_repr(self) -> str:
        if (self.start_dim, self.end_dim) == (1, -1):
            return ""
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


def _axis(dim: int, ndim: int, layer: str, what: str, shape: tuple[int, ...]) -> int:
    if not -max(ndim, 1) <= dim < max(ndim, 1):
        raise ValueError(f"{layer}: {what}={dim} is out of range for x.shape={shape}")
    return dim % max(ndim, 1)


class Unflatten(Module):
    """Split axis ``dim`` into the shape ``unflattened_size`` (the inverse of :class:`Flatten`),
    e.g. (N, 784) → (N, 1, 28, 28) with ``Unflatten(1, (1, 28, 28))``; one size may be −1.

    >>> Unflatten(1, (2, 3))(Tensor(np.zeros((4, 6, 5)))).shape
    (4, 2, 3, 5)
    """

    def __init__(self, dim: int, unflattened_size: tuple[int, ...]) -> None:
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
            raise TypeError(f"Unflatten: dim must be an int, got {dim!r}")
        sizes = tuple(unflattened_size) if isinstance(unflattened_size, (tuple, list)) else None
        if (not sizes or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool)
                                 and (n >= 0 or n == -1) for n in sizes)
                or sum(n == -1 for n in sizes) > 1):
            raise ValueError(f"Unflatten: unflattened_size must be a tuple of sizes with at most "
                             f"one -1, got {unflattened_size!r}")
        self.dim, self.unflattened_size = int(dim), tuple(int(n) for n in sizes)

    def forward(self, x: Tensor) -> Tensor:
        x = x if isinstance(x, Tensor) else Tensor(x)
        shape = x.shape
        axis = _axis(self.dim, len(shape), "Unflatten", "dim", shape)
        sizes = self.unflattened_size
        known = int(np.prod([n for n in sizes if n != -1]))
        fits = (shape[axis] == known if -1 not in sizes
                else known > 0 and shape[axis] % known == 0)
        if not fits:
            raise ValueError(f"Unflatten: axis {self.dim} of x.shape={shape} has "
                             f"{shape[axis]} elements, which do not make "
                             f"unflattened_size={sizes}")
        return x.reshape(shape[:axis] + sizes + shape[axis + 1:])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


class Identity(Module):
    """y = x: a placeholder (e.g. for a layer taken out); accepts and ignores any arguments.

    >>> x = Tensor([1.0]); Identity(54, unused=0.1)(x) is x
    True
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, x: Any) -> Any:
        return x


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
