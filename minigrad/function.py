"""The op contract (:class:`Function`), the shared ``unbroadcast`` helper and the backward pass.

An op is a class with ``forward`` and ``backward``, written the way the textbook writes its
layers::

    class Mul(Function):
        '''z = x · y.    dL/dx = dL/dz · y    dL/dy = dL/dz · x'''

        def forward(self, x, y):
            self.x, self.y = x, y          # saved for backward, freed after it
            return x * y

        def backward(self, dz):
            return dz * self.y, dz * self.x

``forward`` takes arrays and returns one array; ``backward`` takes dL/d(output) and returns one
gradient per input (a tuple when there are several), ``None`` for an input without one.
Settings that are not tensors (stride, axis, ...) go to ``__init__``.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterable
from typing import Any

import numpy as np

from minigrad.tensor import (
    _NUMBER_KINDS,
    Tensor,
    _float_dtype,
    _GradMode,
    _Hold,
    _refuse_dtype,
)

# Objects told about every forward and backward step: the profiler and anomaly mode register
# here. Each has ``forward(fn, inputs, output, seconds)`` and ``backward(fn, dy, grads,
# seconds)``. When the list is empty the tape pays one truth test per op. The list is shared by
# all threads (so that test stays one truth test); each observer keeps to the thread that
# registered it (a profile, anomaly mode and a gradient record are per thread).
_observers: list = []

# Small tuples that recorded ops share (``needs_input_grad``, input versions), by value.
_shared: dict = {}



def remove_observer(observer: object) -> None:
    """Take ``observer`` itself (not an equal object) off the observer list, if it is there."""
    for i, registered in enumerate(_observers):
        if registered is observer:
            del _observers[i]
            return

class _ModuleScope(threading.local):
    """The nn modules whose forward is running in this thread, outermost first (pushed and
    popped by ``Module.__call__``). A recorded op keeps a copy as ``fn.scope`` so graphs can
    group ops by module. A list per thread: modules running in other threads are not in it."""

    def __init__(self) -> None:
        self.stack: list = []

    def append(self, module: Any) -> None:
        self.stack.append(module)

    def pop(self) -> Any:
        return self.stack.pop()

    def extend(self, modules: Iterable) -> None:
        self.stack.extend(modules)

    def __getitem__(self, index: Any) -> Any:
        return self.stack[index]

    def __setitem__(self, index: Any, value: Any) -> None:
        self.stack[index] = value

    def __delitem__(self, index: Any) -> None:
        del self.stack[index]

    def __len__(self) -> int:
        return len(self.stack)

    def __iter__(self) -> Any:
        return iter(self.stack)

    def __eq__(self, other: object) -> bool:
        return self.stack == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self.stack)


_module_scope = _ModuleScope()


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` back to ``shape``, undoing NumPy broadcasting.

    Broadcasting copies an input along the leading axes it lacks and along its size-1 axes, so
    its gradient is the sum over those axes.

    >>> unbroadcast(np.ones((2, 3)), (3,))
    array([2., 2., 2.])
    >>> unbroadcast(np.ones((2, 3)), (2, 1))
    array([[3.],
           [3.]])
    """
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape) if lead else grad


