"""Elementwise activations."""

from __future__ import annotations

import numpy as np

from minigrad.function import Function


class ReLU(Function):
    """y = max(x, 0).    dL/dx = dL/dy · 1[x > 0]    (0 at x == 0)

    As the textbook's ``Relu`` layer: forward keeps the mask of non-positive inputs, backward
    zeroes the gradient there.
    """

    def forward(self, x):
        self.mask = x <= 0
        return np.where(self.mask, x.dtype.type(0), x)

    def backward(self, dy):
        return np.where(self.mask, dy.dtype.type(0), dy)


class Sigmoid(Function):
    """y = 1 / (1 + e⁻ˣ).    dL/dx = dL/dy · y · (1 − y)

    Computed as (1 + tanh(x/2)) / 2, which never overflows for large |x|.
    """

    def forward(self, x):
        half = x.dtype.type(0.5) if x.dtype.kind == "f" else 0.5
        self.y = half * (np.tanh(half * x) + 1)
        return self.y

    def backward(self, dy):
        y = self.y
        return dy * y * (1 - y)


class Tanh(Function):
    """y = tanh x.    dL/dx = dL/dy · (1 − y²)"""

    def forward(self, x):
        self.y = np.tanh(x)
        return self.y

    def backward(self, dy):
        y = self.y
        return dy * (1 - y * y)
