"""The Tensor and the reverse-mode tape.

A Tensor wraps a NumPy array. When an op (a :class:`minigrad.Function`) is called on tensors that
require gradients, it records one node on the tape: the op instance, its inputs and its output
(``tensor.creator``). ``backward()`` walks those nodes from the output back to the leaves in
reverse topological order, calling each op's ``backward`` once with the gradient of its output.
"""

from __future__ import annotations

import functools
import operator
import threading
from collections.abc import Callable
from typing import Any

import numpy as np


class _GradModeState(threading.local):
    """Whether ops record themselves on the tape (switched off by ``no_grad``), per thread.

    Each thread starts with grad mode on, whatever other threads do; ``stack`` holds the modes
    that the open ``no_grad``/``enable_grad`` blocks of this thread will restore.
    """

    enabled = True

    def __init__(self) -> None:
        self.stack: list[bool] = []


_GradMode = _GradModeState()


def is_grad_enabled() -> bool:
    """True when ops are being recorded on the tape (in this thread).

    >>> import minigrad
    >>> minigrad.is_grad_enabled()
    True
    >>> with minigrad.no_grad():
    ...     minigrad.is_grad_enabled()
    False
    """
    return _GradMode.enabled


class _GradModeSwitch:
    """Context manager and decorator that sets the grad mode and restores it afterwards.

    The mode is the calling thread's own; the mode to restore is kept on that thread's stack,
    not on the object, so one ``no_grad()`` object may be shared by several threads.
    """

    _mode = True

    def __enter__(self) -> None:
        state = _GradMode
        state.stack.append(state.enabled)
        state.enabled = self._mode

    def __exit__(self, *exc: object) -> None:
        state = _GradMode
        state.enabled = state.stack.pop()

    def __call__(self, func: Callable) -> Callable:
        mode = self._mode

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            state = _GradMode
            previous = state.enabled
            state.enabled = mode
            try:
                return func(*args, **kwargs)
            finally:
                state.enabled = previous

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


# ------------------------------------------------------------------ the dtype policy
# Numbers are bools, integers, unsigned integers, floats and complex numbers. Anything else
# (None and other Python objects, strings, bytes, datetimes, records) is refused by Tensor(), by
# the operators and by every op given such an array, with a TypeError naming the op and dtype.
_NUMBER_KINDS = "biufc"
_KIND_NAMES = {"O": "Python objects (None, ...)", "U": "strings", "S": "bytes",
               "M": "datetimes", "m": "time deltas", "V": "raw records"}


def _refuse_dtype(op: str, array: np.ndarray, what: str = "data") -> None:
    """Raise the policy's TypeError for an array that does not hold numbers."""
    kind = _KIND_NAMES.get(array.dtype.kind, "non-numbers")
    raise TypeError(f"{op}: {what} must be numbers (bool, int or float), got dtype "
                    f"{array.dtype} ({kind}) with shape {array.shape}")


def _float_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype an op that computes in floating point uses for data of ``dtype``.

    Floats and complex numbers keep theirs; bools and integers become float32, or float64 for
    32- and 64-bit integers (float32 would round them).

    >>> _float_dtype(np.dtype(np.uint8)), _float_dtype(np.dtype(np.int64))
    (dtype('float32'), dtype('float64'))
    """
    if dtype.kind in "fc":
        return dtype
    return np.result_type(dtype, np.float32)


def _as_number_array(op: str, value: Any, what: str = "data") -> np.ndarray:
    """``value`` as an ndarray of numbers (the dtype NumPy gives it), or the policy's TypeError."""
    if value is None:
        raise TypeError(f"{op}: {what} must be numbers, got None")
    array = np.asarray(value)
    if array.dtype.kind not in _NUMBER_KINDS:
        _refuse_dtype(op, array, what)
    return array


def _as_array(value: Any, dtype: Any = None, op: str = "Tensor") -> np.ndarray:
    """Array for a Tensor's data: numbers and lists become float32, arrays keep their dtype."""
    if isinstance(value, Tensor):
        value = value._data
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)
        if array.dtype.kind not in _NUMBER_KINDS:
            _refuse_dtype(op, array)
        return array if dtype is None else array.astype(dtype, copy=False)
    array = _as_number_array(op, value)
    if dtype is None:  # complex Python numbers stay complex
        dtype = np.complex64 if array.dtype.kind == "c" else np.float32
    return array.astype(dtype, copy=False)


def _comparand(value: Any) -> Any:
    """The other side of a comparison, compared as NumPy compares (lists as float32)."""
    if isinstance(value, Tensor):
        return value._data
    if isinstance(value, (np.ndarray, np.generic)):
        return value
    return np.asarray(value, dtype=np.float32)


