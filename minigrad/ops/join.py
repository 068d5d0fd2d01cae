"""Linear ops that join, pad and broadcast arrays: concatenate, stack, pad, broadcast_to, sum_to.

Each is a linear map A, and each backward is its adjoint Aᵀ (⟨A x, y⟩ = ⟨x, Aᵀ y⟩, checked
by the tests): concatenate's adjoint slices dy into pieces, pad's crops it, broadcast_to's sums
it back (``unbroadcast``), and sum_to's broadcasts it out. ``split``, ``squeeze`` and
``expand_dims`` are compositions of GetItem and Reshape (see ``minigrad/tensor.py``).

Each ``backward_graph`` (the gradient as recorded ops, for ``create_graph=True``) is the same
adjoint written with ops: GetItem for the slices and the crop, SumTo and BroadcastTo for each
other. An adjoint of a linear map is linear, so every order of derivative follows.
BroadcastTo and SumTo are also the ops the other ops' recorded gradients are made of
(``minigrad.ops.grad_ops`` re-exports them with ``sum_to`` and ``broadcast_to``).
"""

from __future__ import annotations

import numpy as np

from minigrad.function import Function, unbroadcast
from minigrad.ops.shape import GetItem


def _join_axis(op: str, axis, ndim: int, shapes) -> int:
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise TypeError(f"{op}: axis must be an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{op}: axis {axis} is out of range for inputs of shapes "
                         f"{', '.join(str(s) for s in shapes)}")
    return int(axis) % ndim


class Concatenate(Function):
    """y = [x₀, x₁, …] joined along ``axis``.

    dL/dxᵢ = dL/dy[…, offᵢ : offᵢ + nᵢ, …], the slice of dy where xᵢ landed (recorded: a
    GetItem of dy, whose own gradient puts the slice back in place).

    Shapes: every xᵢ has the same shape except along ``axis``, where the sizes nᵢ add up.
    Linear; saved: the offsets.
    """

    def __init__(self, axis=0):
        self.axis = axis

    def forward(self, *xs):
        shapes = [np.shape(x) for x in xs]
        if not xs:
            raise ValueError("concatenate: need at least one tensor to concatenate")
        ndim = len(shapes[0])
        if ndim == 0:
            raise ValueError("concatenate: zero-dimensional tensors cannot be concatenated; "
                             "use stack")
        ax = _join_axis("concatenate", self.axis, ndim, shapes)
        for i, s in enumerate(shapes):
            if len(s) != ndim or any(a != b for k, (a, b) in enumerate(zip(s, shapes[0]))
                                     if k != ax):
                raise ValueError(
                    f"concatenate: input {i} has shape {s} but input 0 has shape {shapes[0]}; "
                    f"all shapes must match except along axis {self.axis}")
        self.ax = ax
        self.bounds = np.cumsum([0] + [s[ax] for s in shapes])
        return np.concatenate(xs, axis=ax)

    def backward(self, dy):
        index = [slice(None)] * dy.ndim
        grads = []
        for need, start, stop in zip(self.needs_input_grad, self.bounds[:-1], self.bounds[1:]):
            if not need:
                grads.append(None)
                continue
            index[self.ax] = slice(int(start), int(stop))
            grads.append(dy[tuple(index)])
        return tuple(grads)

    def backward_graph(self, dy):
        index = [slice(None)] * dy.ndim
        grads = []
        for need, start, stop in zip(self.needs_input_grad, self.bounds[:-1], self.bounds[1:]):
            if not need:
                grads.append(None)
                continue
            index[self.ax] = slice(int(start), int(stop))
            grads.append(GetItem(tuple(index))(dy))
        return tuple(grads)


class Stack(Function):
    """y = [x₀, x₁, …] stacked along a new axis ``axis``: y[…, i, …] = xᵢ.

    dL/dxᵢ = dL/dy[…, i, …] (recorded: a GetItem of dy). Shapes: every xᵢ has the same
    shape S; y has S with len(xs) inserted at ``axis``. Linear; saves nothing.
    """

    def __init__(self, axis=0):
        self.axis = axis

    def forward(self, *xs):
        shapes = [np.shape(x) for x in xs]
        if not xs:
            raise ValueError("stack: need at least one tensor to stack")
        self.ax = _join_axis("stack", self.axis, len(shapes[0]) + 1, shapes)
        for i, s in enumerate(shapes):
            if s != shapes[0]:
                raise ValueError(f"stack: input {i} has shape {s} but input 0 has shape "
                                 f"{shapes[0]}; all shapes must be equal")
        return np.stack(xs, axis=self.ax)

    def backward(self, dy):
        return tuple(np.take(dy, i, axis=self.ax) if need else None
                     for i, need in enumerate(self.needs_input_grad))

    def backward_graph(self, dy):
        before = (slice(None),) * self.ax
        return tuple(GetItem(before + (i,))(dy) if need else None
                     for i, need in enumerate(self.needs_input_grad))