class Function:
    """Base class of every op: subclass it and write ``forward`` and ``backward``.

    Calling an instance on tensors runs ``forward`` on their arrays and, when any input
    requires grad (and grad mode is on), records the call on the tape. An instance is called
    once; make a new one for every use (``Mul()(x, y)``).

    Attributes set by the call, readable in ``forward``/``backward``:
        needs_input_grad: one bool per input, True where a gradient is wanted; ``backward`` may
            return ``None`` (and skip the work) where it is False.
        inputs: the inputs as given (Tensors, or arrays for non-tensor inputs such as labels).
        output: the output Tensor (while it is alive).
        scope: the nn modules whose forward was running when the op was recorded,
            outermost first (empty outside modules).

    Attributes that ``forward`` adds to ``self`` are the op's saved values: they are freed
    after the backward pass unless ``retain_graph=True``. Attributes set in ``__init__`` are its
    settings, kept for display (``settings()``).

    >>> import numpy as np
    >>> class Square(Function):
    ...     '''y = x².    dL/dx = dL/dy · 2x'''
    ...     def forward(self, x):
    ...         self.x = x
    ...         return x * x
    ...     def backward(self, dy):
    ...         return dy * 2 * self.x
    >>> x = Tensor([3.0], requires_grad=True)
    >>> Square()(x).backward(np.ones(1, np.float32))
    >>> x.grad
    array([6.], dtype=float32)
    """

    # Engine bookkeeping lives in slots so that ``__dict__`` holds only the op's own values.
    __slots__ = ("inputs", "_output_ref", "needs_input_grad", "_setting_names", "_released",
                 "scope", "_versions", "_hold", "__dict__", "__weakref__")

    # True for ops that compute in floating point (arithmetic, exp, sigmoid, ...): bool and
    # integer inputs reach their forward converted to float (see ``_float_dtype``).
    float_inputs = False

    def __new__(cls, *args: Any, **kwargs: Any) -> Function:
        # ``_setting_names`` starts as None, so that ``__call__`` tells a used instance by a
        # plain read: asking an unset slot (``hasattr``) raises and clears an AttributeError,
        # about 0.3-0.5 µs of every op at batch 1.
        self = object.__new__(cls)
        self._setting_names = None
        return self

    def forward(self, *xs: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__}.forward is not written")

    def backward(self, dy: np.ndarray) -> Any:
        raise NotImplementedError(
            f"{type(self).__name__} has no backward: it cannot be differentiated")

    def backward_graph(self, dy: Tensor) -> Any:
        """The gradients as recorded ops on Tensors: what ``create_graph=True`` runs.

        Define it, beside ``backward``, to make an op differentiable more than once. It
        receives dL/dy as a Tensor and returns what ``backward`` returns (one gradient per
        input, ``None`` where there is none), but as Tensors computed by ops on ``dy``, on
        the inputs (``self.inputs``) and on the output (``self.output``), so that the tape
        records how each gradient depends on them. Saved arrays may be used as constants
        only where the gradient does not depend on them smoothly (a ReLU mask). A test holds
        it equal to ``backward`` (``minigrad.testing.gradgradcheck`` checks both). An op
        without it still has first derivatives; differentiating its gradient raises an
        error naming the op.
        """
        raise NotImplementedError(f"{type(self).__name__} has no backward_graph")

    def __call__(self, *inputs: Any) -> Tensor:
        if self._setting_names is not None:
            raise RuntimeError(f"{type(self).__name__}: a Function instance is called once; "
                               f"create a new instance for every call")
        self._setting_names = tuple(self.__dict__)
        float_inputs = self.float_inputs
        arrays = []
        needs = []
        if _GradMode.enabled:
            versions = []
            # The arrays that came from outside the tape (leaves, plain arrays): if the op is
            # recorded they stay read-only while it may still run backward (see ``_Hold``).
            held = []
            for x in inputs:
                if isinstance(x, Tensor):
                    a = x._data
                    if x.creator is None:
                        held.append(a)
                    if float_inputs and a.dtype.kind not in "fc":
                        a = a.astype(_float_dtype(a.dtype))
                    arrays.append(a)
                    needs.append(x.requires_grad)
                    versions.append(x._version)
                else:
                    if type(x) is np.ndarray and x.ndim:
                        held.append(x)
                    arrays.append(self._plain_input(x, len(arrays), float_inputs))
                    needs.append(False)
                    versions.append(None)
            record = True in needs
        else:
            # No graph: nothing this call makes can run backward through the tape, so the
            # tape's bookkeeping (the inputs kept for backward, their versions, read-only holds
            # on leaves' arrays, the output's weak reference, the module scope) has nothing to
            # protect and is skipped. The dtype policy is the full path's, and
            # ``needs_input_grad`` too (forward saves what a backward called by hand on this
            # instance needs, as on the full path). ``test_tape.py`` holds the two paths to the
            # same values and dtypes.
            for x in inputs:
                if isinstance(x, Tensor):
                    a = x._data
                    if float_inputs and a.dtype.kind not in "fc":
                        a = a.astype(_float_dtype(a.dtype))
                    arrays.append(a)
                    needs.append(x.requires_grad)
                else:
                    arrays.append(self._plain_input(x, len(arrays), float_inputs))
                    needs.append(False)
            record = False
        self.needs_input_grad = needs = tuple(needs)
        if _observers:
            start = time.perf_counter()
            y = self.forward(*arrays)
            seconds = time.perf_counter() - start
        else:
            y = self.forward(*arrays)
        if type(y) is not np.ndarray:
            if isinstance(y, (tuple, list)):
                raise TypeError(f"{type(self).__name__}.forward must return one array, "
                                f"got a {type(y).__name__} of {len(y)}")
            y = np.asarray(y)
        if record:
            out = Tensor._from_op(y, True, self)
            self.inputs = inputs
            self._output_ref = weakref.ref(out)
            self._released = False
            scope = _module_scope.stack
            self.scope = tuple(scope) if scope else ()
            # The flags and version numbers are kept as shared tuples (a few values recur:
            # (True, False), (0, 0), ...): a long tape then makes no objects for them, which
            # the garbage collector would count and scan (see ``_Hold``).
            if len(_shared) > 4096:        # version numbers grow with optimiser steps
                _shared.clear()
            self.needs_input_grad = _shared.setdefault(needs, needs)
            versions = tuple(versions)
            self._versions = _shared.setdefault(versions, versions)
            # A write into a held array would change this op's backward: read-only until then.
            self._hold = _Hold(held) if held else None
        else:
            out = Tensor._from_op(y, False, None)
        if _observers:
            for observer in _observers:
                observer.forward(self, arrays, y, seconds)
        return out

    def _plain_input(self, x: Any, i: int, float_inputs: bool) -> Any:
        """An input that is not a Tensor (an array, a number, labels), checked by the dtype
        policy: numbers only, converted to float for ops that compute in floating point."""
        if type(x) is np.ndarray:
            kind = x.dtype.kind
            if kind not in "fc":
                if kind not in _NUMBER_KINDS:
                    _refuse_dtype(type(self).__name__, x, f"input {i}")
                if float_inputs:
                    return x.astype(_float_dtype(x.dtype))
        elif x is None:
            raise TypeError(f"{type(self).__name__}: input {i} is None; pass an array or a "
                            f"Tensor")
        return x

    @property
    def output(self) -> Tensor | None:
        ref = getattr(self, "_output_ref", None)
        return ref() if ref is not None else None

    @property
    def released(self) -> bool:
        """True once a backward pass has freed the saved values."""
        return getattr(self, "_released", False)

    def settings(self) -> dict[str, Any]:
        """The op's settings (attributes given before forward), for display."""
        names = self._setting_names
        if names is None:                   # not called yet: everything set so far
            names = tuple(self.__dict__)
        return {k: self.__dict__[k] for k in names if k in self.__dict__}

    def _release(self) -> None:
        """Free the values ``forward`` saved; the settings and graph structure stay."""
        values = self.__dict__
        self.__dict__ = {k: values[k] for k in self._setting_names} if self._setting_names else {}
        self._released = True
        self._hold = None  # the leaves' arrays are writeable again