# ------------------------------------------------------------------ saved arrays stay unchanged
# While a recorded op holds the array of a leaf tensor (a parameter or an input) or an array
# given to it directly, that array is read-only: writing into it by hand (``w.data[...] = 0``)
# would change what the op's backward computes with. Several graphs may hold one array, so
# each array has a count of holders; the last one to go restores the writeable flag.
_held: dict[int, list] = {}           # id(array) -> [array, holders, was writeable]
_held_lock = threading.RLock()  # re-entrant: a collection inside a hold may drop another


class _Hold(tuple):
    """The arrays an op holds (a tuple of them), read-only until this object is dropped (by
    ``Function._release`` or with its graph).

    A tuple itself rather than an object that keeps a tuple: one object per recorded op instead
    of two, which matters on a long tape (every object made there is one more for the garbage
    collector to count and, when it runs, to scan; see ``benchmarks/bench_tape.py``).
    """

    __slots__ = ()

    def __init__(self, arrays: Any) -> None:
        with _held_lock:
            for a in self:
                entry = _held.get(id(a))
                if entry is None:
                    _held[id(a)] = [a, 1, a.flags.writeable]
                    a.flags.writeable = False
                else:
                    entry[1] += 1

    def __del__(self) -> None:
        try:
            with _held_lock:
                for a in self:
                    entry = _held.get(id(a))
                    if entry is None or entry[0] is not a:
                        continue
                    entry[1] -= 1
                    if entry[1] == 0:
                        del _held[id(a)]
                        if entry[2]:
                            try:
                                a.flags.writeable = True
                            except ValueError:  # a view whose base has been made read-only
                                pass
        except Exception:  # noqa: BLE001  (interpreter shutdown: nothing left to restore)
            pass