def normalize_pad_width(pad_width, ndim: int, shape) -> tuple[tuple[int, int], ...]:
    """NumPy's pad_width (an int, a (before, after) pair, or one pair per axis) as pairs.

    >>> normalize_pad_width(1, 2, (3, 3))
    ((1, 1), (1, 1))
    >>> normalize_pad_width(((0, 0), (2, 1)), 2, (3, 3))
    ((0, 0), (2, 1))
    """
    try:
        pw = np.asarray(pad_width)
        if pw.dtype.kind not in "iu":
            raise TypeError
        pairs = np.broadcast_to(pw, (ndim, 2))
    except (TypeError, ValueError):
        raise ValueError(f"pad: pad_width must be an int, a (before, after) pair or one pair "
                         f"per axis of integers; got {pad_width!r} for shape {shape}") from None
    if np.any(pairs < 0):
        raise ValueError(f"pad: pad_width must be non-negative, got {pad_width!r}")
    return tuple((int(a), int(b)) for a, b in pairs)


class Pad(Function):
    """y = x surrounded by ``value``: pad_width[k] = (before, after) cells along axis k.

    dL/dx = dL/dy cropped to x's place, dy[before₀ : before₀ + n₀, …] (the padding is constant,
    so it gets no gradient; recorded: a GetItem of dy). Shapes: y has n_k + before_k + after_k
    along axis k. Linear in x.
    """

    def __init__(self, pad_width, value=0.0):
        self.pad_width, self.value = pad_width, value

    def forward(self, x):
        self.pairs = normalize_pad_width(self.pad_width, x.ndim, x.shape)
        self.crop = tuple(slice(a, a + n) for (a, _), n in zip(self.pairs, x.shape))
        return np.pad(x, self.pairs, mode="constant", constant_values=self.value)

    def backward(self, dy):
        return dy[self.crop]

    def backward_graph(self, dy):
        return GetItem(self.crop)(dy)


def sum_to(x, shape):
    """x summed back to ``shape`` (undoing broadcasting), recorded; x itself if it has it."""
    shape = tuple(shape)
    return x if x.shape == shape else SumTo(shape)(x)


def broadcast_to(x, shape):
    """x broadcast to ``shape``, recorded; x itself if it has it."""
    shape = tuple(shape)
    return x if x.shape == shape else BroadcastTo(shape)(x)


class BroadcastTo(Function):
    """y = x broadcast to ``shape`` (NumPy's rule: new leading axes, size-1 axes repeated).

    dL/dx = sum_to(dL/dy, x.shape) (``unbroadcast``; recorded: SumTo). Linear; y is a copy,
    not a view. Saved: x's shape.
    """

    def __init__(self, shape):
        self.shape = tuple(int(n) for n in shape)

    def forward(self, x):
        try:
            y = np.broadcast_to(x, self.shape)
        except ValueError:
            raise ValueError(f"broadcast_to: a tensor of shape {np.shape(x)} cannot be "
                             f"broadcast to {self.shape}") from None
        self.x_shape = np.shape(x)
        return np.array(y)

    def backward(self, dy):
        return unbroadcast(dy, self.x_shape)

    def backward_graph(self, dy):
        return sum_to(dy, self.x_shape)


class SumTo(Function):
    """y = x summed down to ``shape`` (the adjoint of broadcast_to; DeZero's ``sum_to``).

    Leading axes x has beyond ``shape`` are summed away, and so is every axis where ``shape``
    has 1 and x does not. dL/dx = dL/dy broadcast to x's shape (recorded: BroadcastTo).
    Linear. Saved: x's shape.
    """

    def __init__(self, shape):
        self.shape = tuple(int(n) for n in shape)

    def forward(self, x):
        shape = self.shape
        # NumPy's broadcasting rule written out (np.broadcast_shapes costs microseconds, and
        # every recorded gradient of a broadcast op goes through here).
        if len(shape) > x.ndim or any(n != 1 and n != m for n, m in
                                      zip(reversed(shape), reversed(x.shape))):
            raise ValueError(f"sum_to: a tensor of shape {x.shape} cannot be summed to "
                             f"{shape} (the shape must broadcast to the tensor's)")
        self.x_shape = x.shape
        y = unbroadcast(x, shape)
        return y.copy() if y is x else np.asarray(y)

    def backward(self, dy):
        return np.broadcast_to(dy, self.x_shape)

    def backward_graph(self, dy):
        return broadcast_to(dy, self.x_shape)