def topological_order(roots: Iterable[Function]) -> list[Function]:
    """The ops reachable from ``roots``, each after every op that made one of its inputs.

    An explicit stack instead of recursion: a chain of 100,000 ops is fine. Inputs are visited
    left to right, so the order is the same for the same graph (graph drawing numbers its
    nodes by it). ``backward`` walks it in reverse.
    """
    # Depth-first post-order: an op is appended only after everything below it. It is marked
    # when it is expanded, not when it is pushed, so an op reached again through a longer path
    # is still placed below every op that consumes its output.
    order: list[Function] = []
    visited: set[int] = set()
    for root in roots:
        stack: list[tuple[Function, bool]] = [(root, False)]
        while stack:
            fn, expanded = stack.pop()
            if expanded:
                order.append(fn)
                continue
            if id(fn) in visited:
                continue
            visited.add(id(fn))
            stack.append((fn, True))
            for x in reversed(fn.inputs):
                if type(x) is not np.ndarray and isinstance(x, Tensor):
                    creator = x.creator
                    if creator is not None and id(creator) not in visited:
                        stack.append((creator, False))
    return order


def run_backward(root: Tensor, seed: np.ndarray, retain_graph: bool) -> None:
    """Propagate ``seed`` = dL/d(root) back through the tape (called by ``Tensor.backward``).

    A leaf's ``.grad`` is always an array of its own (optimizers may update it in place): a
    gradient that is ``dy`` itself, a view of another array or read-only is copied first.
    """
    if root.creator is None:  # a leaf: its gradient is the seed
        root.grad = seed.copy(order="K") if root.grad is None else _sum(root.grad, seed)
        return
    grads: dict[int, np.ndarray] = {id(root): seed}
    given: set[int] = set()  # arrays already made some leaf's .grad in this pass
    for fn in reversed(topological_order((root.creator,))):
        out = fn._output_ref()
        dy = grads.pop(id(out), None) if out is not None else None
        if dy is None:  # nothing downstream of this op reached the root
            continue
        if out._retains_grad:
            out.grad = dy.copy(order="K") if out.grad is None else _sum(out.grad, dy)
        if fn._released:
            raise RuntimeError(
                f"backward: trying to go through the graph a second time: the values that "
                f"{type(fn).__name__} saved were freed by the first backward(); pass "
                f"retain_graph=True to that first call to keep them")
        for x, version in zip(fn.inputs, fn._versions):  # inline: this loop is the hot path
            if version is not None and x._version != version:
                _check_versions(fn)  # raises, naming the op and the input
        if _observers:
            start = time.perf_counter()
            gxs = fn.backward(dy)
            seconds = time.perf_counter() - start
        else:
            gxs = fn.backward(dy)
        inputs = fn.inputs
        if type(gxs) is not tuple:
            gxs = (gxs,)
        if len(gxs) != len(inputs):
            raise RuntimeError(
                f"{type(fn).__name__}.backward returned {len(gxs)} gradient(s) for "
                f"{len(inputs)} input(s); return one per input, None where there is none")
        if _observers:
            for observer in _observers:
                observer.backward(fn, dy, gxs, seconds)
        for i, x in enumerate(inputs):
            gx = gxs[i]
            if gx is None or not isinstance(x, Tensor) or not x.requires_grad:
                continue
            if type(gx) is not np.ndarray:
                gx = _check_array(fn, i, gx, x)
            data = x._data
            if gx.shape != data.shape:
                raise RuntimeError(
                    f"{type(fn).__name__}.backward returned a gradient of shape "
                    f"{gx.shape} for input {i}, which has shape {data.shape}")
            if gx.dtype != data.dtype:  # keep float32 float32 end to end
                gx = gx.astype(data.dtype)
            if x.creator is None:  # a leaf: accumulate into .grad
                if x.grad is None:
                    fresh = (gx is not dy and gx.base is None and gx.flags.writeable
                             and id(gx) not in given)
                    x.grad = gx if fresh else gx.copy(order="K")
                    given.add(id(x.grad))
                else:
                    x.grad = _sum(x.grad, gx)
            else:
                key = id(x)
                previous = grads.get(key)
                grads[key] = gx if previous is None else _sum(previous, gx)
        if not retain_graph:
            fn._release()


