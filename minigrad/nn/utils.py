"""Gradient clipping, as ``torch.nn.utils``: call between ``backward()`` and ``step()``.

>>> import numpy as np
>>> from minigrad import nn
>>> w = nn.Parameter(np.zeros(2))
>>> w.grad = np.array([3.0, 4.0], np.float32)
>>> clip_grad_norm_([w], max_norm=1.0)        # the norm before clipping
5.0
>>> w.grad.round(4)
array([0.6, 0.8], dtype=float32)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from minigrad.tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def _with_grads(op: str, parameters: Tensor | Iterable[Tensor]) -> list[Tensor]:
    """The parameters that have a gradient (a single tensor counts as a list of one)."""
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise TypeError(f"{op}: parameters[{i}] is a {type(p).__name__}, expected a "
                            f"Parameter")
    return [p for p in params if p.grad is not None]


def _positive(op: str, what: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{op}: {what} must be a number, got {value!r}")
    if not value > 0:
        raise ValueError(f"{op}: {what} must be positive, got {value}")
    return float(value)


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float,
                    norm_type: float | str = 2.0, error_if_nonfinite: bool = False) -> float:
    """Scale all gradients together so that their joint norm is at most ``max_norm``.

    The total norm is taken over all gradients as if they were one vector:
    ‖g‖ = (Σ |gᵢ|ᵖ)^(1/p), or max |gᵢ| for ``norm_type=inf``. Every gradient is then multiplied
    by min(1, max_norm / (‖g‖ + 1e-6)) (PyTorch's formula), in its own dtype; a new array
    replaces each ``.grad`` (gradients may share arrays). Parameters without a gradient are
    skipped.

    Args:
        parameters: a Parameter or an iterable of them (e.g. ``model.parameters()``).
        max_norm: the largest norm allowed.
        norm_type: p > 0, or ``float("inf")`` / ``"inf"``.
        error_if_nonfinite: raise if the total norm is nan or ±inf (otherwise the gradients
            become nan, as PyTorch's).

    Returns:
        The total norm before clipping, a float (0.0 when no parameter has a gradient).
    """
    op = "clip_grad_norm_"
    max_norm = _positive(op, "max_norm", max_norm)
    p_norm = math.inf if norm_type in ("inf", math.inf) else _positive(op, "norm_type", norm_type)
    params = _with_grads(op, parameters)
    if not params:
        return 0.0
    grads = [np.asarray(p.grad, np.float64) for p in params]
    if p_norm == math.inf:
        total = max(float(np.abs(g).max(initial=0.0)) for g in grads)
    else:
        total = float(sum(float(np.sum(np.abs(g) ** p_norm)) for g in grads) ** (1 / p_norm))
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"{op}: the total norm of order {norm_type} of the gradients of "
                           f"{len(params)} parameter(s) is {total}; set "
                           f"error_if_nonfinite=False to clip anyway")
    coef = min(1.0, max_norm / (total + 1e-6)) if not math.isnan(total) else math.nan
    with np.errstate(invalid="ignore"):  # inf · 0 gives the documented nan
        for p in params:
            p.grad = (p.grad * coef).astype(p.grad.dtype, copy=False)
    return total


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float) -> None:
    """Clip every gradient element into [−clip_value, clip_value], each ``.grad`` replaced by
    a new array; parameters without a gradient are skipped.

    >>> from minigrad import nn
    >>> w = nn.Parameter(np.zeros(3))
    >>> w.grad = np.array([-5.0, 0.5, 2.0], np.float32)
    >>> clip_grad_value_(w, 1.0); w.grad
    array([-1. ,  0.5,  1. ], dtype=float32)
    """
    op = "clip_grad_value_"
    clip_value = _positive(op, "clip_value", clip_value)
    for p in _with_grads(op, parameters):
        p.grad = np.clip(p.grad, -clip_value, clip_value).astype(p.grad.dtype, copy=False)
