"""The Tensor and the reverse-mode tape.

A Tensor wraps a NumPy array. When an op (a :class:`minigrad.Function`) is called on tensors that
require gradients, it records one node on the tape: the op instance, its inputs and its output
(``tensor.creator``). ``backward()`` walks those nodes from the output back to the leaves in
reverse topological order, calling each op's ``backward`` once with the gradient of its output.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np


class _GradMode:
    """Whether ops record themselves on the tape (switched off by ``no_grad``)."""

    enabled = True


def is_grad_enabled() -> bool:
    """True when ops are being recorded on the tape.

    >>> import minigrad
    >>> minigrad.is_grad_enabled()
    True
    >>> with minigrad.no_grad():
    ...     minigrad.is_grad_enabled()
    False
    """
    return _GradMode.enabled


class _GradModeSwitch:
    """Context manager and decorator that sets the grad mode and restores it afterwards."""

    _mode = True

    def __enter__(self) -> None:
        self._previous = _GradMode.enabled
        _GradMode.enabled = self._mode

    def __exit__(self, *exc: object) -> None:
        _GradMode.enabled = self._previous

    def __call__(self, func: Callable) -> Callable:
        mode = self._mode

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            previous = _GradMode.enabled
            _GradMode.enabled = mode
            try:
                return func(*args, **kwargs)
            finally:
                _GradMode.enabled = previous

        return wrapper


class no_grad(_GradModeSwitch):  # noqa: N801  (named like torch.no_grad)
    """Record nothing on the tape inside this block (or this decorated function).

    >>> import minigrad
    >>> x = minigrad.Tensor([1.0, 2.0], requires_grad=True)
    >>> with minigrad.no_grad():
    ...     y = x * 2
    >>> y.requires_grad, y.creator
    (False, None)
    """

    _mode = False


class enable_grad(_GradModeSwitch):  # noqa: N801
    """Record ops again inside a ``no_grad`` block."""

    _mode = True


def _as_array(value: Any, dtype: Any = None) -> np.ndarray:
    """Array for a Tensor's data: numbers and lists become float32, arrays keep their dtype."""
    if isinstance(value, Tensor):
        value = value.data
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)
        return array if dtype is None else array.astype(dtype, copy=False)
    return np.asarray(value, dtype=np.float32 if dtype is None else dtype)


