"""Functions on several tensors (concatenate, stack, split, where, maximum, minimum, pad) and
NumPy on Tensors: which NumPy ufuncs and functions run as minigrad ops.

A NumPy ufunc or function called on a Tensor either runs the minigrad op and returns a Tensor
on the tape (the tables ``UFUNCS`` and ``FUNCTIONS`` below), gives a plain array where no
gradient is involved (comparisons, shapes, indices: ``PLAIN``), or raises a TypeError naming
the NumPy function and the minigrad way to do it. ``np.asarray(t)`` gives the data.
docs/tensor.md has the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from minigrad import ops
from minigrad.tensor import Tensor

__all__ = ["concatenate", "stack", "split", "where", "maximum", "minimum", "pad"]


def _operands(values: Sequence[Any]) -> list:
    """Tensors and arrays as they are; numbers as arrays of the first Tensor's float dtype."""
    first = next((v for v in values if isinstance(v, Tensor)), None)
    dtype = first.data.dtype if first is not None and first.data.dtype.kind == "f" else None
    out = []
    for v in values:
        if isinstance(v, (Tensor, np.ndarray)):
            out.append(v)
        else:
            out.append(np.asarray(v, dtype=dtype if dtype is not None else np.float32))
    return out


def _sequence(op: str, tensors: Any) -> list:
    if isinstance(tensors, (Tensor, np.ndarray)) or not isinstance(tensors, Sequence):
        raise TypeError(f"{op}: expected a list or tuple of tensors, got "
                        f"{type(tensors).__name__}")
    return _operands(tensors)