def _sum(a: Any, b: Any) -> Any:
    """a + b for accumulating gradients: an ndarray even for 0-d arrays (whose sum NumPy gives
    as a scalar, which has no memory to update in place), or a Tensor under create_graph."""
    total = a + b
    return np.asarray(total) if isinstance(total, np.generic) else total


def _check_versions(fn: Function) -> None:
    """RuntimeError when an input of ``fn`` was changed in place after ``fn`` was recorded."""
    for i, (x, version) in enumerate(zip(fn.inputs, fn._versions)):
        if version is not None and x._version != version:
            op = type(fn).__name__
            name = f"'{x.name}', " if x.name else ""
            raise RuntimeError(
                f"backward: {op}'s input {i} ({name}shape {x.shape}, dtype {x.dtype}) was "
                f"modified in place after {op} used it: it is at version {x._version}, {op} "
                f"saw version {version} (an optimiser step or a .data assignment between the "
                f"forward pass and backward()). Run backward() before changing it, or run the "
                f"forward pass again after the change")


def _check_array(fn: Function, i: int, gx: Any, x: Tensor) -> np.ndarray:
    """``gx`` as an ndarray (NumPy gives scalars for 0-d arithmetic), or a RuntimeError."""
    if isinstance(gx, (np.generic, float, int)):
        return np.asarray(gx)
    raise RuntimeError(f"{type(fn).__name__}.backward returned a {type(gx).__name__} as the "
                       f"gradient of input {i}, which has shape {x.data.shape}; return an "
                       f"ndarray of that shape")