class Tensor:
    """An n-dimensional array that can record the ops applied to it.

    Args:
        data: a number, nested list or ndarray. Python numbers and lists become float32;
            ndarrays keep their dtype (float64 stays float64, as gradient checks need).
        requires_grad: record ops on this tensor so ``backward()`` can give it a ``.grad``.
        name: shown by ``repr`` and in drawn graphs.
        dtype: convert the data to this dtype.

    >>> x = Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True, name="x")
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad
    array([[2., 4.],
           [6., 8.]], dtype=float32)
    """

    __slots__ = ("data", "grad", "requires_grad", "creator", "name", "_retains_grad",
                 "__weakref__")
    # NumPy ufuncs and functions on Tensors: ``__array_ufunc__`` and ``__array_function__``
    # below (``ndarray + Tensor`` gives a Tensor on the tape, as ``Tensor + ndarray`` does).

    def __init__(self, data: Any, requires_grad: bool = False, name: str | None = None,
                 dtype: Any = None) -> None:
        array = _as_array(data, dtype)
        if requires_grad and array.dtype.kind not in "fc":
            raise TypeError(
                f"Tensor: only floating-point data can require grad, got dtype {array.dtype} "
                f"with shape {array.shape}; convert it first, e.g. Tensor(x.astype(np.float32))")
        self.data = array
        self.grad: np.ndarray | None = None
        self.requires_grad = bool(requires_grad)
        self.creator = None
        self.name = name
        self._retains_grad = False

    @classmethod
    def _from_op(cls, data: np.ndarray, requires_grad: bool, creator: Any) -> Tensor:
        """The output of an op: no conversion, no checks (the hot path of the tape)."""
        t = cls.__new__(cls)
        t.data = data
        t.grad = None
        t.requires_grad = requires_grad
        t.creator = creator
        t.name = None
        t._retains_grad = False
        return t

    # ---------------------------------------------------------------- array-like properties
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def is_leaf(self) -> bool:
        """True for tensors not made by a recorded op (inputs and parameters)."""
        return self.creator is None

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", prefix="Tensor(", threshold=20)
        extras = []
        if self.data.dtype != np.float32:
            extras.append(f"dtype={self.data.dtype}")
        if self.creator is not None:
            extras.append(f"creator={type(self.creator).__name__}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        if self.name is not None:
            extras.append(f"name={self.name!r}")
        return "Tensor(" + ", ".join([body, *extras]) + ")"

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        return self.data if dtype is None else self.data.astype(dtype)

    def numpy(self) -> np.ndarray:
        """The data as an ndarray (shared, not copied)."""
        return self.data

    def item(self) -> float:
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item: only one-element tensors convert to a number, "
                             f"got shape {self.data.shape}")
        return self.data.item()

    def detach(self) -> Tensor:
        """A new leaf tensor sharing this data, cut from the tape."""
        return Tensor._from_op(self.data, False, None)

    def retain_grad(self) -> Tensor:
        """Keep ``.grad`` on this intermediate tensor after ``backward()``."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad: the tensor does not require grad")
        self._retains_grad = True
        return self

    def argmax(self, axis: int | None = None) -> np.ndarray:
        """Indices of the maximum along ``axis`` (a plain array: no gradient)."""
        return self.data.argmax(axis=axis)

    # ---------------------------------------------------------------- backward
    def backward(self, grad: Any = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into the ``.grad`` of every leaf that requires grad.

        Args:
            grad: dL/d(self), with this tensor's shape. May be omitted for a one-element tensor
                (it is seeded with 1).
            retain_graph: keep the saved arrays so backward can run through this graph again.
        """
        from minigrad.function import run_backward

        if not self.requires_grad:
            raise RuntimeError(
                "backward: this tensor does not require grad and has no creator on the tape; "
                "create the leaves with requires_grad=True (and not inside no_grad)")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward: grad can be implicitly created only for a one-element output, "
                    f"but this tensor has shape {self.data.shape}; pass grad= of that shape")
            seed = np.ones_like(self.data)
        else:
            seed = _as_array(grad, self.data.dtype)
            if seed.shape != self.data.shape:
                raise ValueError(f"backward: grad has shape {seed.shape} but the tensor has "
                                 f"shape {self.data.shape}")
        run_backward(self, seed, retain_graph)

    # ---------------------------------------------------------------- operators
    def _operand(self, other: Any) -> Any:
        """Tensors pass through; numbers become arrays of this tensor's float dtype."""
        if isinstance(other, (Tensor, np.ndarray)):
            return other
        dtype = self.data.dtype
        return np.array(other, dtype=dtype if dtype.kind == "f" else np.float32)

    def __add__(self, other: Any) -> Tensor:
        return _ops.Add()(self, self._operand(other))

    def __radd__(self, other: Any) -> Tensor:
        return _ops.Add()(self._operand(other), self)

    def __sub__(self, other: Any) -> Tensor:
        return _ops.Sub()(self, self._operand(other))

    def __rsub__(self, other: Any) -> Tensor:
        return _ops.Sub()(self._operand(other), self)

    def __mul__(self, other: Any) -> Tensor:
        return _ops.Mul()(self, self._operand(other))

    def __rmul__(self, other: Any) -> Tensor:
        return _ops.Mul()(self._operand(other), self)

    def __truediv__(self, other: Any) -> Tensor:
        return _ops.Div()(self, self._operand(other))

    def __rtruediv__(self, other: Any) -> Tensor:
        return _ops.Div()(self._operand(other), self)

    def __pow__(self, other: Any) -> Tensor:
        return _ops.Pow()(self, self._operand(other))

    def __rpow__(self, other: Any) -> Tensor:
        return _ops.Pow()(self._operand(other), self)

    def __matmul__(self, other: Any) -> Tensor:
        return _ops.MatMul()(self, self._operand(other))

    def __rmatmul__(self, other: Any) -> Tensor:
        return _ops.MatMul()(self._operand(other), self)

    def __neg__(self) -> Tensor:
        return _ops.Neg()(self)

    def __pos__(self) -> Tensor:
        return self

    # Comparisons give plain boolean arrays and record nothing.
    def __eq__(self, other: Any) -> np.ndarray:  # type: ignore[override]
        return self.data == _as_array(other)

    def __ne__(self, other: Any) -> np.ndarray:  # type: ignore[override]
        return self.data != _as_array(other)

    def __lt__(self, other: Any) -> np.ndarray:
        return self.data < _as_array(other)

    def __le__(self, other: Any) -> np.ndarray:
        return self.data <= _as_array(other)

    def __gt__(self, other: Any) -> np.ndarray:
        return self.data > _as_array(other)

    def __ge__(self, other: Any) -> np.ndarray:
        return self.data >= _as_array(other)

    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        return bool(self.data)

    # ---------------------------------------------------------------- methods
    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return _ops.Sum(axis, keepdims)(self)

    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return _ops.Mean(axis, keepdims)(self)

    def max(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return _ops.Max(axis, keepdims)(self)

    def reshape(self, *shape: Any) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _ops.Reshape(shape)(self)

    def transpose(self, *axes: Any) -> Tensor:
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _ops.Transpose(axes or None)(self)

    @property
    def T(self) -> Tensor:  # noqa: N802
        return _ops.Transpose(None)(self)

    def flatten(self) -> Tensor:
        """All elements in one axis (``F.flatten`` keeps the batch axis instead)."""
        return _ops.Reshape((-1,))(self)

    def __getitem__(self, index: Any) -> Tensor:
        return _ops.GetItem(index)(self)

    def exp(self) -> Tensor:
        return _ops.Exp()(self)

    def log(self) -> Tensor:
        return _ops.Log()(self)

    def sqrt(self) -> Tensor:
        return _ops.Sqrt()(self)

    def relu(self) -> Tensor:
        return _ops.ReLU()(self)

    def sigmoid(self) -> Tensor:
        return _ops.Sigmoid()(self)

    def tanh(self) -> Tensor:
        return _ops.Tanh()(self)

    # ---------------------------------------------------------------- more ops
    def min(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        """The minimum along ``axis``; ties share the gradient equally (as ``max``)."""
        return _ops.Min(axis, keepdims)(self)

    def abs(self) -> Tensor:
        """|x| elementwise; the gradient at 0 is 0."""
        return _ops.Abs()(self)

    __abs__ = abs

    def clip(self, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002
        """x limited to [min, max]; the gradient passes where min ≤ x ≤ max."""
        return _ops.Clip(min, max)(self)

    def var(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False,
            ddof: int = 0) -> Tensor:
        """Σ (x − mean)² / (n − ddof) along ``axis`` (NumPy's default ddof=0)."""
        return _ops.Var(axis, keepdims, ddof)(self)

    def std(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False,
            ddof: int = 0) -> Tensor:
        """sqrt(var(...)); the gradient at zero spread is 0 (as in PyTorch)."""
        return _ops.Std(axis, keepdims, ddof)(self)

    def sin(self) -> Tensor:
        return _ops.Sin()(self)

    def cos(self) -> Tensor:
        return _ops.Cos()(self)

    def logsumexp(self, axis: int | tuple[int, ...] | None = None,
                  keepdims: bool = False) -> Tensor:
        """log Σ exp(x) along ``axis``, computed stably (m + log Σ exp(x − m))."""
        return _ops.LogSumExp(axis, keepdims)(self)

    def squeeze(self, axis: int | tuple[int, ...] | None = None) -> Tensor:
        """Drop size-1 axes (all of them, or those in ``axis``): a Reshape."""
        return _ops.Reshape(_routines.squeezed_shape(self.data.shape, axis))(self)

    def expand_dims(self, axis: int | tuple[int, ...]) -> Tensor:
        """Insert size-1 axes at ``axis`` (NumPy's meaning): a Reshape."""
        return _ops.Reshape(_routines.expanded_shape(self.data.shape, axis))(self)

    unsqueeze = expand_dims

    def broadcast_to(self, shape: tuple[int, ...]) -> Tensor:
        """A copy broadcast to ``shape``; its gradient is summed back (``sum_to``)."""
        return _ops.BroadcastTo(shape)(self)

    def sum_to(self, shape: tuple[int, ...]) -> Tensor:
        """Summed down to ``shape`` (the adjoint of ``broadcast_to``)."""
        return _ops.SumTo(shape)(self)

    def argmin(self, axis: int | None = None) -> np.ndarray:
        """Indices of the minimum along ``axis`` (a plain array: no gradient)."""
        return self.data.argmin(axis=axis)

    # ---------------------------------------------------------------- NumPy protocols
    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        return _routines.array_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        return _routines.array_function(func, args, kwargs)


# The ops import Function, which imports this module: bind them once Tensor exists.
from minigrad import ops as _ops  # noqa: E402
from minigrad import routines as _routines  # noqa: E402