def concatenate(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis (one op, ``Concatenate``).

    Args:
        tensors: Tensors or arrays with equal shapes except along ``axis``.
        axis: the axis to join along.

    Returns:
        A Tensor; each input's gradient is its slice of the output's.

    >>> import minigrad
    >>> minigrad.concatenate([minigrad.Tensor([1.0]), minigrad.Tensor([2.0, 3.0])]).data
    array([1., 2., 3.], dtype=float32)
    """
    return ops.Concatenate(axis)(*_sequence("concatenate", tensors))


def stack(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join tensors of one shape along a new axis (one op, ``Stack``).

    Args:
        tensors: Tensors or arrays, all of the same shape.
        axis: where the new axis goes in the result.

    Returns:
        A Tensor with ``len(tensors)`` along ``axis``.

    >>> import minigrad
    >>> minigrad.stack([minigrad.Tensor([1.0, 2.0]), minigrad.Tensor([3.0, 4.0])], axis=1).shape
    (2, 2)
    """
    return ops.Stack(axis)(*_sequence("stack", tensors))


def split(x: Any, indices_or_sections: Any, axis: int = 0) -> list[Tensor]:
    """Split a tensor into pieces along ``axis``, with NumPy's meaning of the second argument.

    A composition: each piece is ``x[..., start:stop, ...]`` (a GetItem), so the gradient of x
    is the pieces' gradients put back in place.

    Args:
        x: a Tensor (or array).
        indices_or_sections: an int N (N equal pieces; the axis must divide evenly) or the
            sorted indices where the pieces start.
        axis: the axis to split.

    Returns:
        A list of Tensors.

    >>> import minigrad
    >>> [p.data.tolist() for p in minigrad.split(minigrad.Tensor([1.0, 2.0, 3.0]), [1])]
    [[1.0], [2.0, 3.0]]
    """
    x = x if isinstance(x, Tensor) else Tensor(x)
    shape = x.data.shape
    if not isinstance(axis, (int, np.integer)) or not -len(shape) <= axis < len(shape):
        raise ValueError(f"split: axis {axis!r} is out of range for a tensor of shape {shape}")
    axis = int(axis) % len(shape)
    n = shape[axis]
    if isinstance(indices_or_sections, (int, np.integer)):
        sections = int(indices_or_sections)
        if sections <= 0 or n % sections:
            raise ValueError(f"split: {sections} sections do not divide axis {axis} of size "
                             f"{n} equally (x.shape={shape}); pass split indices instead")
        bounds = [k * (n // sections) for k in range(sections + 1)]
    else:
        cuts = [min(max(int(i) if i >= 0 else int(i) + n, 0), n) for i in indices_or_sections]
        bounds = [0, *cuts, n]
    pieces = []
    for start, stop in zip(bounds[:-1], bounds[1:]):
        index = (slice(None),) * axis + (slice(start, max(start, stop)),)
        pieces.append(x[index])
    return pieces


def where(condition: Any, x: Any, y: Any) -> Tensor:
    """Elementwise ``x`` where ``condition`` holds, else ``y`` (one op, ``Where``).

    Args:
        condition: a boolean array (or a boolean Tensor: its data is used).
        x, y: Tensors, arrays or numbers; the three broadcast together.

    Returns:
        A Tensor; x gets the gradient where the condition holds, y where it does not.

    >>> import minigrad
    >>> t = minigrad.Tensor([-1.0, 2.0])
    >>> minigrad.where(t > 0, t, 0.0).data
    array([0., 2.], dtype=float32)
    """
    condition = condition.data if isinstance(condition, Tensor) else np.asarray(condition)
    return ops.Where()(condition, *_operands([x, y]))


def maximum(a: Any, b: Any) -> Tensor:
    """Elementwise maximum, broadcast like NumPy; ties split the gradient (one op, ``Maximum``).

    >>> import minigrad
    >>> minigrad.maximum(minigrad.Tensor([1.0, 5.0]), 3.0).data
    array([3., 5.], dtype=float32)
    """
    return ops.Maximum()(*_operands([a, b]))


def minimum(a: Any, b: Any) -> Tensor:
    """Elementwise minimum, broadcast like NumPy; ties split the gradient (one op, ``Minimum``).

    >>> import minigrad
    >>> minigrad.minimum(minigrad.Tensor([1.0, 5.0]), 3.0).data
    array([1., 3.], dtype=float32)
    """
    return ops.Minimum()(*_operands([a, b]))


def pad(x: Any, pad_width: Any, value: float = 0.0) -> Tensor:
    """Pad with a constant, NumPy's ``pad_width`` convention (one op, ``Pad``).

    Args:
        x: a Tensor or array.
        pad_width: an int (every side of every axis), a (before, after) pair (every axis), or
            one (before, after) pair per axis.
        value: the constant padded in.

    Returns:
        A Tensor; x's gradient is the output's gradient cropped back.

    >>> import minigrad
    >>> minigrad.pad(minigrad.Tensor([1.0, 2.0]), (1, 2), value=-1.0).data
    array([-1.,  1.,  2., -1., -1.], dtype=float32)
    """
    return ops.Pad(pad_width, value)(x if isinstance(x, (Tensor, np.ndarray)) else Tensor(x))


# ------------------------------------------------------------------ shapes for Tensor methods
def squeezed_shape(shape: tuple[int, ...], axis: Any) -> tuple[int, ...]:
    """``shape`` without its size-1 axes (all, or those in ``axis``)."""
    if axis is None:
        return tuple(n for n in shape if n != 1)
    axes = _axes("squeeze", axis, len(shape), shape)
    for a in axes:
        if shape[a] != 1:
            raise ValueError(f"squeeze: axis {a} has size {shape[a]}, not 1 "
                             f"(tensor shape {shape})")
    return tuple(n for i, n in enumerate(shape) if i not in axes)


def expanded_shape(shape: tuple[int, ...], axis: Any) -> tuple[int, ...]:
    """``shape`` with size-1 axes inserted so that they sit at ``axis`` in the result."""
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    ndim = len(shape) + len(axes)
    axes = _axes("expand_dims", axes, ndim, shape)
    rest = iter(shape)
    return tuple(1 if i in axes else next(rest) for i in range(ndim))


def _axes(op: str, axis: Any, ndim: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        if not isinstance(a, (int, np.integer)) or not -ndim <= a < ndim:
            raise ValueError(f"{op}: axis {a!r} is out of range (tensor shape {shape})")
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: axis {axis!r} repeats an axis (tensor shape {shape})")
    return tuple(out)


# ------------------------------------------------------------------ NumPy on Tensors
def _unary(op: type) -> Any:
    return lambda x: op()(x)


def _binary(op: type) -> Any:
    return lambda a, b: op()(*_operands([a, b]))


# Ufuncs that run as minigrad ops (called as ``np.add(a, b)`` or through ``ndarray + Tensor``).
UFUNCS: dict = {
    np.add: _binary(ops.Add), np.subtract: _binary(ops.Sub), np.multiply: _binary(ops.Mul),
    np.true_divide: _binary(ops.Div), np.power: _binary(ops.Pow),
    np.matmul: _binary(ops.MatMul), np.maximum: _binary(ops.Maximum),
    np.minimum: _binary(ops.Minimum),
    np.negative: _unary(ops.Neg), np.positive: lambda x: x, np.exp: _unary(ops.Exp),
    np.log: _unary(ops.Log), np.sqrt: _unary(ops.Sqrt), np.sin: _unary(ops.Sin),
    np.cos: _unary(ops.Cos), np.tanh: _unary(ops.Tanh), np.absolute: _unary(ops.Abs),
    np.square: lambda x: ops.Pow()(*_operands([x, 2.0])),
}

# Ufuncs whose result carries no gradient (booleans): computed on the data.
PLAIN_UFUNCS = {np.equal, np.not_equal, np.less, np.less_equal, np.greater, np.greater_equal,
                np.isnan, np.isinf, np.isfinite, np.signbit}

# How to do it in minigrad, for the TypeError of functions that do not dispatch.
HINTS = {
    "dot": "a @ b", "tensordot": "reshape and @", "einsum": "reshape, transpose and @",
    "log1p": "(1 + t).log()", "expm1": "t.exp() - 1", "log2": "t.log() / math.log(2)",
    "log10": "t.log() / math.log(10)", "tan": "t.sin() / t.cos()",
    "sign": "t.data / t.numpy() (it has no gradient)", "cumsum": "a composition of ops",
    "prod": "t.log().sum().exp() for positive t", "ravel": "t.flatten()",
    "sort": "t.data (no gradient) or indexing with t.data.argsort()",
    "linalg.norm": "(t * t).sum().sqrt()", "add.reduce": "t.sum(axis)",
    "maximum.reduce": "t.max(axis)", "minimum.reduce": "t.min(axis)",
}


def _reject(name: str, why: str = "") -> TypeError:
    hint = HINTS.get(name, "the minigrad ops listed in docs/tensor.md")
    return TypeError(f"np.{name} does not run on minigrad Tensors{why}: use {hint}; or call "
                     f"it on t.data / t.numpy() for a plain array without a gradient")


def _data(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.data
    if isinstance(value, (list, tuple)):
        return type(value)(_data(v) for v in value)
    return value


def array_ufunc(ufunc: Any, method: str, inputs: tuple, kwargs: dict) -> Any:
    """``Tensor.__array_ufunc__``: a minigrad op, a plain boolean array, or a TypeError."""
    if method == "__call__":
        if ufunc in PLAIN_UFUNCS:
            return getattr(ufunc, method)(*_data(inputs), **_data(kwargs))
        run = UFUNCS.get(ufunc)
        if run is not None:
            if kwargs:
                raise TypeError(f"np.{ufunc.__name__} on a minigrad Tensor takes no keyword "
                                f"arguments (got {', '.join(sorted(kwargs))}): minigrad ops "
                                f"make new tensors and never write into out=")
            return run(*inputs)
        raise _reject(ufunc.__name__)
    raise _reject(f"{ufunc.__name__}.{method}")


def _only(name: str, kwargs: dict, allowed: tuple[str, ...]) -> None:
    extra = sorted(k for k in kwargs if k not in allowed)
    if extra:
        raise TypeError(f"np.{name} on a minigrad Tensor supports "
                        f"{', '.join(allowed) or 'no keyword arguments'}; got "
                        f"{', '.join(extra)}")


def _reduction(name: str, method: str, extra: tuple[str, ...] = ()) -> Any:
    def run(a: Any, axis: Any = None, **kwargs: Any) -> Any:
        _only(name, kwargs, ("keepdims", *extra))
        return getattr(_tensor(a), method)(axis=axis, **kwargs)
    return run


def _tensor(a: Any) -> Tensor:
    return a if isinstance(a, Tensor) else Tensor(a)


def _reshape(a: Any, *args: Any, **kwargs: Any) -> Tensor:
    _only("reshape", kwargs, ("shape", "newshape"))
    shape = args[0] if args else kwargs.get("shape", kwargs.get("newshape"))
    if len(args) > 1:
        raise TypeError("np.reshape on a minigrad Tensor takes no order argument")
    return _tensor(a).reshape(shape)


def _transpose(a: Any, axes: Any = None) -> Tensor:
    return _tensor(a).transpose(axes) if axes is not None else _tensor(a).T


def _where(condition: Any, *xy: Any) -> Any:
    if not xy:
        return np.nonzero(_data(condition))
    if len(xy) != 2:
        raise TypeError("np.where takes a condition and either both x and y or neither")
    return where(condition, *xy)


def _clip(a: Any, a_min: Any = None, a_max: Any = None, out: Any = None,
          **kwargs: Any) -> Tensor:
    _only("clip", kwargs, ("min", "max"))
    if out is not None:
        raise TypeError("np.clip on a minigrad Tensor cannot write into out=")
    lo = kwargs.get("min", a_min)
    hi = kwargs.get("max", a_max)
    lo = None if lo is None else float(np.asarray(_data(lo)))
    hi = None if hi is None else float(np.asarray(_data(hi)))
    return _tensor(a).clip(lo, hi)


def _dot(a: Any, b: Any, out: Any = None) -> Tensor:
    if out is not None or np.ndim(_data(a)) > 2 or np.ndim(_data(b)) > 2:
        raise _reject("dot", " beyond 2-D or with out=")
    return ops.MatMul()(*_operands([a, b]))


def _pad(array: Any, pad_width: Any, mode: str = "constant", **kwargs: Any) -> Tensor:
    if mode != "constant":
        raise _reject("pad", f" with mode={mode!r} (only 'constant')")
    _only("pad", kwargs, ("constant_values",))
    value = kwargs.get("constant_values", 0)
    if np.ndim(value) != 0:
        raise _reject("pad", " with per-axis constant_values")
    return pad(array, pad_width, float(value))


def _squeeze(a: Any, axis: Any = None) -> Tensor:
    return _tensor(a).squeeze(axis)


# NumPy functions that run as minigrad ops.
FUNCTIONS: dict = {
    np.sum: _reduction("sum", "sum"), np.mean: _reduction("mean", "mean"),
    np.max: _reduction("max", "max"), np.min: _reduction("min", "min"),
    np.amax: _reduction("amax", "max"), np.amin: _reduction("amin", "min"),
    np.var: _reduction("var", "var", ("ddof",)), np.std: _reduction("std", "std", ("ddof",)),
    np.reshape: _reshape, np.transpose: _transpose,
    np.concatenate: lambda arrays, axis=0: concatenate(arrays, axis),
    np.stack: lambda arrays, axis=0: stack(arrays, axis),
    np.split: lambda a, indices_or_sections, axis=0: split(a, indices_or_sections, axis),
    np.where: _where, np.clip: _clip, np.dot: _dot, np.pad: _pad,
    np.squeeze: _squeeze, np.expand_dims: lambda a, axis: _tensor(a).expand_dims(axis),
    np.broadcast_to: lambda array, shape: _tensor(array).broadcast_to(shape),
}

# NumPy functions whose result carries no gradient (shapes, indices, booleans): computed on
# the data.
PLAIN = {np.shape, np.ndim, np.size, np.argmax, np.argmin, np.argsort, np.nonzero,
         np.count_nonzero, np.isclose, np.allclose, np.array_equal, np.result_type,
         np.may_share_memory, np.shares_memory, np.array_repr, np.array_str, np.array2string}


def array_function(func: Any, args: tuple, kwargs: dict) -> Any:
    """``Tensor.__array_function__``: a minigrad op, a plain result, or a TypeError."""
    run = FUNCTIONS.get(func)
    if run is not None:
        try:
            return run(*args, **kwargs)
        except TypeError as e:   # a call NumPy accepts but this table does not (dtype=, ...)
            if str(e).startswith("np."):
                raise
            raise TypeError(f"np.{func.__name__} on a minigrad Tensor: {e}") from None
    if func in PLAIN:
        return func(*_data(args), **_data(kwargs))
    module = func.__module__ or ""
    name = func.__name__
    if module.startswith("numpy.linalg"):
        name = f"linalg.{name}"
    raise _reject(name)