# ------------------------------------------------------------------------ gradients on demand
# ``run_grad`` serves ``minigrad.grad``: the same walk as ``run_backward`` but it writes no
# ``.grad``, visits only the ops between the outputs and the requested inputs, and, with
# create_graph=True, joins the second path: each op's ``backward_graph`` on Tensors instead
# of its ``backward`` on arrays, so the gradients are recorded on the tape.


def run_grad(outputs: list[Tensor], seeds: list[Any], inputs: list[Tensor],
             retain_graph: bool, create_graph: bool) -> list[Any]:
    """The gradients of ``outputs`` (seeded with ``seeds``) with respect to ``inputs``.

    Returns one per input: an ndarray (a Tensor on the tape when ``create_graph``), or None
    when no path leads from the input to an output.
    """
    wanted = {id(x) for x in inputs}
    grads: dict[int, Any] = {}
    for out, seed in zip(outputs, seeds):
        key = id(out)
        grads[key] = seed if key not in grads else _sum(grads[key], seed)
    found: dict[int, Any] = {}
    order = topological_order([o.creator for o in outputs if o.creator is not None])
    step = _graph_step if create_graph else _array_step
    for fn, needs in _ops_leading_to(order, wanted):
        out = fn._output_ref()
        dy = grads.pop(id(out), None) if out is not None else None
        if dy is None:
            continue
        if id(out) in wanted:
            found[id(out)] = dy
        if fn._released:
            raise RuntimeError(
                f"grad: trying to go through the graph a second time: the values that "
                f"{type(fn).__name__} saved were freed by an earlier backward pass; pass "
                f"retain_graph=True to that earlier call to keep them")
        _check_versions(fn)
        recorded = fn.needs_input_grad
        fn.needs_input_grad = needs       # compute only the gradients asked for
        try:
            gxs = step(fn, dy)
        finally:
            fn.needs_input_grad = recorded
        for i, x in enumerate(fn.inputs):
            gx = gxs[i]
            if gx is None or not needs[i]:
                continue
            gx = _checked(fn, i, gx, x, create_graph)
            key = id(x)
            previous = grads.get(key)
            grads[key] = gx if previous is None else _sum(previous, gx)
        if not retain_graph:
            fn._release()
    for x in inputs:                     # leaves, and tensors no op beyond them consumed
        if id(x) not in found and id(x) in grads:
            found[id(x)] = grads[id(x)]
    return [found.get(id(x)) for x in inputs]


