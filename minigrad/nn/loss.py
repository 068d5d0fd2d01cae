"""Loss modules (PyTorch's names and constructor arguments): each holds its settings and calls
its :mod:`minigrad.functional` namesake, ``loss(input, target)``.

>>> import numpy as np
>>> from minigrad import Tensor
>>> round(CrossEntropyLoss()(Tensor([[0.0, 0.0]]), np.array([1])).item(), 4)
0.6931
"""

from __future__ import annotations

from typing import Any

import numpy as np

from minigrad import functional as F
from minigrad.nn.module import Module
from minigrad.tensor import Tensor

__all__ = ["MSELoss", "L1Loss", "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "NLLLoss"]

_REDUCTIONS = ("mean", "sum", "none")


class _Loss(Module):
    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be 'mean', 'sum' or "
                             f"'none', got {reduction!r}")
        self.reduction = reduction

    def extra_repr(self) -> str:
        return "" if self.reduction == "mean" else f"reduction={self.reduction!r}"


def _array(x: Any) -> np.ndarray:
    return np.asarray(x.data if isinstance(x, Tensor) else x)


class MSELoss(_Loss):
    """(input − target)², reduced by ``reduction`` ('mean', 'sum' or 'none').

    >>> MSELoss(reduction="sum")(Tensor([1.0, 3.0]), np.array([0.0, 1.0])).item()
    5.0
    """

    def forward(self, input: Any, target: Any) -> Tensor:  # noqa: A002 (PyTorch's name)
        return F.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """|input − target|, reduced by ``reduction``.

    >>> L1Loss()(Tensor([1.0, 3.0]), np.array([0.0, 1.0])).item()
    1.5
    """

    def forward(self, input: Any, target: Any) -> Tensor:  # noqa: A002
        return F.l1_loss(input, target, reduction=self.reduction)


class BCELoss(_Loss):
    """Binary cross-entropy of probabilities: −(t·log p + (1 − t)·log(1 − p)), each log clamped
    at −100, times ``weight`` (broadcast against the input) if given.

    >>> round(BCELoss()(Tensor([0.5]), np.array([1.0])).item(), 4)
    0.6931
    """

    def __init__(self, weight: Any = None, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.weight = weight

    def forward(self, input: Any, target: Any) -> Tensor:  # noqa: A002
        return F.binary_cross_entropy(input, target, reduction=self.reduction,
                                      weight=self.weight)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy of logits, BCELoss(sigmoid(z)) as one stable op; ``pos_weight``
    weights the positive term (per class for (N, C) logits).

    >>> round(BCEWithLogitsLoss()(Tensor([0.0]), np.array([1.0])).item(), 4)
    0.6931
    """

    def __init__(self, weight: Any = None, reduction: str = "mean",
                 pos_weight: Any = None) -> None:
        super().__init__(reduction)
        self.weight, self.pos_weight = weight, pos_weight

    def forward(self, input: Any, target: Any) -> Tensor:  # noqa: A002
        return F.binary_cross_entropy_with_logits(input, target, reduction=self.reduction,
                                                  weight=self.weight,
                                                  pos_weight=self.pos_weight)


def _ignored(target: Any, ignore_index: int) -> int | None:
    """``ignore_index`` if some class-index label equals it, else None: the loss is the same
    then, and the functional takes its fused path."""
    t = _array(target)
    return ignore_index if t.dtype.kind in "iu" and (t == ignore_index).any() else None


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy of logits (N, C) or (N, C, d1, …) against class indices or soft
    labels: PyTorch's ``CrossEntropyLoss``, over ``F.softmax_cross_entropy``.

    Args:
        weight: (C,) per-class weights, or None.
        ignore_index: class-index labels equal to it count for nothing (default −100, as
            PyTorch).
        reduction: 'mean', 'sum' or 'none'.
        label_smoothing: ε in [0, 1].

    >>> round(CrossEntropyLoss()(Tensor([[0.0, 0.0], [0.0, 0.0]]), np.array([1, -100])).item(), 4)
    0.6931
    """

    def __init__(self, weight: Any = None, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0) -> None:
        super().__init__(reduction)
        self.weight, self.ignore_index = weight, ignore_index
        self.label_smoothing = float(label_smoothing)

    def forward(self, input: Any, target: Any) -> Tensor:  # noqa: A002
        return F.softmax_cross_entropy(input, target, reduction=self.reduction,
                                       ignore_index=_ignored(target, self.ignore_index),
                                       label_smoothing=self.label_smoothing,
                                       weight=self.weight)


class NLLLoss(_Loss):
    """Negative log-likelihood −input[n, t[n]] of log-probabilities (e.g. ``LogSoftmax(1)``'s
    output); arguments as :class:`CrossEntropyLoss`.

    >>> round(NLLLoss()(Tensor(np.log([[0.25, 0.75]])), np.array([1])).item(), 4)
    0.2877
    """

    def __init__(self, weight: Any = None, ignore_index: int = -100,
                 reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.weight, self.ignore_index = weight, ignore_index

    def forward(self, input: Any, target: Any) -> Tensor:  # noqa: A002
        return F.nll_loss(input, target, reduction=self.reduction,
                          ignore_index=_ignored(target, self.ignore_index), weight=self.weight)
