"""Compare the tape's gradients with central differences."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from minigrad.tensor import Tensor, no_grad


class GradcheckError(AssertionError):
    """The analytic gradient of some input disagrees with the numerical one."""


def _as_float64(value: Any) -> np.ndarray:
    data = value.data if isinstance(value, Tensor) else value
    return np.array(data, dtype=np.float64)  # a copy: the check perturbs it in place


def numerical_grad(f: Callable[[np.ndarray], float], x: np.ndarray,
                   eps: float = 1e-6) -> np.ndarray:
    """d f / d x by central differences, (f(x + ε) − f(x − ε)) / 2ε, one element at a time.

    ``x`` is perturbed in place and restored, whatever its memory layout (a channels-last or
    transposed view too: ``x.flat`` writes through to x, where ``x.reshape(-1)`` of such an
    x would be a copy and leave x as it was). The gradient comes in C order.

    >>> numerical_grad(lambda a: float((a ** 2).sum()), np.array([1.0, -2.0])).round(6)
    array([ 2., -4.])
    >>> numerical_grad(lambda a: float((a[0] * 3).sum()), np.ones((2, 3)).T).round(6)
    array([[3., 3.],
           [0., 0.],
           [0., 0.]])
    """
    grad = np.zeros(x.shape, x.dtype)
    flat, gflat = x.flat, grad.reshape(-1)
    for i in range(x.size):
        original = flat[i]
        flat[i] = original + eps
        plus = f(x)
        flat[i] = original - eps
        minus = f(x)
        flat[i] = original
        gflat[i] = (plus - minus) / (2 * eps)
    return grad


def gradcheck(fn: Callable[..., Tensor], *inputs: Any, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, seed: int = 0) -> bool:
    """Check the gradient of ``fn`` with respect to every input against central differences.

    The inputs are cast to float64 leaf tensors. The scalar checked is ``sum(fn(*xs) * R)`` with
    ``R`` a fixed random array (not ones: an all-ones upstream gradient would miss a backward
    that ignores ``dy``). An element passes when ``|analytic − numeric| ≤ atol + rtol·|numeric|``.

    Args:
        fn: maps Tensors to one Tensor.
        inputs: arrays, numbers or Tensors (their data is used).
        eps: the finite-difference step.
        atol, rtol: the tolerance above.
        seed: seeds ``R``.

    Returns:
        True when every input passes.

    Raises:
        GradcheckError: naming the input (index and shape), the worst element, its analytic and
            numeric values and both errors.

    >>> gradcheck(lambda a, b: a @ b, np.ones((2, 3)), np.ones((3, 4)))
    True
    """
    arrays = [_as_float64(x) for x in inputs]
    tensors = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    out = fn(*tensors)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    if out.dtype != np.float64:
        raise TypeError(f"gradcheck: fn returned dtype {out.dtype}; the check needs float64 "
                        f"all the way (do not cast inside fn)")
    r = np.random.default_rng(seed).standard_normal(out.shape)
    if out.requires_grad:
        (out * r).sum().backward()

    def scalar(*xs: np.ndarray) -> float:
        with no_grad():
            return float((fn(*(Tensor(x) for x in xs)).data * r).sum())

    for i, (t, a) in enumerate(zip(tensors, arrays)):
        analytic = t.grad if t.grad is not None else np.zeros_like(a)

        def f_i(x: np.ndarray, i: int = i) -> float:
            return scalar(*arrays[:i], x, *arrays[i + 1:])

        numeric = numerical_grad(f_i, arrays[i], eps)
        error = np.abs(analytic - numeric)
        allowed = atol + rtol * np.abs(numeric)
        if not np.all(error <= allowed):  # also fails on NaN
            bad = np.where(np.isnan(error), np.inf, error - allowed)
            worst = np.unravel_index(int(np.argmax(bad)), a.shape) if a.ndim else ()
            a_val, n_val = float(analytic[worst]), float(numeric[worst])
            raise GradcheckError(
                f"gradcheck: gradient of input {i} (shape {a.shape}) is wrong at index "
                f"{tuple(int(k) for k in worst)}: analytic {a_val:.6g}, numeric {n_val:.6g}; "
                f"absolute error {abs(a_val - n_val):.3g}, relative error "
                f"{abs(a_val - n_val) / max(abs(n_val), 1e-300):.3g} "
                f"(allowed atol={atol} + rtol={rtol}·|numeric|); "
                f"{int((error > allowed).sum())} of {a.size} elements fail")
    return True


def check_op(fn: Callable[..., Tensor], reference: Callable[..., Any], *inputs: Any,
             wrt: Any = None, rtol: float = 1e-7, atol: float = 1e-12,
             **gradcheck_options: Any) -> bool:
    """Check an op: its forward against a reference, then its gradient with :func:`gradcheck`.

    The differentiable inputs are cast to float64. The forward pass must give a float64 Tensor
    with the reference's shape and values; then every differentiable input is gradient-checked
    with a random upstream gradient. Inputs outside ``wrt`` (labels, indices) are passed to
    ``fn`` and ``reference`` unchanged.

    Args:
        fn: maps the inputs (Tensors where differentiable) to one Tensor.
        reference: maps the same inputs as float64 ndarrays to the expected output (NumPy, or a
            slower oracle).
        inputs: arrays or numbers.
        wrt: indices of the differentiable inputs (default: all).
        rtol, atol: the tolerance of the forward comparison.
        gradcheck_options: passed to :func:`gradcheck` (eps, atol, rtol, seed).

    Returns:
        True when the forward values and every gradient agree.

    Raises:
        AssertionError: the forward disagrees (dtype, shape or values).
        GradcheckError: a gradient disagrees.

    >>> check_op(lambda x, y: x * y, np.multiply, np.ones((2, 3)), np.arange(3.0))
    True
    """
    wrt = tuple(range(len(inputs))) if wrt is None else tuple(wrt)
    arrays = [_as_float64(x) if i in wrt else x for i, x in enumerate(inputs)]
    expected = np.asarray(reference(*arrays))
    out = fn(*(Tensor(a.copy(), requires_grad=True) if i in wrt else a
               for i, a in enumerate(arrays)))
    if not isinstance(out, Tensor):
        raise TypeError(f"check_op: fn must return a Tensor, got {type(out).__name__}")
    if out.dtype != np.float64:
        raise AssertionError(f"check_op: float64 inputs gave a {out.dtype} output")
    if out.shape != expected.shape:
        raise AssertionError(f"check_op: output shape {out.shape} but the reference gives "
                             f"{expected.shape}")
    np.testing.assert_allclose(out.data, expected, rtol=rtol, atol=atol,
                               err_msg="check_op: forward values differ from the reference")

    def differentiable_only(*tensors: Tensor) -> Tensor:
        args = list(arrays)
        for i, t in zip(wrt, tensors):
            args[i] = t
        return fn(*args)

    return gradcheck(differentiable_only, *(arrays[i] for i in wrt), **gradcheck_options)


def _mismatch(analytic: np.ndarray, numeric: np.ndarray, atol: float,
              rtol: float) -> str | None:
    """None when every element passes ``|a − n| ≤ atol + rtol·|n|``, else the worst one."""
    error = np.abs(analytic - numeric)
    allowed = atol + rtol * np.abs(numeric)
    if np.all(error <= allowed):  # also fails on NaN
        return None
    bad = np.where(np.isnan(error), np.inf, error - allowed)
    worst = np.unravel_index(int(np.argmax(bad)), analytic.shape) if analytic.ndim else ()
    a_val, n_val = float(analytic[worst]), float(numeric[worst])
    return (f"at index {tuple(int(k) for k in worst)}: {a_val:.6g} where {n_val:.6g} was "
            f"expected; absolute error {abs(a_val - n_val):.3g}, relative error "
            f"{abs(a_val - n_val) / max(abs(n_val), 1e-300):.3g} (allowed atol={atol} + "
            f"rtol={rtol}·|expected|); {int((error > allowed).sum())} of {analytic.size} "
            f"elements fail")


def gradgradcheck(fn: Callable[..., Tensor], *inputs: Any, eps: float = 1e-6,
                  atol: float = 1e-5, rtol: float = 1e-3, seed: int = 0) -> bool:
    """Check the second derivatives of ``fn`` (its gradients' gradients) numerically.

    With a random upstream gradient ``u`` (of the output's shape) and random second-level
    seeds ``r_i`` (one per input, not ones), it checks, in float64:

    1. the gradients from the recorded path (``create_graph=True``, each op's
       ``backward_graph``) equal those of the array path (each op's ``backward``);
    2. the gradient of G = Σ_i ⟨r_i, d⟨fn(x), u⟩/dx_i⟩ with respect to every input x_j and
       to u, taken through the recorded path, equals central differences of G computed with
       the array path. The derivative in u catches a backward that ignores its incoming
       gradient; the one in x_j a forgotten term of the product rule or a wrong factor.

    Args:
        fn: maps Tensors to one Tensor.
        inputs: arrays, numbers or Tensors (their data is used).
        eps: the finite-difference step.
        atol, rtol: an element passes when ``|analytic − numeric| ≤ atol + rtol·|numeric|``.
        seed: seeds ``u`` and the ``r_i``.

    Returns:
        True when every check passes.

    Raises:
        GradcheckError: naming the check, the input (index and shape) or the upstream
            gradient, and the worst element with both values and errors.

    >>> gradgradcheck(lambda x, y: (x * y).tanh(), np.array([0.5, -1.0]), np.array([2.0, 0.3]))
    True
    """
    from minigrad.autograd import grad

    arrays = [_as_float64(x) for x in inputs]
    with no_grad():
        probe = fn(*(Tensor(a.copy()) for a in arrays))
    if not isinstance(probe, Tensor):
        raise TypeError(f"gradgradcheck: fn must return a Tensor, got {type(probe).__name__}")
    if probe.dtype != np.float64:
        raise TypeError(f"gradgradcheck: fn returned dtype {probe.dtype}; the check needs "
                        f"float64 all the way (do not cast inside fn)")
    rng = np.random.default_rng(seed)
    u0 = rng.standard_normal(probe.shape)
    seeds = [rng.standard_normal(a.shape) for a in arrays]

    def first(xs: list[np.ndarray], u: np.ndarray, create_graph: bool) -> tuple:
        ts = [Tensor(a.copy(), requires_grad=True) for a in xs]
        ut = Tensor(u.copy(), requires_grad=create_graph)
        out = fn(*ts)
        if not out.requires_grad:
            return ts, ut, [None] * len(ts)
        return ts, ut, list(grad(out, ts, ut, create_graph=create_graph, allow_unused=True))

    def value(g: Tensor | None, a: np.ndarray) -> np.ndarray:
        return np.zeros_like(a) if g is None else g.data

    _, _, plain = first(arrays, u0, False)
    ts, ut, graph = first(arrays, u0, True)
    for i, a in enumerate(arrays):
        problem = _mismatch(value(graph[i], a), value(plain[i], a), atol, rtol)
        if problem:
            raise GradcheckError(
                f"gradgradcheck: the gradient of input {i} (shape {a.shape}) from "
                f"backward_graph (create_graph=True) differs from backward's {problem}")
    terms = [(g * r).sum() for g, r in zip(graph, seeds) if g is not None and g.requires_grad]
    wrt = [*ts, ut]
    if terms:
        total = terms[0]
        for t in terms[1:]:
            total = total + t
        analytic = grad(total, wrt, allow_unused=True)
    else:
        analytic = (None,) * len(wrt)

    def g_plain(xs: list[np.ndarray], u: np.ndarray) -> float:
        _, _, gs = first(xs, u, False)
        return float(sum((value(g, a) * r).sum() for g, a, r in zip(gs, xs, seeds)))

    points = [*arrays, u0]
    for j, a in enumerate(points):
        def f_j(x: np.ndarray, j: int = j) -> float:
            moved = [*points[:j], x, *points[j + 1:]]
            return g_plain(moved[:-1], moved[-1])

        numeric = numerical_grad(f_j, a, eps)
        problem = _mismatch(value(analytic[j], a), numeric, atol, rtol)
        if problem:
            what = (f"input {j} (shape {a.shape})" if j < len(arrays)
                    else f"the upstream gradient (shape {a.shape})")
            raise GradcheckError(
                f"gradgradcheck: second derivative with respect to {what} is wrong {problem}")
    return True
