"""Normalisation layers: BatchNorm, LayerNorm and GroupNorm, each one fused op.

All three standardise x over some axes and then scale and shift it:

    μ = mean x,    σ² = mean (x − μ)²  (biased),    x̂ = (x − μ) / √(σ² + ε),    y = w·x̂ + b

They differ only in the axes the statistics are taken over and in the shape of w and b:

=========  =====================  ===================================  ====================
op         x                      statistics over                      w, b
=========  =====================  ===================================  ====================
BatchNorm  (N, C, *)              N and *, per channel c               (C,)
LayerNorm  (*, D₁, …, D_k)        the k trailing axes, per sample      (D₁, …, D_k)
GroupNorm  (N, C, *)              C/G channels and *, per (n, group)   (C,)
=========  =====================  ===================================  ====================

``*`` is any number of further axes (L for sequences, H, W for images); m is the number of
values each mean is taken over. The backward of the standardisation is the same for all three
(derived in :class:`BatchNorm`'s docstring, as the textbook derives it on the computational
graph):

    dL/dx = (1/√(σ² + ε)) · (dx̂ − mean dx̂ − x̂ · mean(dx̂ · x̂)),    dx̂ = w · dL/dy

``_normalize`` and ``_normalized_grad`` are written with the methods that NumPy arrays and
Tensors share (``mean``, ``*``, ``-``, ``**``): ``forward`` and ``backward`` run them on arrays,
``backward_graph`` on the input Tensors, so that the gradient is recorded and can be
differentiated again.
"""

from __future__ import annotations

import numpy as np

from minigrad.function import Function
from minigrad.parallel import parallel_for


def _normalize(x, axes: tuple[int, ...], eps: float):
    """(x̂, μ, σ², 1/√(σ² + ε)) with μ and the biased σ² taken over ``axes`` (kept as size 1).

    x is an array or a Tensor (then every result is recorded on the tape).
    """
    mu = x.mean(axis=axes, keepdims=True)
    xc = x - mu
    var = (xc * xc).mean(axis=axes, keepdims=True)
    istd = (var + eps) ** -0.5
    return xc * istd, mu, var, istd


def _normalized_grad(dxhat, xhat, istd, axes: tuple[int, ...]):
    """dL/dx of x̂ = (x − μ)·istd over ``axes``, from dL/dx̂: istd·(dx̂ − mean dx̂ − x̂·mean(dx̂·x̂)).

    Arrays or Tensors, as :func:`_normalize`.
    """
    mean_dxhat = dxhat.mean(axis=axes, keepdims=True)
    mean_dxhat_xhat = (dxhat * xhat).mean(axis=axes, keepdims=True)
    return istd * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat)


def _channel_shape(ndim: int) -> tuple[int, ...]:
    """The shape that puts a (C,) vector on axis 1 of an (N, C, *) array: (C, 1, …, 1)."""
    return (-1,) + (1,) * (ndim - 2)


def _check_params(op: str, x_shape, what: str, expected, w_shape, b_shape) -> None:
    for name, shape in (("weight", w_shape), ("bias", b_shape)):
        if tuple(shape) != tuple(expected):
            raise ValueError(f"{op}: {name} must have shape {tuple(expected)} ({what}) for "
                             f"an input of shape {tuple(x_shape)}; got {name}.shape="
                             f"{tuple(shape)}")


def _check_eps(op: str, eps) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating, np.integer)) \
            or not eps >= 0:
        raise ValueError(f"{op}: eps must be a number ≥ 0, got {eps!r}")
    return float(eps)