class Tensor:
    """An n-dimensional array that can record the ops applied to it.

    Args:
        data: a number, nested list or ndarray. Python numbers and lists become float32;
            ndarrays keep their dtype (float64 stays float64, as gradient checks need).
        requires_grad: record ops on this tensor so ``backward()`` can give it a ``.grad``.
        name: shown by ``repr`` and in drawn graphs.
        dtype: convert the data to this dtype.

    Raises:
        TypeError: the data is not numbers (None, strings, objects, datetimes; see
            docs/reliability.md), or it is not floating point and requires_grad is set.

    >>> x = Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True, name="x")
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad
    array([[2., 4.],
           [6., 8.]], dtype=float32)
    """

    __slots__ = ("_data", "grad", "requires_grad", "creator", "name", "_retains_grad",
                 "_version", "__weakref__")
    # NumPy ufuncs and functions on Tensors: ``__array_ufunc__`` and ``__array_function__``
    # below (``ndarray + Tensor`` gives a Tensor on the tape, as ``Tensor + ndarray`` does).

    def __init__(self, data: Any, requires_grad: bool = False, name: str | None = None,
                 dtype: Any = None) -> None:
        array = _as_array(data, dtype)
        if requires_grad and array.dtype.kind not in "fc":
            raise TypeError(
                f"Tensor: only floating-point data can require grad, got dtype {array.dtype} "
                f"with shape {array.shape}; convert it first, e.g. Tensor(x.astype(np.float32))")
        self._data = array
        self._version = 0
        self.grad: np.ndarray | None = None
        self.requires_grad = bool(requires_grad)
        self.creator = None
        self.name = name
        self._retains_grad = False

    @classmethod
    def _from_op(cls, data: np.ndarray, requires_grad: bool, creator: Any) -> Tensor:
        """The output of an op: no conversion, no checks (the hot path of the tape)."""
        t = cls.__new__(cls)
        t._data = data
        t._version = 0
        t.grad = None
        t.requires_grad = requires_grad
        t.creator = creator
        t.name = None
        t._retains_grad = False
        return t

    # ---------------------------------------------------------------- the data and its version
    def _set_data(self, value: Any) -> None:
        array = _as_array(value, op="Tensor.data")
        if self.requires_grad and array.dtype.kind not in "fc":
            raise TypeError(f"Tensor.data: a tensor that requires grad needs floating-point "
                            f"data, got dtype {array.dtype} with shape {array.shape}")
        self._data = array
        self._version += 1

    # A C getter (attrgetter): reading .data costs no Python call on the tape's hot path.
    data = property(operator.attrgetter("_data"), _set_data, doc="""The values (an ndarray).

        Assigning a new array counts as an in-place change: ops recorded before it refuse to
        run backward (see ``docs/reliability.md``). While a recorded op holds a leaf's array,
        the array is read-only.""")

    def _writable(self) -> np.ndarray:
        """The array, for an in-place update (an optimiser's step): counts as a change of the
        tensor (ops recorded before it refuse to run backward) and lifts the read-only hold."""
        array = self._data
        self._version += 1
        entry = _held.get(id(array))
        if entry is not None and entry[0] is array and entry[2]:
            array.flags.writeable = True
        return array

    # ---------------------------------------------------------------- array-like properties
    # C getters too (dotted attrgetters): layers read shapes on every call.
    shape = property(operator.attrgetter("_data.shape"), doc="The data's shape (a tuple).")
    ndim = property(operator.attrgetter("_data.ndim"), doc="The number of axes.")
    dtype = property(operator.attrgetter("_data.dtype"), doc="The data's dtype.")
    size = property(operator.attrgetter("_data.size"), doc="The number of elements.")

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
    def backward(self, grad: Any = None, retain_graph: bool = False,
                 create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into the ``.grad`` of every leaf that requires grad.

        Args:
            grad: dL/d(self), with this tensor's shape. May be omitted for a one-element tensor
                (it is seeded with 1).
            retain_graph: keep the saved arrays so backward can run through this graph again.
            create_graph: refused: a leaf's ``.grad`` is a plain array (optimizers update it
                in place), so it cannot carry a graph. ``minigrad.grad(y, x,
                create_graph=True)`` returns gradients that are on the tape.
        """
        from minigrad.function import run_backward

        if create_graph:
            raise RuntimeError(
                "backward(create_graph=True): a leaf's .grad is a plain ndarray and cannot be "
                "differentiated again; use gx, = minigrad.grad(y, x, create_graph=True) to get "
                "gradients on the tape (see docs/higher_order.md)")

        if not self.requires_grad:
            raise RuntimeError(
                "backward: this tensor does not require grad and has no creator on the tape; "
                "create the leaves with requires_grad=True (and not inside no_grad)")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward: grad can be implicitly created only for a one-element output, "
                    f"but this tensor has shape {self.data.shape}; pass grad= of that shape")
            if self.data.dtype.kind == "c":
                raise TypeError(
                    f"backward: grad can be implicitly created only for a real output, but "
                    f"this tensor has dtype {self.data.dtype}; pass grad= explicitly")
            seed = np.ones_like(self.data)
        else:
            seed = _as_array(grad, self.data.dtype, op="backward")
            if seed.shape != self.data.shape:
                raise ValueError(f"backward: grad has shape {seed.shape} but the tensor has "
                                 f"shape {self.data.shape}")
        run_backward(self, seed, retain_graph)

    # ---------------------------------------------------------------- operators
    def _operand(self, other: Any, op: str = "Tensor operator") -> Any:
        """Tensors and arrays pass through (ops check arrays' dtypes); numbers become arrays of
        this tensor's float dtype; anything else (None, strings) is a TypeError."""
        if isinstance(other, (Tensor, np.ndarray)):
            return other
        dtype = self._data.dtype
        if type(other) is not float and type(other) is not int:
            _as_number_array(op, other, "the other operand")
        return np.array(other, dtype=dtype if dtype.kind == "f" else np.float32)

    def __add__(self, other: Any) -> Tensor:
        return _ops.Add()(self, self._operand(other, "add"))

    def __radd__(self, other: Any) -> Tensor:
        return _ops.Add()(self._operand(other, "add"), self)

    def __sub__(self, other: Any) -> Tensor:
        return _ops.Sub()(self, self._operand(other, "sub"))

    def __rsub__(self, other: Any) -> Tensor:
        return _ops.Sub()(self._operand(other, "sub"), self)

    def __mul__(self, other: Any) -> Tensor:
        return _ops.Mul()(self, self._operand(other, "mul"))

    def __rmul__(self, other: Any) -> Tensor:
        return _ops.Mul()(self._operand(other, "mul"), self)

    def __truediv__(self, other: Any) -> Tensor:
        return _ops.Div()(self, self._operand(other, "div"))

    def __rtruediv__(self, other: Any) -> Tensor:
        return _ops.Div()(self._operand(other, "div"), self)

    def __pow__(self, other: Any) -> Tensor:
        return _ops.Pow()(self, self._operand(other, "pow"))

    def __rpow__(self, other: Any) -> Tensor:
        return _ops.Pow()(self._operand(other, "pow"), self)

    def __matmul__(self, other: Any) -> Tensor:
        return _ops.MatMul()(self, self._operand(other, "matmul"))

    def __rmatmul__(self, other: Any) -> Tensor:
        return _ops.MatMul()(self._operand(other, "matmul"), self)

    def __neg__(self) -> Tensor:
        return _ops.Neg()(self)

    def __pos__(self) -> Tensor:
        return self

    # Comparisons give plain boolean arrays and record nothing.
    def __eq__(self, other: Any) -> np.ndarray:  # type: ignore[override]
        return self.data == _comparand(other)

    def __ne__(self, other: Any) -> np.ndarray:  # type: ignore[override]
        return self.data != _comparand(other)

    def __lt__(self, other: Any) -> np.ndarray:
        return self.data < _comparand(other)

    def __le__(self, other: Any) -> np.ndarray:
        return self.data <= _comparand(other)

    def __gt__(self, other: Any) -> np.ndarray:
        return self.data > _comparand(other)

    def __ge__(self, other: Any) -> np.ndarray:
        return self.data >= _comparand(other)

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
