"""Normalisation layers: ``BatchNorm1d``, ``BatchNorm2d``, ``LayerNorm``, ``GroupNorm``.

Each calls one fused op of ``minigrad.ops.normalization`` (forward and backward derived in its
docstring) through ``minigrad.functional``, with PyTorch's arguments and defaults. The weight
starts at ones and the bias at zeros, so a fresh layer only standardises.

Batch normalisation keeps running statistics as buffers (``running_mean``, ``running_var``,
``num_batches_tracked``): ``state_dict`` saves them and ``load_state_dict`` restores them. In
training mode a batch is normalised with its own mean and biased variance, and the running
statistics move towards the batch's (with its *unbiased* variance):
``running = (1 − momentum)·running + momentum·batch``; ``momentum=None`` takes the cumulative
average instead (momentum 1/num_batches_tracked). In evaluation mode (``eval()``) the running
statistics normalise, so the output of a sample does not depend on the rest of its batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from minigrad import functional as F
from minigrad.nn.module import Module, Parameter
from minigrad.ops.normalization import _shape_tuple
from minigrad.tensor import Tensor

__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm"]


def _count(value: Any, what: str, layer: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{layer}: {what} must be a positive int, got {value!r}")
    return int(value)


def _eps(value: Any, layer: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or \
            not value >= 0:
        raise ValueError(f"{layer}: eps must be a number ≥ 0, got {value!r}")
    return float(value)


def _shape_of(x: Any) -> tuple[int, ...]:
    return x.shape if isinstance(x, (Tensor, np.ndarray)) else np.shape(x)


class _BatchNorm(Module):
    """Batch normalisation over (N, C, *) per channel; the subclasses fix the input's ndim."""

    layouts: dict[int, str] = {}     # ndim → the layout's name, for messages

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, *,
                 dtype: Any = np.float32) -> None:
        super().__init__()
        layer = type(self).__name__
        self.num_features = C = _count(num_features, "num_features", layer)
        self.eps = _eps(eps, layer)
        if momentum is not None and (isinstance(momentum, bool) or not isinstance(
                momentum, (int, float, np.number)) or not 0 <= momentum <= 1):
            raise ValueError(f"{layer}: momentum must be a number in [0, 1] or None (a "
                             f"cumulative average), got {momentum!r}")
        self.momentum = None if momentum is None else float(momentum)
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        self.weight = Parameter(np.ones(C), dtype=dtype) if affine else None
        self.bias = Parameter(np.zeros(C), dtype=dtype) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(C, dtype))
            self.register_buffer("running_var", np.ones(C, dtype))
            self.register_buffer("num_batches_tracked", np.array(0, np.int64))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batches seen (in place)."""
        if self.track_running_stats:
            self.running_mean[...] = 0
            self.running_var[...] = 1
            self.num_batches_tracked[...] = 0

    def _check_input(self, shape: tuple[int, ...]) -> None:
        if len(shape) in self.layouts and shape[1] == self.num_features:
            return                          # (the messages are made only for a wrong input)
        layer = f"{type(self).__name__}({self.num_features})"
        if len(shape) not in self.layouts:
            expected = " or ".join(f"{n}-D {name}" for n, name in self.layouts.items())
            raise ValueError(f"{layer}: expected {expected} input, got {len(shape)}-D input; "
                             f"x.shape={shape}")
        if shape[1] != self.num_features:
            raise ValueError(f"{layer}: input has C={shape[1]} channels, expected "
                             f"num_features={self.num_features}; x.shape={shape}")

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(_shape_of(x))
        track = self.training and self.track_running_stats
        momentum = self.momentum
        if track and momentum is None:           # cumulative average over the batches
            momentum = 1.0 / (int(self.num_batches_tracked) + 1)
        # Batch statistics in training, and always when no running statistics are kept.
        use_batch = self.training or self.running_mean is None
        y = F.batch_norm(x, self.running_mean if track or not self.training else None,
                         self.running_var if track or not self.training else None,
                         self.weight, self.bias, training=use_batch,
                         momentum=0.0 if momentum is None else momentum, eps=self.eps)
        if track:                                # counted once the batch has been accepted
            self.num_batches_tracked += 1
        return y

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps:g}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of features (N, C) or of sequences (N, C, L), per channel C.

    Args:
        num_features: C.
        eps: ε added to the variance.
        momentum: the weight of each new batch in the running statistics, or None for their
            cumulative average.
        affine: learn a weight and a bias per channel (else y is x standardised).
        track_running_stats: keep running statistics for evaluation; without them the batch's
            own statistics normalise in evaluation too.
        dtype: of the parameters and the running statistics.

    >>> bn = BatchNorm1d(3)
    >>> y = bn(Tensor(np.arange(12.0, dtype=np.float32).reshape(4, 3)))
    >>> y.data[:, 0].round(4)
    array([-1.3416, -0.4472,  0.4472,  1.3416], dtype=float32)
    >>> bn.running_mean.round(4), int(bn.num_batches_tracked)   # 0.1·(4.5, 5.5, 6.5)
    (array([0.45, 0.55, 0.65], dtype=float32), 1)
    >>> sorted(bn.state_dict())
    ['bias', 'num_batches_tracked', 'running_mean', 'running_var', 'weight']
    """

    layouts = {2: "(N, C)", 3: "(N, C, L)"}


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of images (N, C, H, W), per channel C (statistics over N, H, W).

    Args: as :class:`BatchNorm1d`.

    >>> bn = BatchNorm2d(2).eval()      # evaluation: running mean 0 and variance 1
    >>> bn(Tensor(np.full((1, 2, 1, 1), 3.0, np.float32))).data.ravel().round(4)
    array([3., 3.], dtype=float32)
    """

    layouts = {4: "(N, C, H, W)"}


class LayerNorm(Module):
    """Layer normalisation: each sample standardised over its trailing axes.

    Args:
        normalized_shape: the trailing axes (D₁, …, D_k) of the input, or an int for k = 1.
        eps: ε added to the variance.
        elementwise_affine: learn a weight and a bias of ``normalized_shape``.
        bias: learn the bias (with ``elementwise_affine``).
        dtype: of the parameters.

    The same in training and evaluation (no running statistics).

    >>> ln = LayerNorm(2)
    >>> ln(Tensor(np.array([[1.0, 3.0]], np.float32))).data.round(4)
    array([[-1.,  1.]], dtype=float32)
    """

    def __init__(self, normalized_shape: Any, eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True, *,
                 dtype: Any = np.float32) -> None:
        super().__init__()
        self.normalized_shape = _shape_tuple("LayerNorm", normalized_shape)
        self.eps = _eps(eps, "LayerNorm")
        self.elementwise_affine = bool(elementwise_affine)
        shape = self.normalized_shape
        self.weight = Parameter(np.ones(shape), dtype=dtype) if elementwise_affine else None
        self.bias = (Parameter(np.zeros(shape), dtype=dtype) if elementwise_affine and bias
                     else None)

    def forward(self, x: Tensor) -> Tensor:
        shape, k = _shape_of(x), len(self.normalized_shape)
        if len(shape) < k or shape[len(shape) - k:] != self.normalized_shape:
            raise ValueError(f"LayerNorm({self.normalized_shape}): expected input of shape "
                             f"(*, {', '.join(map(str, self.normalized_shape))}); "
                             f"x.shape={shape}")
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps:g}, "
                f"elementwise_affine={self.elementwise_affine}")


class GroupNorm(Module):
    """Group normalisation: each sample's channels in groups, each group standardised.

    Args:
        num_groups: G, dividing ``num_channels``.
        num_channels: C of the input (N, C, *).
        eps: ε added to the variance.
        affine: learn a weight and a bias per channel.
        dtype: of the parameters.

    The same in training and evaluation (no running statistics).

    >>> gn = GroupNorm(2, 4)
    >>> gn(Tensor(np.array([[1.0, 3.0, 0.0, 10.0]], np.float32))).data.round(4)
    array([[-1.,  1., -1.,  1.]], dtype=float32)
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5,
                 affine: bool = True, *, dtype: Any = np.float32) -> None:
        super().__init__()
        self.num_groups = _count(num_groups, "num_groups", "GroupNorm")
        self.num_channels = C = _count(num_channels, "num_channels", "GroupNorm")
        if C % self.num_groups:
            raise ValueError(f"GroupNorm: num_channels={C} is not divisible by "
                             f"num_groups={self.num_groups}")
        self.eps = _eps(eps, "GroupNorm")
        self.affine = bool(affine)
        self.weight = Parameter(np.ones(C), dtype=dtype) if affine else None
        self.bias = Parameter(np.zeros(C), dtype=dtype) if affine else None

    def forward(self, x: Tensor) -> Tensor:
        shape = _shape_of(x)
        layer = f"GroupNorm({self.num_groups}, {self.num_channels})"
        if len(shape) < 2:
            raise ValueError(f"{layer}: expected input (N, C) or (N, C, *), got "
                             f"{len(shape)}-D input; x.shape={shape}")
        if shape[1] != self.num_channels:
            raise ValueError(f"{layer}: input has C={shape[1]} channels, expected "
                             f"num_channels={self.num_channels}; x.shape={shape}")
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps:g}, affine={self.affine}"
