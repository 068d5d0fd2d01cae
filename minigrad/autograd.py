"""Gradients as values: ``grad``, and Jacobians, Hessians and their products.

``grad`` returns gradients instead of accumulating them into ``.grad``; with
``create_graph=True`` they are on the tape and can be differentiated again, to any order.
The functions below are named and shaped as ``torch.autograd.functional``'s: ``f`` takes
Tensors and returns one Tensor; ``inputs`` is one Tensor (or array) or a tuple of them. All are
computed in reverse mode: ``jacobian`` and ``hessian`` run one backward pass per output
element (O(outputs) passes), ``jvp`` uses the double-vjp trick (the vjp is linear in its
vector, so differentiating it with respect to that vector gives J·v).

>>> import numpy as np
>>> import minigrad
>>> x = minigrad.Tensor(np.array([1.0, 2.0]), requires_grad=True)
>>> (g,) = minigrad.grad((x ** 3).sum(), x, create_graph=True)   # 3x²
>>> g.data
array([ 3., 12.])
>>> (h,) = minigrad.grad(g.sum(), x)                              # 6x
>>> h.data
array([ 6., 12.])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from minigrad.function import run_grad
from minigrad.tensor import Tensor, _as_array, enable_grad

__all__ = ["grad", "jacobian", "hessian", "vjp", "jvp", "hvp"]


def _tensors(value: Any, what: str) -> tuple[list[Tensor], bool]:
    """``value`` (a Tensor or a sequence of them) as a list, and whether it was a sequence."""
    many = isinstance(value, (tuple, list))
    items = list(value) if many else [value]
    for i, t in enumerate(items):
        if not isinstance(t, Tensor):
            where = f"{what}[{i}]" if many else what
            raise TypeError(f"grad: {where} must be a Tensor, got {type(t).__name__}")
    return items, many


def _describe(t: Tensor, i: int, what: str) -> str:
    name = f" {t.name!r}" if t.name else ""
    return f"{what}[{i}]{name} (shape {t.shape})"


def grad(outputs: Any, inputs: Any, grad_outputs: Any = None, retain_graph: bool | None = None,
         create_graph: bool = False, allow_unused: bool = False) -> tuple[Tensor | None, ...]:
    """The gradients of ``outputs`` with respect to ``inputs``, returned (no ``.grad`` is set).

    Args:
        outputs: a Tensor or a sequence of Tensors to differentiate.
        inputs: a Tensor or a sequence of Tensors (leaves or intermediate results) that require
            grad.
        grad_outputs: dL/d(output) for each output (a Tensor, an array or None each; a single
            value for a single output). None stands for ones, allowed for one-element outputs
            only, as in ``backward``.
        retain_graph: keep the saved values for another pass; default: ``create_graph``.
        create_graph: record the gradients on the tape (through each op's ``backward_graph``)
            so that they can be differentiated again.
        allow_unused: give None for an input no output depends on, instead of an error.

    Returns:
        A tuple with one Tensor per input (None for an unused one when ``allow_unused``). With
        ``create_graph`` the Tensors are on the tape; without, they are plain results.

    Raises:
        RuntimeError: an output that needs a ``grad_outputs``, an input that does not require
            grad or is unused (without ``allow_unused``), or an op that cannot be
            differentiated twice.

    >>> import numpy as np
    >>> x = Tensor(np.array(2.0), requires_grad=True)
    >>> (dx,) = grad(x.tanh(), x, create_graph=True)
    >>> (d2x,) = grad(dx, x)
    >>> round(float(dx.data), 6), round(float(d2x.data), 6)   # 1 − tanh², −2 tanh (1 − tanh²)
    (0.070651, -0.136219)
    """
    outs, many_outputs = _tensors(outputs, "outputs")
    xs, _ = _tensors(inputs, "inputs")
    if grad_outputs is None:
        seeds_in: list = [None] * len(outs)
    elif many_outputs:
        seeds_in = list(grad_outputs) if isinstance(grad_outputs, (tuple, list)) else [
            grad_outputs]
    else:
        seeds_in = _one_per(grad_outputs, 1)
    if len(seeds_in) != len(outs):
        raise ValueError(f"grad: {len(seeds_in)} grad_outputs for {len(outs)} outputs")
    for i, x in enumerate(xs):
        if not x.requires_grad:
            raise RuntimeError(f"grad: {_describe(x, i, 'inputs')} does not require grad; "
                               f"create it with requires_grad=True")
    seeds = []
    for i, (out, g) in enumerate(zip(outs, seeds_in)):
        if not out.requires_grad:
            raise RuntimeError(f"grad: {_describe(out, i, 'outputs')} does not require grad "
                               f"and has no creator on the tape: it depends on no input")
        if g is None:
            if out.size != 1:
                raise RuntimeError(
                    f"grad: grad_outputs can be implicitly created only for one-element "
                    f"outputs, but {_describe(out, i, 'outputs')} is not; pass grad_outputs")
            g = np.ones_like(out.data)
        elif not (create_graph and isinstance(g, Tensor)):
            g = _as_array(g, out.dtype)
        if g.shape != out.shape:
            raise ValueError(f"grad: grad_outputs[{i}] has shape {g.shape} but "
                             f"{_describe(out, i, 'outputs')} does not")
        if create_graph and not isinstance(g, Tensor):
            g = Tensor(g, name="grad_output")     # a leaf of the gradient's graph
        seeds.append(g)
    if retain_graph is None:
        retain_graph = create_graph
    results = run_grad(outs, seeds, xs, retain_graph, create_graph)
    gradients: list[Tensor | None] = []
    for i, (x, r) in enumerate(zip(xs, results)):
        if r is None:
            if not allow_unused:
                raise RuntimeError(
                    f"grad: {_describe(x, i, 'inputs')} was not used to compute the outputs; "
                    f"pass allow_unused=True to get None for it")
            gradients.append(None)
        elif isinstance(r, Tensor):
            gradients.append(r)
        else:
            fresh = r.base is None and r.flags.writeable and not any(r is s for s in seeds)
            gradients.append(Tensor._from_op(r if fresh else r.copy(), False, None))
    return tuple(gradients)


def _one_per(value: Any, n: int) -> list:
    """``value`` as a list of n entries: a single Tensor or array stands for [value] when n
    is 1, also inside a tuple or list of one (as PyTorch accepts both)."""
    if n == 1 and not (isinstance(value, (tuple, list)) and len(value) == 1
                       and isinstance(value[0], (Tensor, np.ndarray, type(None)))):
        return [value]
    return list(value) if isinstance(value, (tuple, list)) else [value]


# ------------------------------------------------------------------ torch.autograd.functional


def _prepare(inputs: Any, create_graph: bool) -> tuple[list[Tensor], bool]:
    """Fresh leaves that require grad, with the inputs' data, and whether a tuple was given.

    With ``create_graph`` a Tensor that requires grad is used itself (as PyTorch does), so
    that the result can be differentiated with respect to it.
    """
    many = isinstance(inputs, (tuple, list))
    items = list(inputs) if many else [inputs]
    leaves = []
    for x in items:
        if create_graph and isinstance(x, Tensor) and x.requires_grad:
            leaves.append(x)
            continue
        data = x.data if isinstance(x, Tensor) else _as_array(x)
        leaves.append(Tensor(data, requires_grad=True))
    return leaves, many


def _call(f: Callable[..., Tensor], xs: list[Tensor], what: str) -> Tensor:
    with enable_grad():
        out = f(*xs)
    if not isinstance(out, Tensor):
        raise TypeError(f"{what}: f must return a Tensor, got {type(out).__name__}")
    return out


def _vectors(v: Any, like: Sequence[Tensor], what: str, name: str) -> list[np.ndarray]:
    """``v`` as one array per tensor of ``like``, each of its shape."""
    items = _one_per(v, len(like))
    if len(items) != len(like):
        raise ValueError(f"{what}: {name} has {len(items)} entries for {len(like)} tensors")
    arrays = []
    for i, (a, t) in enumerate(zip(items, like)):
        a = _as_array(a, t.dtype)
        if a.shape != t.shape:
            raise ValueError(f"{what}: {name}[{i}] has shape {a.shape} but the tensor it "
                             f"goes with has shape {t.shape}")
        arrays.append(a)
    return arrays


def _filled(grads: Sequence[Tensor | None], like: Sequence[Tensor],
            create_graph: bool) -> list[Tensor]:
    """None (no dependence) as zeros; plain results cut from the tape unless create_graph."""
    out = []
    for g, t in zip(grads, like):
        if g is None:
            g = Tensor(np.zeros(t.shape, t.dtype))
        elif not create_graph:
            g = g.detach()
        out.append(g)
    return out


def _result(values: list, many: bool) -> Any:
    return tuple(values) if many else values[0]


def _output(out: Tensor, create_graph: bool) -> Tensor:
    return out if create_graph else out.detach()


def vjp(f: Callable[..., Tensor], inputs: Any, v: Any = None,
        create_graph: bool = False) -> tuple[Tensor, Any]:
    """The vector-Jacobian product vᵀ·J of ``f`` at ``inputs``.

    Args:
        f: maps Tensors to one Tensor.
        inputs: a Tensor or array, or a tuple of them.
        v: a vector of f's output shape (may be omitted for a one-element output).
        create_graph: keep the result on the tape.

    Returns:
        (f(inputs), vᵀJ) with vᵀJ shaped like ``inputs`` (a tuple for a tuple).

    >>> _, g = vjp(lambda x: x * x, np.array([1.0, 2.0]), np.array([1.0, 10.0]))
    >>> g.data
    array([ 2., 40.])
    """
    xs, many = _prepare(inputs, create_graph)
    out = _call(f, xs, "vjp")
    seed = None if v is None else _vectors(v, [out], "vjp", "v")[0]
    if not out.requires_grad:
        return _output(out, create_graph), _result(_filled([None] * len(xs), xs, False), many)
    grads = grad(out, xs, seed, create_graph=create_graph, allow_unused=True)
    return _output(out, create_graph), _result(_filled(grads, xs, create_graph), many)


def jvp(f: Callable[..., Tensor], inputs: Any, v: Any = None,
        create_graph: bool = False) -> tuple[Tensor, Tensor]:
    """The Jacobian-vector product J·v of ``f`` at ``inputs``, by the double-vjp trick.

    uᵀJ is linear in u, so its gradient with respect to u, seeded with v, is J·v: two reverse
    passes, the first recorded (create_graph).

    Args:
        f: maps Tensors to one Tensor.
        inputs: a Tensor or array, or a tuple of them.
        v: a vector shaped like ``inputs`` (may be omitted for a one-element input).
        create_graph: keep the result on the tape.

    Returns:
        (f(inputs), J·v) with J·v of f's output shape.

    >>> _, jv = jvp(lambda x: x * x, np.array([1.0, 2.0]), np.array([1.0, 10.0]))
    >>> jv.data
    array([ 2., 40.])
    """
    xs, many = _prepare(inputs, create_graph)
    out = _call(f, xs, "jvp")
    if v is None:
        if len(xs) != 1 or xs[0].size != 1:
            raise RuntimeError("jvp: v can be omitted only for a single one-element input")
        vs = [np.ones_like(xs[0].data)]
    else:
        vs = _vectors(v, xs, "jvp", "v")
    zero = Tensor(np.zeros(out.shape, out.dtype))
    if not out.requires_grad:
        return _output(out, create_graph), zero
    u = Tensor(np.zeros(out.shape, out.dtype), requires_grad=True)
    grads = grad(out, xs, u, create_graph=True, allow_unused=True)
    used = [(g, a) for g, a in zip(grads, vs) if g is not None and g.requires_grad]
    if not used:
        return _output(out, create_graph), zero
    (jv,) = grad([g for g, _ in used], u, [Tensor(a) for _, a in used],
                 create_graph=create_graph, allow_unused=True)
    jv = _filled([jv], [out], create_graph)[0]
    return _output(out, create_graph), jv


def hvp(f: Callable[..., Tensor], inputs: Any, v: Any = None,
        create_graph: bool = False) -> tuple[Tensor, Any]:
    """The Hessian-vector product H·v of a scalar ``f`` at ``inputs`` (two reverse passes).

    Args:
        f: maps Tensors to a one-element Tensor.
        inputs: a Tensor or array, or a tuple of them.
        v: a vector shaped like ``inputs`` (may be omitted for a one-element input).
        create_graph: keep the result on the tape.

    Returns:
        (f(inputs), H·v) with H·v shaped like ``inputs``.

    >>> _, hv = hvp(lambda x: (x ** 3).sum(), np.array([1.0, 2.0]), np.array([1.0, 1.0]))
    >>> hv.data                                  # 6x · v
    array([ 6., 12.])
    """
    xs, many = _prepare(inputs, create_graph)
    out = _call(f, xs, "hvp")
    _check_scalar(out, "hvp")
    if v is None:
        if len(xs) != 1 or xs[0].size != 1:
            raise RuntimeError("hvp: v can be omitted only for a single one-element input")
        vs = [np.ones_like(xs[0].data)]
    else:
        vs = _vectors(v, xs, "hvp", "v")
    if not out.requires_grad:
        return _output(out, create_graph), _result(_filled([None] * len(xs), xs, False), many)
    grads = grad(out, xs, create_graph=True, allow_unused=True)
    used = [(g, a) for g, a in zip(grads, vs) if g is not None and g.requires_grad]
    if not used:
        return _output(out, create_graph), _result(_filled([None] * len(xs), xs, False), many)
    hv = grad([g for g, _ in used], xs, [Tensor(a) for _, a in used],
              create_graph=create_graph, allow_unused=True)
    return _output(out, create_graph), _result(_filled(hv, xs, create_graph), many)


def _check_scalar(out: Tensor, what: str) -> None:
    if out.size != 1:
        raise RuntimeError(f"{what}: f must return a one-element Tensor, got shape {out.shape}")


def _rows(out: Tensor, xs: list[Tensor], create_graph: bool) -> list[list[Any]]:
    """d out[k] / d xs[i] for every element k of ``out``: one backward pass per element."""
    rows = []
    for k in range(out.size):
        seed = np.zeros(out.shape, out.dtype)
        seed.reshape(-1)[k] = 1
        if out.requires_grad:
            grads = grad(out, xs, seed, retain_graph=True, create_graph=create_graph,
                         allow_unused=True)
        else:
            grads = (None,) * len(xs)
        rows.append(_filled(grads, xs, create_graph))
    return rows


def _stack(rows: list[Tensor], out_shape: tuple[int, ...], x: Tensor,
           create_graph: bool) -> Tensor:
    """The rows (one per output element, each of x's shape) as one (out_shape + x.shape)."""
    shape = tuple(out_shape) + x.shape
    if not create_graph:
        data = np.stack([r.data for r in rows]).reshape(shape) if rows else np.zeros(shape)
        return Tensor(data.astype(x.dtype, copy=False))
    from minigrad.ops.grad_ops import ScatterAdd

    total = None
    for k, r in enumerate(rows):
        placed = ScatterAdd(np.unravel_index(k, out_shape) if out_shape else (), shape)(r)
        total = placed if total is None else total + placed
    return total if total is not None else Tensor(np.zeros(shape, x.dtype))


def jacobian(f: Callable[..., Tensor], inputs: Any, create_graph: bool = False) -> Any:
    """The Jacobian of ``f`` at ``inputs``: O(outputs) backward passes, one per element.

    Args:
        f: maps Tensors to one Tensor.
        inputs: a Tensor or array, or a tuple of them.
        create_graph: keep the result on the tape.

    Returns:
        For one input, a Tensor of shape f(x).shape + x.shape with J[k..., i...] =
        d f[k...] / d x[i...]; for a tuple, a tuple with one such Tensor per input.

    >>> jacobian(lambda x: x ** 2, np.array([1.0, 3.0])).data
    array([[2., 0.],
           [0., 6.]])
    """
    xs, many = _prepare(inputs, create_graph)
    out = _call(f, xs, "jacobian")
    rows = _rows(out, xs, create_graph)
    return _result([_stack([row[i] for row in rows], out.shape, x, create_graph)
                    for i, x in enumerate(xs)], many)


def hessian(f: Callable[..., Tensor], inputs: Any, create_graph: bool = False) -> Any:
    """The Hessian of a scalar ``f`` at ``inputs``: one backward pass per input element.

    Args:
        f: maps Tensors to a one-element Tensor.
        inputs: a Tensor or array, or a tuple of them.
        create_graph: keep the result on the tape.

    Returns:
        For one input x, a Tensor of shape x.shape + x.shape; for a tuple, a tuple of tuples
        with H[i][j] of shape inputs[i].shape + inputs[j].shape.

    >>> hessian(lambda x: (x[0] * x[1] ** 2), np.array([1.0, 3.0])).data
    array([[0., 6.],
           [6., 2.]])
    """
    xs, many = _prepare(inputs, create_graph)
    out = _call(f, xs, "hessian")
    _check_scalar(out, "hessian")
    if out.requires_grad:
        first = grad(out, xs, create_graph=True, allow_unused=True)
    else:
        first = (None,) * len(xs)
    blocks = []
    for i, x in enumerate(xs):
        g = first[i]
        if g is not None and g.requires_grad:
            rows = _rows(g, xs, create_graph)
        else:
            rows = [_filled([None] * len(xs), xs, False) for _ in range(x.size)]
        blocks.append(tuple(_stack([row[j] for row in rows], x.shape, xj, create_graph)
                            for j, xj in enumerate(xs)))
    return tuple(blocks) if many else blocks[0][0]
