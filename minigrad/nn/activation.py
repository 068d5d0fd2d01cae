"""Activation layers: elementwise functions (and softmax along an axis) with no parameters,
as modules; each calls its :mod:`minigrad.functional` namesake."""

from __future__ import annotations

from typing import Any

import numpy as np

from minigrad import functional as F
from minigrad.nn.module import Module
from minigrad.tensor import Tensor

__all__ = ["ReLU", "Sigmoid", "Tanh", "LeakyReLU", "ELU", "Softplus", "Softmax", "LogSoftmax"]


def _number(value: Any, what: str, layer: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{layer}: {what} must be a number, got {value!r}")
    return float(value)


class ReLU(Module):
    """y = max(x, 0), elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x)


class Sigmoid(Module):
    """y = 1 / (1 + e⁻ˣ), elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return F.sigmoid(x)


class Tanh(Module):
    """y = tanh x, elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return F.tanh(x)


class LeakyReLU(Module):
    """y = x for x > 0, negative_slope · x otherwise, elementwise.

    >>> LeakyReLU(0.1)(Tensor([-2.0, 3.0])).data
    array([-0.2,  3. ], dtype=float32)
    """

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = _number(negative_slope, "negative_slope", "LeakyReLU")

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class ELU(Module):
    """y = x for x > 0, alpha · (eˣ − 1) otherwise, elementwise.

    >>> ELU()(Tensor([0.0, 2.0])).data
    array([0., 2.], dtype=float32)
    """

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = _number(alpha, "alpha", "ELU")

    def forward(self, x: Tensor) -> Tensor:
        return F.elu(x, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class Softplus(Module):
    """y = (1/beta) · log(1 + e^{beta·x}), and x where beta·x > threshold, elementwise.

    >>> Softplus(beta=2.0)(Tensor([0.0])).data.round(4)
    array([0.3466], dtype=float32)
    """

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta = _number(beta, "beta", "Softplus")
        self.threshold = _number(threshold, "threshold", "Softplus")

    def forward(self, x: Tensor) -> Tensor:
        return F.softplus(x, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class Softmax(Module):
    """y = exp(x) / Σ exp(x) along ``axis`` (PyTorch's ``dim``; the last axis by default).

    >>> Softmax(axis=1)(Tensor([[0.0, np.log(3.0)]])).data
    array([[0.25, 0.75]], dtype=float32)
    """

    def __init__(self, axis: int = -1) -> None:
        super().__init__()
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"{type(self).__name__}: axis must be an int, got {axis!r}")
        self.axis = int(axis)

    def forward(self, x: Tensor) -> Tensor:
        return F.softmax(x, axis=self.axis)

    def extra_repr(self) -> str:
        return f"axis={self.axis}"


class LogSoftmax(Softmax):
    """y = log softmax(x) along ``axis``, computed stably (finite for any finite x).

    >>> LogSoftmax()(Tensor([0.0, 0.0])).data.round(4)
    array([-0.6931, -0.6931], dtype=float32)
    """

    def forward(self, x: Tensor) -> Tensor:
        return F.log_softmax(x, axis=self.axis)