def _ops_leading_to(order: list[Function], wanted: set[int]) -> list[tuple[Function, tuple]]:
    """The ops of ``order`` that lie on a path to a wanted tensor, last first, each with the
    inputs whose gradient is needed (one bool per input)."""
    reaches: set[int] = set()      # ids of ops through which a wanted tensor is reached
    kept = []
    for fn in order:
        needs = tuple(
            isinstance(x, Tensor) and x.requires_grad
            and (id(x) in wanted or (x.creator is not None and id(x.creator) in reaches))
            for x in fn.inputs)
        if True in needs:
            reaches.add(id(fn))
            kept.append((fn, needs))
    kept.reverse()
    return kept


def _array_step(fn: Function, dy: np.ndarray) -> tuple:
    """One op's gradients on arrays (its ``backward``), checked for their number."""
    if _observers:
        start = time.perf_counter()
        gxs = fn.backward(dy)
        seconds = time.perf_counter() - start
    else:
        gxs = fn.backward(dy)
    gxs = _as_tuple(fn, gxs)
    if _observers:
        for observer in _observers:
            observer.backward(fn, dy, gxs, seconds)
    return gxs


def _graph_step(fn: Function, dy: Tensor) -> tuple:
    """One op's gradients as recorded Tensors (its ``backward_graph``), for create_graph.

    An op without ``backward_graph`` gives its gradients as values whose own backward
    raises an error naming the op (``OnceDifferentiable``): never a silent zero.
    """
    from minigrad.ops.grad_ops import OnceDifferentiable
    from minigrad.tensor import enable_grad

    with enable_grad():
        if type(fn).backward_graph is Function.backward_graph:
            arrays = _as_tuple(fn, fn.backward(dy.data))
            tensors = [x for x in fn.inputs if isinstance(x, Tensor)]
            return tuple(None if g is None else
                         OnceDifferentiable(type(fn).__name__, i, np.asarray(g))(dy, *tensors)
                         for i, g in enumerate(arrays))
        gxs = _as_tuple(fn, fn.backward_graph(dy))
    if _observers:
        arrays = tuple(g.data if isinstance(g, Tensor) else g for g in gxs)
        for observer in _observers:
            observer.backward(fn, dy.data, arrays, 0.0)
    return gxs


def _as_tuple(fn: Function, gxs: Any) -> tuple:
    if type(gxs) is not tuple:
        gxs = (gxs,)
    if len(gxs) != len(fn.inputs):
        raise RuntimeError(
            f"{type(fn).__name__}.backward returned {len(gxs)} gradient(s) for "
            f"{len(fn.inputs)} input(s); return one per input, None where there is none")
    return gxs


def _checked(fn: Function, i: int, gx: Any, x: Tensor, create_graph: bool) -> Any:
    """``gx`` checked against input ``i`` (shape) and cast to its dtype."""
    if create_graph:
        if not isinstance(gx, Tensor):
            raise RuntimeError(
                f"{type(fn).__name__}.backward_graph returned a {type(gx).__name__} as the "
                f"gradient of input {i}; return a Tensor computed by ops on dy, the inputs "
                f"and the output")
    elif type(gx) is not np.ndarray:
        gx = _check_array(fn, i, gx, x)
    if gx.shape != x.data.shape:
        method = "backward_graph" if create_graph else "backward"
        raise RuntimeError(
            f"{type(fn).__name__}.{method} returned a gradient of shape {gx.shape} for "
            f"input {i}, which has shape {x.data.shape}")
    if gx.dtype != x.data.dtype:
        if create_graph:
            from minigrad.ops.grad_ops import Cast

            return Cast(x.data.dtype)(gx)
        return gx.astype(x.data.dtype)
    return gx
