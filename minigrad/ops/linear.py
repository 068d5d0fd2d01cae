"""The fully connected (affine) layer, with the textbook's weight layout W (in, out)."""

from __future__ import annotations

import numpy as np

from minigrad.function import Function


class Affine(Function):
    """Affine: Y = X·W + b        X:(N, D)  W:(D, M)  b:(M,)  Y:(N, M)

    dL/dX = dL/dY · Wᵀ    dL/dW = Xᵀ · dL/dY    dL/db = Σ_n dL/dY[n]

    An input of any shape (N, …) is flattened to (N, D) first, D the product of its other
    axes, and dL/dX is reshaped back to that shape (as the textbook's Affine layer does after
    a convolution). Linear: no kinks. Saved: X flattened (a view when X is contiguous) when W
    needs a gradient, W when X needs one.
    """

    def forward(self, x, w, b=None):
        x, w = np.asarray(x), np.asarray(w)
        if x.ndim < 2:
            raise ValueError(f"affine: input must have a batch axis, (N, D) or (N, …), got "
                             f"x.shape={x.shape}")
        if w.ndim != 2:
            raise ValueError(f"affine: weight must be 2-D (in, out), got w.shape={w.shape}")
        N = x.shape[0]
        x2 = x.reshape(N, int(np.prod(x.shape[1:]))) if x.ndim != 2 else x
        if x2.shape[1] != w.shape[0]:
            raise ValueError(f"affine: input has {x2.shape[1]} features per sample "
                             f"(x.shape={x.shape} flattened to {x2.shape}) but weight "
                             f"(in, out)={w.shape} expects {w.shape[0]}")
        if b is not None and np.shape(b) != (w.shape[1],):
            raise ValueError(f"affine: bias must have shape (out,)=({w.shape[1]},) for weight "
                             f"(in, out)={w.shape}; got b.shape={np.shape(b)}")
        y = x2 @ w
        if b is not None:
            if np.result_type(y, b) == y.dtype:
                y += b                     # y is a fresh array: no second allocation
            else:
                y = y + b
        needs = getattr(self, "needs_input_grad", (True,) * (2 if b is None else 3))
        if needs[0]:
            self.w, self.x_shape = w, x.shape
        if needs[1]:
            self.x2 = x2
        return y

    def backward(self, dy):
        needs = self.needs_input_grad
        dx = (dy @ self.w.T).reshape(self.x_shape) if needs[0] else None
        dw = self.x2.T @ dy if needs[1] else None
        db = dy.sum(axis=0) if len(needs) == 3 and needs[2] else None
        return (dx, dw) if len(needs) == 2 else (dx, dw, db)
