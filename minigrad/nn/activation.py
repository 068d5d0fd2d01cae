"""Activation layers: elementwise functions with no parameters, as modules."""

from __future__ import annotations

from minigrad import functional as F
from minigrad.nn.module import Module
from minigrad.tensor import Tensor

__all__ = ["ReLU", "Sigmoid", "Tanh"]


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
