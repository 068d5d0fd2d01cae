"""The book's plain functions (``common/functions.py``): softmax and cross_entropy_error.

Plain NumPy on arrays, no tape: the layers in :mod:`minigrad.book.layers` call them.
"""

from __future__ import annotations

import numpy as np

__all__ = ["softmax", "cross_entropy_error"]


def softmax(x: np.ndarray) -> np.ndarray:
    """yₖ = exp(xₖ − max x) / Σᵢ exp(xᵢ − max x), along the last axis (book 3.5.2).

    Subtracting the maximum changes nothing in exact arithmetic and keeps exp from overflowing.

    >>> softmax(np.array([[0.0, np.log(3.0)]]))
    array([[0.25, 0.75]])
    """
    x = x - np.max(x, axis=-1, keepdims=True)
    e = np.exp(x)
    return e / np.sum(e, axis=-1, keepdims=True)


def cross_entropy_error(y: np.ndarray, t: np.ndarray, delta: float = 1e-7) -> float:
    """E = −(1/N) Σₙ log(yₙ,tₙ + δ), the mean over a batch (book 4.2.2 – 4.2.4).

    Args:
        y: probabilities (N, K), or one sample (K,).
        t: labels (N,) or one-hot rows (N, K) (turned into labels, as the book does).
        delta: the book's δ = 1e-7 that keeps log away from log 0.

    >>> round(float(cross_entropy_error(np.array([[0.5, 0.5]]), np.array([1]), delta=0)), 6)
    0.693147
    """
    if y.ndim == 1:
        t = t.reshape(1, t.size)
        y = y.reshape(1, y.size)
    if t.size == y.size:  # one-hot rows → labels
        t = t.argmax(axis=1)
    batch_size = y.shape[0]
    return -np.sum(np.log(y[np.arange(batch_size), t] + delta)) / batch_size