class BatchNorm(Function):
    """Batch normalisation per channel (PyTorch's ``batch_norm``; the textbook's layer).

    Shapes: x (N, C, *) with * any further axes (none, L, or H, W), w and b (C,) → y like x.
    The statistics of channel c are taken over N and *: m = N·∏* values. (The textbook's
    BatchNormalization normalises each of the C·H·W features of a conv layer separately;
    PyTorch, and this op, one channel at a time.)

    Forward in training, node by node as on the textbook's computational graph (the sums and
    means run over the N and * axes, separately for every channel):

        μ   = (1/m) Σ x                 xc  = x − μ
        σ²  = (1/m) Σ xc²               std = √(σ² + ε)
        x̂   = xc / std                  y   = w·x̂ + b

    Backward, the same nodes in reverse (dv stands for dL/dv):

        db  = Σ dy                      dw  = Σ dy·x̂
        dx̂  = w·dy
        dstd = −Σ dx̂·xc / std²          dσ² = dstd / (2·std)
        dxc = dx̂ / std + (2/m)·xc·dσ²   (xc reaches L through x̂ and through σ²)
        dμ  = −Σ dxc                    dx  = dxc + dμ / m

    Since Σ xc = 0, these collapse to one line (``backward_graph`` computes it so):

        dx = (1/std)·(dx̂ − mean dx̂ − x̂·mean(dx̂·x̂))

    ``backward`` computes it from the two sums that db and dw need anyway: w is one number per
    channel, so mean dx̂ = w·db/m and mean(dx̂·x̂) = w·dw/m, and

        dx = (w/std)·(dy − db/m − x̂·dw/m)

    Two paths compute these formulas. The plain one (``_forward_plain``, ``_backward_plain``)
    applies them array by array over the whole batch; it serves x (N, C) and small planes, and a
    test holds the other equal to it. The blocked one, taken for float32 and float64 when each
    sample's channel holds at least ``_MIN_PLANE`` values (images, sequences), sees x as N rows
    of C·P values (P = ∏*) and goes over them a block of samples at a time, small enough to stay
    in the core's cache (``_BLOCK_BYTES``), the blocks split over minigrad's threads: forward
    reads x twice (once for both statistics, once for y) and writes only y; backward reads dy
    and x twice and writes only dx; every temporary lives in one block. Per-channel constants
    are repeated P times into one row of C·P values, so every step is a long contiguous NumPy
    loop (a (C, 1) column broadcast runs one short loop per plane, up to twice as slow). The
    statistics are sums per plane (the P values of one sample and channel, by ``einsum``), added
    up per channel in float64:

        t = x − K (K a per-channel shift)    S = Σ t    Q = Σ t²
        μ = K + S/m                          σ² = Q/m − (S/m)²

    Rounding in Q is magnified by (Q/m)/σ² = 1 + (μ − K)²/σ², so K must lie near μ: K = 0 (t
    is x, no subtraction) when the first block's mean is within its σ of 0, else that mean;
    if the factor still exceeds 4, the pass is repeated with K = μ, the two-pass formula
    Σ (x − μ)². Then, per channel, y = x·(w/std) + (b − μ·w/std) and
    dx = a·dy + k·x + (c − k·μ) with a = w/std, k = −a·dw/(m·std), c = −a·db/m, which is
    the formula above; where |μ| > σ for some channel, x − μ is formed first instead (x·k and
    k·μ would cancel). Backward finds db = Σ dy and dw = (1/std)·Σ dy·(x − μ) in one pass
    over dy and x (Σ dy·x − μ·Σ dy when |μ| ≤ σ). Saved: x itself (the input, which the tape
    keeps anyway), μ and 1/std per channel.

    In evaluation (``training=False``) μ and σ² are the given running statistics, constants,
    so the normalisation is an affine map of x:  dx = w·dy / std  (db and dw as above).

    Smooth everywhere (ε > 0). A channel with a single value (m = 1) has no variance and is
    refused in training, as PyTorch refuses it. The running statistics are not inputs and get
    no gradient; the op does not update them (``minigrad.functional.batch_norm`` does, from
    the batch's ``mu`` and ``var`` that forward leaves on the op).
    Saved on the plain path: x̂, 1/std (C,), w; in training also μ and σ² (for the running
    statistics) and m.
    """

    float_inputs = True

    def __init__(self, training=True, eps=1e-5, running_mean=None, running_var=None):
        self.training, self.eps = bool(training), _check_eps("batch_norm", eps)
        self.running_mean, self.running_var = running_mean, running_var

    def forward(self, x, w, b):
        op = "batch_norm"
        if x.ndim < 2:
            raise ValueError(f"batch_norm: input must be (N, C) or (N, C, *), got x.shape="
                             f"{x.shape}")
        C = x.shape[1]
        _check_params(op, x.shape, "one value per channel", (C,), np.shape(w), np.shape(b))
        self.axes = (0,) + tuple(range(2, x.ndim))
        if self.training:
            m = x.size // C if C else 0
            if m <= 1:
                raise ValueError(f"batch_norm: expected more than 1 value per channel when "
                                 f"training, got input of shape {x.shape} ({m} value per "
                                 f"channel: N·∏(*) = {m})")
            self.m = m
        else:
            if self.running_mean is None or self.running_var is None:
                raise ValueError("batch_norm: running_mean and running_var are needed when "
                                 "not training (they are the statistics evaluation uses)")
            stats = {"running_mean": self.running_mean, "running_var": self.running_var}
            for name, value in stats.items():
                if np.shape(value) != (C,):
                    raise ValueError(f"batch_norm: {name} must have shape ({C},) (one value "
                                     f"per channel) for an input of shape {x.shape}; got "
                                     f"{name}.shape={np.shape(value)}")
        # float16 keeps the plain path, whose means NumPy accumulates in float32.
        self.blocked = (x.ndim >= 3 and x.size > 0 and x.dtype in _BLOCKED_DTYPES
                        and x.size // (x.shape[0] * C) >= _MIN_PLANE)
        if self.blocked:
            return self._forward_blocked(x, w, b)
        return self._forward_plain(x, w, b)

    def backward(self, dy):
        if self.blocked:
            return self._backward_blocked(dy)
        return self._backward_plain(dy)

    # ------------------------------------------------------------------------ plain path

    def _forward_plain(self, x, w, b):
        C, shape = x.shape[1], _channel_shape(x.ndim)
        self.w = np.asarray(w, x.dtype).reshape(shape)
        if self.training:
            mu = x.mean(axis=self.axes, keepdims=True)
            xhat = x - mu                                   # xc, made x̂ in place below
            y = np.square(xhat)                             # xc², then y in the same array
            var = y.mean(axis=self.axes, keepdims=True)
            self.istd = (var + self.eps) ** -0.5
            xhat *= self.istd
            self.xhat, self.mu, self.var = xhat, mu.reshape(C), var.reshape(C)
            np.multiply(xhat, self.w, out=y)
            y += np.asarray(b, x.dtype).reshape(shape)
            return y
        # Copies: the running statistics may be updated in place before backward runs.
        self.mu = np.array(_data(self.running_mean), x.dtype).reshape(shape)
        self.istd = (np.array(_data(self.running_var), x.dtype).reshape(shape)
                     + self.eps) ** -0.5
        self.xhat = x - self.mu
        self.xhat *= self.istd
        y = self.w * self.xhat
        y += np.asarray(b, x.dtype).reshape(shape)
        return y

    def _backward_plain(self, dy):
        need_x, need_w, need_b = self.needs_input_grad
        xhat, axes = self.xhat, self.axes
        dx = dw = db = None
        if need_x and self.training:
            shape = self.w.shape
            db = dy.sum(axis=axes)
            dx = dy * xhat
            dw = dx.sum(axis=axes)
            np.multiply(xhat, (dw / self.m).reshape(shape), out=dx)       # x̂·dw/m
            np.subtract(dy, dx, out=dx)
            dx -= (db / self.m).reshape(shape)
            dx *= self.w * self.istd
        elif need_x:
            dx = dy * (self.w * self.istd)
        if need_w and dw is None:
            dw = (dy * xhat).sum(axis=axes)
        if need_b and db is None:
            db = dy.sum(axis=axes)
        return dx, dw if need_w else None, db if need_b else None

    # ---------------------------------------------------------------------- blocked path

    def _forward_blocked(self, x, w, b):
        N, C = x.shape[:2]
        P = x.size // (N * C)
        x2 = np.ascontiguousarray(x).reshape(N, C * P)
        dtype = x.dtype
        if self.training:
            mu, var = _batch_statistics(x2, C, P)
            self.mu, self.var = mu.astype(dtype), var.astype(dtype)
        else:
            # Copies: the running statistics may be updated in place before backward runs.
            mu = np.array(_data(self.running_mean), dtype).astype(np.float64)
            var = np.array(_data(self.running_var), dtype).astype(np.float64)
        istd = (var + self.eps) ** -0.5
        self.x2, self.shape, self.C, self.P = x2, x.shape, C, P
        self.mu64, self.istd64 = mu, istd
        self.w64 = np.asarray(w, dtype).astype(np.float64)
        # x − μ is formed only where μ is large next to σ (see _centred).
        self.centred = _centred(mu, var)
        # Kept for backward_graph in evaluation (its constants), as the plain path keeps them.
        self.mu_c = mu.astype(dtype).reshape(_channel_shape(x.ndim))
        self.istd = istd.astype(dtype).reshape(_channel_shape(x.ndim))
        rows = _RowConstants(dtype, P)
        scale = self.w64 * istd                             # w/std
        bias = np.asarray(b, dtype).astype(np.float64)
        y2 = np.empty_like(x2)
        if self.centred:
            mu_row, scale_row, b_row = rows(mu), rows(scale), rows(bias)

            def affine(lo, hi, t):              # y = (x − μ)·(w/std) + b, samples lo..hi−1
                yb = y2[lo:hi]
                np.subtract(x2[lo:hi], mu_row, out=yb)
                yb *= scale_row
                yb += b_row
        else:
            scale_row, shift_row = rows(scale), rows(bias - mu * scale)

            def affine(lo, hi, t):              # y = x·(w/std) + (b − μ·w/std)
                yb = y2[lo:hi]
                np.multiply(x2[lo:hi], scale_row, out=yb)
                yb += shift_row

        _over_blocks(x2, affine, scratch=False)
        return y2.reshape(x.shape)

    def _backward_blocked(self, dy):
        need_x, need_w, need_b = self.needs_input_grad
        x2, C, P = self.x2, self.C, self.P
        N, dtype = x2.shape[0], x2.dtype
        dy2 = np.ascontiguousarray(dy, dtype=dtype).reshape(x2.shape)
        rows = _RowConstants(dtype, P)
        mu, a = self.mu64, self.w64 * self.istd64           # a = w/std per channel
        dx = dw = db = None
        if self.training and need_x or need_w:
            # db = Σ dy and g = Σ dy·(x − μ) = std·dw, in one pass over dy and x.
            sum_dy, sum_dyx = _gradient_sums(x2, dy2, C, P, mu if self.centred else None)
            db64 = sum_dy.sum(axis=0, dtype=np.float64)
            g = sum_dyx.sum(axis=0, dtype=np.float64)
            if not self.centred:
                g -= mu * db64                              # Σ dy·x − μ·Σ dy
            dw, db = (g * self.istd64).astype(dtype), db64.astype(dtype)
        elif need_b:
            db = dy2.reshape(N, C, P).sum(axis=(0, 2))
        if need_x:
            dx2 = np.empty_like(x2)
            a_row = rows(a)
            if self.training:
                # dx = (w/std)·(dy − db/m − x̂·dw/m) = a·dy + k·(x − μ) + c per channel
                k = -a * self.istd64 ** 2 * g / self.m
                c = -a * db64 / self.m
                if self.centred:
                    mu_row, k_row, c_row = rows(mu), rows(k), rows(c)

                    def grad(lo, hi, t):
                        np.subtract(x2[lo:hi], mu_row, out=t)
                        t *= k_row
                        dxb = dx2[lo:hi]
                        np.multiply(dy2[lo:hi], a_row, out=dxb)
                        dxb += t
                        dxb += c_row
                else:
                    k_row, c_row = rows(k), rows(c - mu * k)

                    def grad(lo, hi, t):            # a·dy + k·x + (c − μ·k)
                        np.multiply(x2[lo:hi], k_row, out=t)
                        t += c_row
                        dxb = dx2[lo:hi]
                        np.multiply(dy2[lo:hi], a_row, out=dxb)
                        dxb += t

                _over_blocks(x2, grad, scratch=True)
            else:
                _over_blocks(x2, lambda lo, hi, t: np.multiply(dy2[lo:hi], a_row,
                                                               out=dx2[lo:hi]), scratch=False)
            dx = dx2.reshape(self.shape)
        return dx, dw if need_w else None, db if need_b else None

    # ----------------------------------------------------------------------- second order

    def backward_graph(self, dy):
        need_x, need_w, need_b = self.needs_input_grad
        x, w, _ = self.inputs
        shape = _channel_shape(x.ndim)
        if self.training:
            xhat, _, _, istd = _normalize(x, self.axes, self.eps)     # recorded from x
        elif self.blocked:
            xhat, istd = (x - self.mu_c) * self.istd, self.istd
        else:
            xhat, istd = (x - self.mu) * self.istd, self.istd
        dx = dw = db = None
        if need_x:
            dxhat = dy * w.reshape(shape)
            if self.training:
                dx = _normalized_grad(dxhat, xhat, istd, self.axes)
            else:
                dx = dxhat * istd
        if need_w:
            dw = (dy * xhat).sum(axis=self.axes)
        if need_b:
            db = dy.sum(axis=self.axes)
        return dx, dw, db


# The blocked path of BatchNorm: samples whose channels hold at least _MIN_PLANE values each, a
# block of about _BLOCK_BYTES of x at a time (its temporaries stay in a core's L2 cache).
_MIN_PLANE = 16
_BLOCKED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_BLOCK_BYTES = 1 << 18


class _RowConstants:
    """Per-channel constants (C,) as one row of C·P values, each repeated P times."""

    def __init__(self, dtype, P):  # noqa: N803
        self.dtype, self.P = dtype, P

    def __call__(self, values):
        return np.repeat(np.asarray(values).astype(self.dtype), self.P)


def _block_samples(x2) -> int:
    """Samples per block: about _BLOCK_BYTES of x2, at least one sample."""
    return max(1, _BLOCK_BYTES // max(1, x2.shape[1] * x2.itemsize))


def _over_blocks(x2, body, scratch: bool) -> None:
    """``body(lo, hi, t)`` over samples lo..hi−1 of x2 (N, C·P), a block at a time, the blocks
    split over minigrad's threads. ``t`` is a scratch block shaped like x2[lo:hi] (one per
    thread, reused), or None."""
    N, row = x2.shape
    step = _block_samples(x2)

    def samples(lo, hi):
        buf = np.empty((min(step, hi - lo), row), x2.dtype) if scratch else None
        for a in range(lo, hi, step):
            z = min(a + step, hi)
            body(a, z, None if buf is None else buf[:z - a])

    parallel_for(N, samples, work=2 * x2.size)


def _centred(mu, var) -> bool:
    """Whether the blocked path forms x − μ (where |μ| > σ for some channel), or works with x
    itself: its sums Σ x and Σ dy·x then lose at most as much to rounding as centred ones would
    lose on values twice as large, and it saves one step per block."""
    return bool(np.any(mu * mu > var))


def _batch_statistics(x2, C, P):  # noqa: N803
    """μ and the biased σ² (C,) in float64 of x2 (N, C·P), in one pass when a shift works.

    Sums per plane of t = x − K, added up per channel in float64: μ = K + S/m and
    σ² = Q/m − (S/m)². Rounding in Q is magnified by (Q/m)/σ² = 1 + (μ − K)²/σ², so K must be
    near μ: K = 0 (no subtraction at all) when the first block's mean is within its σ of 0,
    else that mean. If the factor still exceeds 4, the pass is repeated with K = μ: then it is
    the two-pass formula Σ (x − μ)², and the factor is 1.
    """
    N = x2.shape[0]
    m = N * P
    first = x2[:_block_samples(x2)].reshape(-1, P)             # a rough estimate suffices
    n = first.shape[0] // C * P
    shift = np.einsum("ij->i", first).reshape(-1, C).sum(axis=0, dtype=np.float64) / n
    spread = np.einsum("ij,ij->i", first, first).reshape(-1, C).sum(
        axis=0, dtype=np.float64) / n - shift * shift
    if not np.any(shift * shift > spread):
        shift = None                                        # K = 0
    for _ in range(2):
        if shift is not None:
            shift = shift.astype(x2.dtype).astype(np.float64)  # the K that is subtracted
        sums, squares = _shifted_sums(x2, C, P, shift)
        d = sums.sum(axis=0, dtype=np.float64) / m             # μ − K
        var = squares.sum(axis=0, dtype=np.float64) / m - d * d
        mu = d if shift is None else shift + d
        if not np.any(d * d > 3 * var):                       # also when var is NaN: no retry
            break
        shift = mu
    return mu, np.maximum(var, 0.0)


def _shifted_sums(x2, C, P, shift):  # noqa: N803
    """Per plane (N, C): Σ t and Σ t² of t = x − shift[c] (t = x when shift is None)."""
    N = x2.shape[0]
    sums, squares = np.empty((N, C), x2.dtype), np.empty((N, C), x2.dtype)
    if shift is None:
        def planes(lo, hi, t):
            t = x2[lo:hi].reshape(-1, P)
            np.einsum("ij->i", t, out=sums[lo:hi].reshape(-1))
            np.einsum("ij,ij->i", t, t, out=squares[lo:hi].reshape(-1))
    else:
        shift_row = _RowConstants(x2.dtype, P)(shift)

        def planes(lo, hi, t):
            np.subtract(x2[lo:hi], shift_row, out=t)
            t = t.reshape(-1, P)
            np.einsum("ij->i", t, out=sums[lo:hi].reshape(-1))
            np.einsum("ij,ij->i", t, t, out=squares[lo:hi].reshape(-1))

    _over_blocks(x2, planes, scratch=shift is not None)
    return sums, squares


def _gradient_sums(x2, dy2, C, P, mu):  # noqa: N803
    """Per plane (N, C): Σ dy and Σ dy·(x − μ[c]) (Σ dy·x when mu is None)."""
    N = x2.shape[0]
    sum_dy, sum_dyx = np.empty((N, C), x2.dtype), np.empty((N, C), x2.dtype)
    mu_row = None if mu is None else _RowConstants(x2.dtype, P)(mu)

    def planes(lo, hi, t):
        if mu_row is None:
            t = x2[lo:hi]
        else:
            np.subtract(x2[lo:hi], mu_row, out=t)
        dyb = dy2[lo:hi].reshape(-1, P)
        np.einsum("ij->i", dyb, out=sum_dy[lo:hi].reshape(-1))
        np.einsum("ij,ij->i", t.reshape(-1, P), dyb, out=sum_dyx[lo:hi].reshape(-1))

    _over_blocks(x2, planes, scratch=mu_row is not None)
    return sum_dy, sum_dyx


class LayerNorm(Function):
    """Layer normalisation over the trailing axes (PyTorch's ``layer_norm``).

    Shapes: x (*, D₁, …, D_k), ``normalized_shape`` = (D₁, …, D_k), w and b of that shape →
    y like x. Each sample (each index of the leading axes *) is normalised over its
    m = D₁·…·D_k values, with its own μ and σ² (biased), the same in training and evaluation;
    w and b act elementwise on the normalised axes.

        x̂ = (x − μ) / √(σ² + ε)        y = w·x̂ + b

        dx = (1/std)·(dx̂ − mean dx̂ − x̂·mean(dx̂·x̂)),   dx̂ = w·dy   (means over the k axes)
        dw = Σ_* dy·x̂                  db = Σ_* dy     (sums over the leading axes)

    The derivation of dx is the one in :class:`BatchNorm`'s docstring, with the means taken
    over the trailing axes instead of the batch. Smooth (ε > 0); with m = 1, x̂ = 0 and y = b.
    Saved: x̂, 1/std (one per sample), w.
    """

    float_inputs = True

    def __init__(self, normalized_shape, eps=1e-5):
        self.normalized_shape = _shape_tuple("layer_norm", normalized_shape)
        self.eps = _check_eps("layer_norm", eps)

    def forward(self, x, w, b):
        shape = self.normalized_shape
        k = len(shape)
        if x.ndim < k or x.shape[x.ndim - k:] != shape:
            raise ValueError(f"layer_norm: normalized_shape={shape} must match the trailing "
                             f"axes of the input, expected x.shape=(*, "
                             f"{', '.join(map(str, shape))}); got x.shape={x.shape}")
        _check_params("layer_norm", x.shape, "normalized_shape", shape, np.shape(w),
                      np.shape(b))
        self.axes = tuple(range(x.ndim - k, x.ndim))     # normalised over
        self.lead = tuple(range(x.ndim - k))             # w and b are summed over
        self.w = np.asarray(w, x.dtype)
        self.xhat, _, _, self.istd = _normalize(x, self.axes, self.eps)
        return self.w * self.xhat + np.asarray(b, x.dtype)

    def backward(self, dy):
        need_x, need_w, need_b = self.needs_input_grad
        dx = dw = db = None
        if need_x:
            dx = _normalized_grad(dy * self.w, self.xhat, self.istd, self.axes)
        if need_w:
            dw = (dy * self.xhat).sum(axis=self.lead)
        if need_b:
            db = dy.sum(axis=self.lead)
        return dx, dw, db

    def backward_graph(self, dy):
        need_x, need_w, need_b = self.needs_input_grad
        x, w, _ = self.inputs
        xhat, _, _, istd = _normalize(x, self.axes, self.eps)         # recorded from x
        dx = _normalized_grad(dy * w, xhat, istd, self.axes) if need_x else None
        dw = (dy * xhat).sum(axis=self.lead) if need_w else None
        db = dy.sum(axis=self.lead) if need_b else None
        return dx, dw, db


class GroupNorm(Function):
    """Group normalisation (PyTorch's ``group_norm``): the C channels split into G groups.

    Shapes: x (N, C, *), w and b (C,) → y like x; G divides C. Sample n's group g holds the
    channels g·C/G … (g+1)·C/G − 1; its μ and σ² (biased) are taken over those channels and
    all of *, m = (C/G)·∏* values, the same in training and evaluation. w and b act per
    channel, as in BatchNorm. G = 1 normalises each sample over everything (LayerNorm over
    (C, *) with per-channel w); G = C normalises each channel of each sample (instance norm).

    With x viewed as (N, G, m):

        x̂ = (x − μ) / √(σ² + ε)        y = w·x̂ + b       (w, b along the channel axis)

        dx = (1/std)·(dx̂ − mean dx̂ − x̂·mean(dx̂·x̂)),   dx̂ = w·dy   (means over each group)
        dw = Σ_{n,*} dy·x̂              db = Σ_{n,*} dy

    The derivation of dx is the one in :class:`BatchNorm`'s docstring, per group. Smooth
    (ε > 0). Saved: x̂ (N, G, m), 1/std (N, G, 1), w.
    """

    float_inputs = True

    def __init__(self, num_groups, eps=1e-5):
        if isinstance(num_groups, bool) or not isinstance(num_groups, (int, np.integer)) \
                or num_groups < 1:
            raise ValueError(f"group_norm: num_groups must be a positive int, got "
                             f"{num_groups!r}")
        self.num_groups, self.eps = int(num_groups), _check_eps("group_norm", eps)

    def forward(self, x, w, b):
        G = self.num_groups
        if x.ndim < 2:
            raise ValueError(f"group_norm: input must be (N, C) or (N, C, *), got x.shape="
                             f"{x.shape}")
        N, C = x.shape[:2]
        if C % G:
            raise ValueError(f"group_norm: num_channels={C} is not divisible by "
                             f"num_groups={G} (x.shape={x.shape})")
        _check_params("group_norm", x.shape, "one value per channel", (C,), np.shape(w),
                      np.shape(b))
        shape = _channel_shape(x.ndim)
        self.w = np.asarray(w, x.dtype).reshape(shape)
        self.x_shape = x.shape
        xhat, _, _, self.istd = _normalize(x.reshape(N, G, -1), (2,), self.eps)
        self.xhat = xhat.reshape(x.shape)
        self.sum_axes = (0,) + tuple(range(2, x.ndim))
        return self.w * self.xhat + np.asarray(b, x.dtype).reshape(shape)

    def backward(self, dy):
        need_x, need_w, need_b = self.needs_input_grad
        dx = dw = db = None
        if need_x:
            grouped = self.istd.shape[:2] + (-1,)
            dxhat = (dy * self.w).reshape(grouped)
            dx = _normalized_grad(dxhat, self.xhat.reshape(grouped), self.istd, (2,))
            dx = dx.reshape(self.x_shape)
        if need_w:
            dw = (dy * self.xhat).sum(axis=self.sum_axes)
        if need_b:
            db = dy.sum(axis=self.sum_axes)
        return dx, dw, db

    def backward_graph(self, dy):
        need_x, need_w, need_b = self.needs_input_grad
        x, w, _ = self.inputs
        N, G = x.shape[0], self.num_groups
        xhat, _, _, istd = _normalize(x.reshape(N, G, -1), (2,), self.eps)  # recorded from x
        dx = dw = db = None
        if need_x:
            dxhat = (dy * w.reshape(_channel_shape(x.ndim))).reshape(N, G, -1)
            dx = _normalized_grad(dxhat, xhat, istd, (2,)).reshape(x.shape)
        if need_w:
            dw = (dy * xhat.reshape(x.shape)).sum(axis=self.sum_axes)
        if need_b:
            db = dy.sum(axis=self.sum_axes)
        return dx, dw, db


def _data(value):
    """The array of a Tensor (running statistics may be Tensors or arrays)."""
    return getattr(value, "data", value) if not isinstance(value, np.ndarray) else value


def _shape_tuple(op: str, shape) -> tuple[int, ...]:
    """``normalized_shape`` (an int or a sequence of ints) as a tuple of positive ints."""
    dims = (shape,) if isinstance(shape, (int, np.integer)) else shape
    try:
        dims = tuple(dims)
    except TypeError:
        raise ValueError(f"{op}: normalized_shape must be an int or a tuple of ints, got "
                         f"{shape!r}") from None
    if not dims or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool)
                           and d >= 1 for d in dims):
        raise ValueError(f"{op}: normalized_shape must be an int or a non-empty tuple of "
                         f"positive ints, got {shape!r}")
    return tuple(int(d) for d in dims)


__all__ = ["BatchNorm", "LayerNorm", "GroupNorm"]
