"""The fully connected (affine) layer, with the textbook's weight layout W (in, out)."""

from __future__ import annotations

import math

import numpy as np

from minigrad import parallel
from minigrad.function import Function
from minigrad.parallel import parallel_for, side_by_side

# Blocks of input features that a wide affine layer's forward product is summed over: two,
# one per core of a 2-core machine (more blocks measured a few per cent slower there).
K_BLOCKS = 2

# The smallest matrix product (in floating-point operations, 2·N·D·M) that an affine layer
# shares out among minigrad's threads; smaller ones run whole on the calling thread. The BLAS
# does about 115 GFLOP/s on one core here, so 2²⁵ FLOPs is about 0.3 ms: below that, handing
# half of it to another core (tens of µs to wake a worker, more on a busy machine) costs about
# what the half saves. Counting elements touched instead would split the textbook MLP's
# 784→100 layer at batch 100 (0.13 ms), which measured slower split than whole, also with
# workers that spin for their next slice (the MLP's inference 1.18-1.25x slower). A product at
# or above it is handed to parallel_for with its FLOPs as the work, so that parallel_for's own
# threshold (in elements, for element-wise passes) does not undo the choice.
MIN_FLOPS = 1 << 25


class Affine(Function):
    """Affine: Y = X·W + b        X:(N, D)  W:(D, M)  b:(M,)  Y:(N, M)

    dL/dX = dL/dY · Wᵀ    dL/dW = Xᵀ · dL/dY    dL/db = Σ_n dL/dY[n]

    An input of any shape (N, …) is flattened to (N, D) first, D the product of its other
    axes, and dL/dX is reshaped back to that shape (as the textbook's Affine layer does after
    a convolution). Linear: no kinks. Saved: X flattened (a view when X is contiguous) when W
    needs a gradient, W when X needs one.
    """

    def forward(self, x, w, b=None):
        if type(x) is not np.ndarray or type(w) is not np.ndarray:
            x, w = np.asarray(x), np.asarray(w)
        if x.ndim < 2:
            raise ValueError(f"affine: input must have a batch axis, (N, D) or (N, …), got "
                             f"x.shape={x.shape}")
        if w.ndim != 2:
            raise ValueError(f"affine: weight must be 2-D (in, out), got w.shape={w.shape}")
        N = x.shape[0]
        x2 = x.reshape(N, math.prod(x.shape[1:])) if x.ndim != 2 else x
        if x2.shape[1] != w.shape[0]:
            raise ValueError(f"affine: input has {x2.shape[1]} features per sample "
                             f"(x.shape={x.shape} flattened to {x2.shape}) but weight "
                             f"(in, out)={w.shape} expects {w.shape[0]}")
        D, M = w.shape
        if b is not None and getattr(b, "shape", None) != (M,) and np.shape(b) != (M,):
            raise ValueError(f"affine: bias must have shape (out,)=({M},) for weight "
                             f"(in, out)={w.shape}; got b.shape={np.shape(b)}")
        if x2.dtype == w.dtype and (b is None or getattr(b, "dtype", None) == w.dtype):
            dtype = w.dtype                 # the usual case, without result_type's cost
        else:
            dtype = np.result_type(x2, w) if b is None else np.result_type(x2, w, b)
        if 2 * N * D * M < MIN_FLOPS:
            # Too small to be worth a second thread: run whole on the calling thread, the BLAS
            # kept on one thread while minigrad's threads are in use (parallel.blas_ready).
            # (np.dot: for 2-D arrays the same product, called with less overhead.) A bias of
            # a wider dtype than x and w makes y wider: the product is cast, as the split paths
            # below cast it into their y (np.dot's out= would refuse an array of that dtype).
            parallel.blas_ready()
            y = np.dot(x2, w)
            if y.dtype != dtype:
                y = y.astype(dtype)
        elif D >= 1024 and D >= 4 * max(N, M):
            # Few samples and outputs, many input features (affine 4320→100 at batch 100):
            # the sum over the D features runs as K_BLOCKS products of X's column blocks with
            # W's row blocks, shared out among the threads, whose results are then added in a
            # fixed order. Each thread reads only its blocks of X and W (split by samples,
            # every thread would read all of W), and the blocks do not depend on the number
            # of threads, so neither does Y.
            y = np.empty((N, M), dtype)
            partial = np.empty((K_BLOCKS - 1, N, M), dtype)
            bounds = [D * i // K_BLOCKS for i in range(K_BLOCKS + 1)]

            def blocks(first, last):       # blocks first..last−1, on one thread
                for i in range(first, last):
                    lo, hi = bounds[i], bounds[i + 1]
                    np.matmul(x2[:, lo:hi], w[lo:hi], out=y if i == 0 else partial[i - 1])

            parallel_for(K_BLOCKS, blocks, work=2 * N * D * M, blas=True)
            for p in partial:
                y += p
        else:
            y = np.empty((N, M), dtype)

            def samples(lo, hi):           # rows lo..hi−1 of Y, on one thread
                np.matmul(x2[lo:hi], w, out=y[lo:hi])

            parallel_for(N, samples, work=2 * N * D * M, blas=True)
        if b is not None:
            y += b
        needs = getattr(self, "needs_input_grad", (True,) * (2 if b is None else 3))
        if needs[0]:
            self.w, self.x_shape = w, x.shape
        if needs[1]:
            self.x2 = x2
        return y

    def backward(self, dy):
        needs = self.needs_input_grad
        dx = dw = db = None
        products = []                      # (fills rows lo..hi−1 of a gradient, its rows)
        flops = 0                          # their floating-point operations, 2·N·D·M each
        if needs[0]:
            w = self.w
            dx = np.empty((dy.shape[0], w.shape[0]), np.result_type(dy, w))

            def dx_features(lo, hi):       # columns lo..hi−1 of dL/dX: a split over threads
                np.matmul(dy, w[lo:hi].T, out=dx[:, lo:hi])   # reads only its rows of W

            products.append((dx_features, w.shape[0]))
            flops += 2 * dy.size * w.shape[0]
        if needs[1]:
            x2 = self.x2
            dw = np.empty((x2.shape[1], dy.shape[1]), np.result_type(x2, dy))

            def dw_features(lo, hi):       # rows lo..hi−1 of dL/dW: input features
                np.matmul(x2[:, lo:hi].T, dy, out=dw[lo:hi])

            products.append((dw_features, len(dw)))
            flops += 2 * dy.size * x2.shape[1]
        if flops < MIN_FLOPS:              # too small to be worth a second thread
            parallel_for(1, lambda lo, hi: [body(0, total) for body, total in products],
                         work=0, blas=True)
        else:
            # dL/dX and dL/dW need each other's nothing: on two threads each takes one.
            side_by_side(products, work=flops, blas=True)
        if needs[0]:
            dx = dx.reshape(self.x_shape)
        if len(needs) == 3 and needs[2]:
            db = dy.sum(axis=0)
        return (dx, dw) if len(needs) == 2 else (dx, dw, db)

    def backward_graph(self, dy):
        from minigrad.ops.shape import Transpose

        needs = self.needs_input_grad
        x, w = self.inputs[:2]
        dx = (dy @ Transpose(None)(w)).reshape(x.shape) if needs[0] else None
        dw = Transpose(None)(x.reshape(x.shape[0], -1)) @ dy if needs[1] else None
        if len(needs) == 2:
            return dx, dw
        return dx, dw, dy.sum(axis=0) if needs[2] else None
