"""Ops that move elements without changing them: reshape, transpose, indexing."""

from __future__ import annotations

import numpy as np

from minigrad.function import Function


class Reshape(Function):
    """y = x viewed with a new shape.    dL/dx = dL/dy reshaped to x's shape"""

    def __init__(self, shape):
        self.shape = tuple(map(int, shape))

    def forward(self, x):
        try:
            y = x.reshape(self.shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} "
                             f"({x.size} elements) into {self.shape}") from None
        self.x_shape = x.shape
        return y

    def backward(self, dy):
        return dy.reshape(self.x_shape)

    def backward_graph(self, dy):
        return Reshape(self.x_shape)(dy)


class Transpose(Function):
    """y = x with its axes permuted (reversed when ``axes`` is None).

    dL/dx = dL/dy permuted by the inverse permutation
    """

    def __init__(self, axes=None):
        self.axes = None if axes is None else tuple(int(a) for a in axes)

    def forward(self, x):
        axes = self.axes
        if axes is not None and sorted(a % max(x.ndim, 1) for a in axes) != list(range(x.ndim)):
            raise ValueError(f"transpose: axes {axes} are not a permutation of the "
                             f"{x.ndim} axes of a tensor of shape {x.shape}")
        return np.transpose(x, axes)

    def backward(self, dy):
        if self.axes is None:
            return np.transpose(dy)
        return np.transpose(dy, np.argsort([a % dy.ndim for a in self.axes]))

    def backward_graph(self, dy):
        if self.axes is None:
            return Transpose(None)(dy)
        return Transpose(np.argsort([a % dy.ndim for a in self.axes]))(dy)


def _plain_index(index):
    """The index with Tensors replaced by their arrays and lists by arrays."""
    from minigrad.tensor import Tensor

    def convert(i):
        if isinstance(i, Tensor):
            return i.data
        if isinstance(i, list):
            return np.asarray(i)
        return i

    return tuple(convert(i) for i in index) if isinstance(index, tuple) else convert(index)


def _is_basic(index) -> bool:
    """True when the index has only ints, slices, None and Ellipsis (no repeated elements)."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, np.integer, slice)) or i is None or i is Ellipsis
               for i in parts)


class GetItem(Function):
    """y = x[index] (slices, integers, integer or boolean arrays).

    dL/dx = zeros with dL/dy added at the indexed places; repeated indices accumulate.
    """

    def __init__(self, index):
        self.index = _plain_index(index)

    def forward(self, x):
        try:
            y = x[self.index]
        except IndexError as e:
            raise IndexError(f"getitem: {e} (tensor shape {x.shape})") from None
        self.x_shape, self.x_dtype = x.shape, x.dtype
        return np.asarray(y)

    def backward(self, dy):
        dx = np.zeros(self.x_shape, dtype=dy.dtype)
        if _is_basic(self.index):
            dx[self.index] = dy
        else:
            np.add.at(dx, self.index, dy)
        return dx

    def backward_graph(self, dy):
        from minigrad.ops.grad_ops import ScatterAdd

        return ScatterAdd(self.index, self.x_shape)(dy)
