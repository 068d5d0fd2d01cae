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

import functools
import math

import numpy as np

from minigrad.cache import BoundedCache
from minigrad.function import Function
from minigrad.parallel import blas_ready, parallel_for


def _normalize(x, axes: tuple[int, ...], eps: float):
    """(x̂, μ, σ², 1/√(σ² + ε)) with μ and the biased σ² taken over ``axes`` (kept as size 1).

    x is an array or a Tensor (then every result is recorded on the tape).
    """
    mean = _array_mean if type(x) is np.ndarray else _tensor_mean
    mu = mean(x, axes)
    xc = x - mu
    var = mean(xc * xc, axes)
    istd = (var + eps) ** -0.5
    return xc * istd, mu, var, istd


def _normalized_grad(dxhat, xhat, istd, axes: tuple[int, ...]):
    """dL/dx of x̂ = (x − μ)·istd over ``axes``, from dL/dx̂: istd·(dx̂ − mean dx̂ − x̂·mean(dx̂·x̂)).

    Arrays or Tensors, as :func:`_normalize`.
    """
    mean = _array_mean if type(dxhat) is np.ndarray else _tensor_mean
    mean_dxhat = mean(dxhat, axes)
    mean_dxhat_xhat = mean(dxhat * xhat, axes)
    return istd * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat)


def _tensor_mean(x, axes: tuple[int, ...]):
    """The mean of a Tensor over ``axes``, kept as size 1 (recorded on the tape)."""
    return x.mean(axis=axes, keepdims=True)


_MEAN_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _array_mean(a, axes: tuple[int, ...]):
    """``a.mean(axis=axes, keepdims=True)`` of an array, bit for bit: for float32 and float64
    the same reduction (``np.add.reduce``, NumPy's pairwise sum) divided by the count, without
    ``mean``'s Python-level preparation, which at batch 1 costs 3–4 µs a call (LayerNorm over
    (1, 512) takes four means). ``mean`` divides a float32 sum by an ``np.intp`` count, in
    float64, rounding to float32 after; dividing in float32 gives the same bits, as a quotient
    rounded to 53 bits and then to 24 is the quotient rounded to 24 (53 ≥ 2·24 + 2), and costs
    1.5 µs less. Any other dtype (float16, which ``mean`` sums in float32) through ``mean``."""
    if a.dtype not in _MEAN_DTYPES:
        return a.mean(axis=axes, keepdims=True)
    count = 1
    for axis in axes:
        count *= a.shape[axis]
    s = np.add.reduce(a, axis=axes, keepdims=True)
    s /= count
    return s


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
    if type(eps) is float and eps >= 0:           # the common case, in one test
        return eps
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
    of C·P values (P = ∏*) and goes over them a block of samples at a time (at most
    ``_BLOCK_BYTES``, an even number of blocks fixed by the shape, see ``_block_rows``), the
    blocks split over minigrad's threads: forward
    reads x twice (once for both statistics, once for y) and writes only y; backward reads dy
    and x twice and writes only dx; every temporary lives in one block. Per-channel constants
    are repeated P times into one row of C·P values, so every step is a long contiguous NumPy
    loop (a (C, 1) column broadcast runs one short loop per plane, up to twice as slow). The
    statistics are sums per plane (the P values of one sample and channel: a product with a
    vector of ones, and ``np.vecdot`` for Σ t·u; ``einsum`` before NumPy 2), added up per
    channel in float64:

        t = x − K (K a per-channel shift)    S = Σ t    Q = Σ t²
        μ = K + S/m                          σ² = Q/m − (S/m)²

    Rounding in Q is magnified by (Q/m)/σ² = 1 + (μ − K)²/σ², so K must lie near μ: K = 0 (t
    is x, no subtraction) when the first block's mean is within its σ of 0 (the first block's
    sums then count in the pass), else that mean; if the factor still exceeds 4, the pass is
    repeated with K = μ, the two-pass formula Σ (x − μ)². Then, per channel,
    y = x·(w/std) + (b − μ·w/std) and dx = a·dy + k·x + (c − k·μ) with a = w/std,
    k = −a·dw/(m·std), c = −a·db/m, which is the formula above; where |μ| > σ for some
    channel, x − μ is formed first instead (x·k and k·μ would cancel). Backward finds
    db = Σ dy and dw = (1/std)·Σ dy·(x − μ) in one pass over dy and x (Σ dy·x − μ·Σ dy when
    |μ| ≤ σ). Saved: x itself (the input, which the tape keeps anyway), μ and 1/std per
    channel.

    A channels-last x (shape (N, C, *), memory (N, *, C), as a convolution that works channels
    last returns it) is not copied: the blocked path sees it as N·P/k rows of k positions × C
    values (k a divisor of N·P, k·C ≤ ``_TILE_VALUES``), and the same formulas run on blocks
    of rows. The per-channel sums are then column sums: of a short block (at most
    ``_SHORT_COLUMN`` positions) one product of it, seen as (positions, C), with a vector of
    ones (the BLAS); of a longer one its k·C column sums down its rows, then added per channel
    over the k positions of a row in float64; a per-channel constant is its C values tiled k
    times into one row. y and dx come out
    channels-last too; a dy in the other layout is copied into x's first. Any other layout is
    copied to C order.

    In evaluation (``training=False``) μ and σ² are the given running statistics, constants,
    so the normalisation is an affine map of x:  dx = w·dy / std  (db and dw as above). The
    blocked path keeps the per-channel constants of the last few sets of running statistics,
    w and b (``_eval_constants``): a network in evaluation calls each layer with the same ones
    batch after batch, and at batch 1 making them costs as much as y itself.

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
        if getattr(w, "shape", None) != (C,) or getattr(b, "shape", None) != (C,):
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
            mean, var = self.running_mean, self.running_var
            if mean is None or var is None:
                raise ValueError("batch_norm: running_mean and running_var are needed when "
                                 "not training (they are the statistics evaluation uses)")
            if getattr(mean, "shape", None) != (C,) or getattr(var, "shape", None) != (C,):
                for name, value in (("running_mean", mean), ("running_var", var)):
                    if np.shape(value) != (C,):
                        raise ValueError(f"batch_norm: {name} must have shape ({C},) (one "
                                         f"value per channel) for an input of shape "
                                         f"{x.shape}; got {name}.shape={np.shape(value)}")
        # float16 keeps the plain path, whose means NumPy accumulates in float32.
        self.layout = _layout(x)
        self.blocked = self.layout is not None
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
            mu = _array_mean(x, self.axes)
            xhat = x - mu                                   # xc, made x̂ in place below
            y = np.square(xhat)                             # xc², then y in the same array
            var = _array_mean(y, self.axes)
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
        dtype = x.dtype
        view = _ChannelsLast(x) if self.layout == "channels-last" else _ChannelsFirst(x)
        x2 = view.x2
        if self.training:
            mu, var = _batch_statistics(view)
            self.mu, self.var = mu.astype(dtype), var.astype(dtype)
            w64 = np.asarray(w, dtype).astype(np.float64)
            bias = np.asarray(b, dtype).astype(np.float64)
            constants = _affine_constants(view, mu, var, w64, bias, self.eps)
        else:
            constants = _eval_constants(view, self.running_mean, self.running_var, w, b,
                                        self.eps)
        self.view = view
        self.mu64, self.istd64, self.w64, self.centred, rows = constants
        y, y2 = view.new()
        if x2.shape[0] <= view.step:           # one block (small batches): no slicing
            _affine_rows(x2, y2, rows, self.centred)
        else:
            view.over_blocks(lambda lo, hi, t: _affine_rows(x2[lo:hi], y2[lo:hi], rows,
                                                            self.centred), scratch=False)
        return y

    def _backward_blocked(self, dy):
        need_x, need_w, need_b = self.needs_input_grad
        view = self.view
        x2, dtype = view.x2, view.x2.dtype
        dy2 = view.matrix(dy)                   # dy in x's layout, whichever layout dy has
        row = view.row
        mu, a = self.mu64, self.w64 * self.istd64           # a = w/std per channel
        dx = dw = db = None
        if self.training and need_x or need_w:
            # db = Σ dy and g = Σ dy·(x − μ) = std·dw, in one pass over dy and x.
            sum_dy, sum_dyx = _gradient_sums(view, dy2, mu if self.centred else None)
            db64 = sum_dy.sum(axis=0, dtype=np.float64)
            g = sum_dyx.sum(axis=0, dtype=np.float64)
            if not self.centred:
                g -= mu * db64                              # Σ dy·x − μ·Σ dy
            dw, db = (g * self.istd64).astype(dtype), db64.astype(dtype)
        elif need_b:
            db = view.channel_sums(dy2)
        if need_x:
            dx, dx2 = view.new()
            a_row = row(a)
            if self.training:
                # dx = (w/std)·(dy − db/m − x̂·dw/m) = a·dy + k·(x − μ) + c per channel
                k = -a * self.istd64 ** 2 * g / self.m
                c = -a * db64 / self.m
                if self.centred:
                    mu_row, k_row, c_row = row(mu), row(k), row(c)

                    def grad(lo, hi, t):
                        n = hi - lo
                        np.subtract(x2[lo:hi], mu_row[:n], out=t)
                        t *= k_row[:n]
                        dxb = dx2[lo:hi]
                        np.multiply(dy2[lo:hi], a_row[:n], out=dxb)
                        dxb += t
                        dxb += c_row[:n]
                else:
                    k_row, c_row = row(k), row(c - mu * k)

                    def grad(lo, hi, t):            # a·dy + k·x + (c − μ·k)
                        n = hi - lo
                        np.multiply(x2[lo:hi], k_row[:n], out=t)
                        t += c_row[:n]
                        dxb = dx2[lo:hi]
                        np.multiply(dy2[lo:hi], a_row[:n], out=dxb)
                        dxb += t

                view.over_blocks(grad, scratch=True)
            else:
                view.over_blocks(lambda lo, hi, t: np.multiply(dy2[lo:hi], a_row[:hi - lo],
                                                               out=dx2[lo:hi]), scratch=False)
        return dx, dw if need_w else None, db if need_b else None

    # ----------------------------------------------------------------------- second order

    def backward_graph(self, dy):
        need_x, need_w, need_b = self.needs_input_grad
        x, w, _ = self.inputs
        shape = _channel_shape(x.ndim)
        if self.training:
            xhat, _, _, istd = _normalize(x, self.axes, self.eps)     # recorded from x
        elif self.blocked:
            dtype = x.data.dtype
            mu = self.mu64.astype(dtype).reshape(shape)
            istd = self.istd64.astype(dtype).reshape(shape)
            xhat = (x - mu) * istd
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
# block of at most _BLOCK_BYTES of x at a time (see _block_rows).
_MIN_PLANE = 16
_BLOCKED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_BLOCK_BYTES = 1 << 22
# LayerNorm's and GroupNorm's backward go over blocks of at most this many bytes of x (their
# forward over blocks of _BLOCK_BYTES): on one thread their backward took 1.14× (LayerNorm
# over (512,) at (16, 128, 512)) and 1.04× (GroupNorm, (64, 32, 32, 32)) as long in blocks of
# 4 MiB as in blocks of 1 MiB, where BatchNorm's took 0.91–0.98×.
_BACKWARD_BLOCK_BYTES = 1 << 20


def _affine_rows(xb, yb, rows, centred: bool) -> None:
    """y = (x − μ)·(w/std) + b (``centred``) or x·(w/std) + (b − μ·w/std) on a block of rows
    of x2 into yb, with ``rows`` the per-channel rows of :func:`_affine_constants` (each
    (1, width), broadcast down the block)."""
    if centred:
        mu_row, scale_row, b_row = rows
        np.subtract(xb, mu_row, out=yb)
        yb *= scale_row
        yb += b_row
    else:
        scale_row, shift_row = rows
        np.multiply(xb, scale_row, out=yb)
        yb += shift_row


def _block_rows(rows: int, row_bytes: int, block_bytes: int | None = None) -> int:
    """The rows of x2 in a block: x whole when it holds less than _BLOCK_BYTES, else cut into
    an even number of blocks as equal as the rows allow (two threads get the same work), as
    few as keep each within _BLOCK_BYTES. Fixed by the shape alone, so the sums, added block
    by block, come out the same whatever the number of threads. (An x of up to 4 MiB of
    float32 is below ``_over_blocks``' threshold for two slices and runs on one thread
    anyway, so _BLOCK_BYTES = 4 MiB keeps such an x in one block and cuts one of 4 MiB or
    more into two or more, for two threads to share. Blocks of 1 MiB instead of 256 KiB took
    0.8–1.0× the time on one thread, and blocks of 4 MiB instead of 1 MiB 0.8–0.9× (forward:
    BatchNorm channels last at (100, 32, 14, 14), GroupNorm at (64, 32, 32, 32), LayerNorm
    at (16, 128, 512)): more NumPy calls cost more than the cache saves, on a machine whose
    L2 (512 KiB a core) holds no 1 MiB block with its scratch anyway.)"""
    if block_bytes is None:
        block_bytes = _BLOCK_BYTES
    total = rows * row_bytes
    if total < block_bytes:
        return max(rows, 1)
    blocks = 2 * -(-total // (2 * block_bytes))
    step = max(1, -(-rows // blocks))
    while step > 1 and step * row_bytes > block_bytes:   # rows too few to share the bytes
        blocks += 2                                      # evenly (7 rows of 266 KB: 2 blocks
        step = -(-rows // blocks)                        # of 4 rows hold 1.07 MB each)
    return step


def _layout(x) -> str | None:
    """:func:`_layout_plain` of x, kept per shape, strides and dtype (all it depends on
    besides the thresholds, which the key holds too; a network normalises the same few
    shapes at every step, and at batch 1 the tests on the array cost about a µs of a 20 µs
    call)."""
    key = (x.shape, x.strides, x.dtype, _MIN_PLANE, _BLOCKED_DTYPES)
    layout = _LAYOUTS.get(key, _UNKNOWN)
    if layout is _UNKNOWN:
        layout = _layout_plain(x)
        _LAYOUTS.put(key, layout)
    return layout


_LAYOUTS = BoundedCache(max_bytes=None, max_entries=64)    # a few shapes recur
_UNKNOWN = object()


def _layout_plain(x) -> str | None:
    """How the blocked path reads x (N, C, *): "channels-first" when x is C-contiguous (or
    any layout it does not know, which it copies to C order), "channels-last" when its memory
    is (N, *, C) (x.transpose(0, 2, …, 1) is C-contiguous, as a convolution's channels-last
    output is); None for the plain path."""
    N, C = x.shape[:2]
    if not (x.ndim >= 3 and x.size > 0 and x.dtype in _BLOCKED_DTYPES
            and x.size // (N * C) >= _MIN_PLANE):
        return None
    if not x.flags.c_contiguous and x.transpose(_to_last(x.ndim)).flags.c_contiguous:
        return "channels-last"
    return "channels-first"


def _to_last(ndim: int) -> tuple[int, ...]:
    """The axes that take (N, C, *) to (N, *, C) (``np.moveaxis(x, 1, -1)`` without its cost,
    a few µs, which counts at batch 1)."""
    return (0,) + tuple(range(2, ndim)) + (1,)


class _BlockedView:
    """How the blocked path sees x: a matrix x2 whose rows it goes over in blocks of ``step``
    rows. A view gives x2, ``matrix`` (an array like x laid out as x2), ``new`` (a result),
    ``row`` (per-channel constants shaped to broadcast against a block, sliced [:n] for a
    block of n rows), ``partial_sums`` with ``sums`` and ``dots`` (per-channel sums of a block
    into it, added up per channel afterwards) and ``channel_sums``."""

    def over_blocks(self, body, scratch):
        _over_blocks(self.x2, self.step, body, scratch)

    @property
    def row_bytes(self):
        """The size of one ``row``."""
        return self.x2.shape[1] * self.x2.itemsize


class _ChannelsFirst(_BlockedView):
    """x (N, C, *) seen as x2 (N, C·P), P = ∏*: a row per sample, its C planes side by side.

    A per-channel constant is one row of C·P values, each repeated P times, broadcast down a
    block (a (C, 1) column would run one short loop per plane, up to twice as slow); the sums
    are taken per plane (N, C) by :func:`_plane_sums` and :func:`_plane_dots`."""

    def __init__(self, x):
        N, C = x.shape[:2]
        self.shape, self.C, self.P = x.shape, C, x.size // (N * C)
        self.x2 = np.ascontiguousarray(x).reshape(N, C * self.P)
        self.step = _block_rows(N, self.x2.shape[1] * x.itemsize)

    @property
    def key(self):
        """What ``row`` depends on besides the values."""
        return "channels-first", self.C, self.P

    def matrix(self, a):
        """An array shaped like x (in any layout) laid out as x2 (a view when it already is)."""
        return np.ascontiguousarray(a, dtype=self.x2.dtype).reshape(self.shape[0], -1)

    def new(self):
        """A new array shaped like x (C order) and the same memory seen as x2 is."""
        a = np.empty(self.shape, self.x2.dtype)
        return a, a.reshape(self.shape[0], -1)

    def row(self, values):
        """Per-channel values (C,) as a (1, C·P) row (a block's slice [:n] still broadcasts)."""
        return values.astype(self.x2.dtype).repeat(self.P).reshape(1, -1)

    dots_need_scratch = False

    def partial_sums(self):
        """An (N, C) array for sums per plane."""
        return np.empty((self.x2.shape[0], self.C), self.x2.dtype)

    def first_moments(self, sums, squares):
        """Mean and variance (C,) in float64 of the first block's values, per channel, from
        its partial sums of x and x² (the first block's part of ``partial_sums``)."""
        rows = min(self.step, self.x2.shape[0])
        n = rows * self.P
        mean = sums[:rows].sum(axis=0, dtype=np.float64) / n
        return mean, squares[:rows].sum(axis=0, dtype=np.float64) / n - mean * mean

    def sums(self, out, lo, hi, t):
        """Σ t per plane of rows lo..hi−1 into out[lo:hi]."""
        _plane_sums(t.reshape(-1, self.P), out=out[lo:hi].reshape(-1))

    def dots(self, out, lo, hi, t, u, buf):
        """Σ t·u per plane of rows lo..hi−1 into out[lo:hi] (buf unused)."""
        _plane_dots(t.reshape(-1, self.P), u.reshape(-1, self.P), out=out[lo:hi].reshape(-1))

    def channel_sums(self, a2):
        """Σ per channel (C,) of an array laid out as x2."""
        return _plane_sums(a2.reshape(-1, self.P)).reshape(-1, self.C).sum(axis=0)


# Row sums and row dot products of a (rows, P) block: the sums per plane of the channels-first
# blocked path. The plain formulation is einsum's; with NumPy ≥ 2 a matrix-vector product with
# a vector of ones (the BLAS) and ``np.vecdot`` do the same 1.3–1.5× and 1.3–2× as fast ((80,
# 784) float32 blocks, 1 thread). They add in another order, so the sums differ in the last
# bits; a test holds the two formulations equal.
_FAST_PLANE_SUMS = hasattr(np, "vecdot")


def _plane_sums(a, out=None):
    """Σ_j a[i, j] of a (rows, P) array, (rows,) (into ``out`` when given)."""
    if _FAST_PLANE_SUMS:
        return np.matmul(a, _ones(a.shape[1], a.dtype), out=out)
    return np.einsum("ij->i", a, out=out)


def _plane_dots(a, b, out=None):
    """Σ_j a[i, j]·b[i, j] of two (rows, P) arrays, (rows,) (into ``out`` when given)."""
    if _FAST_PLANE_SUMS:
        return np.vecdot(a, b, out=out)
    return np.einsum("ij,ij->i", a, b, out=out)


@functools.lru_cache(maxsize=16)
def _ones(n: int, dtype) -> np.ndarray:
    """A read-only vector of n ones (the same planes recur every step)."""
    ones = np.ones(n, dtype)
    ones.flags.writeable = False
    return ones


class _ChannelsLast(_BlockedView):
    """x (N, C, *) whose memory is (N, *, C), seen without a copy as x2 (N·P/k, k·C): each row
    holds k positions of C values (x2 is the (N·P, C) matrix of positions × channels with every
    k rows laid end to end). A per-channel constant is a tile of the C values repeated k times,
    (1, k·C), which broadcasts down a block as the channels-first rows do; k is the largest
    divisor of N·P that keeps the tile within ``_TILE_VALUES`` (and a block): each step of a
    block then runs loops of thousands of values, as fast as on a tile as long as the block (a
    (C,) row broadcast down (N·P, C) runs one loop of C values per position, about four times
    as slow for C = 16), and the tile costs a few µs to make instead of ~13 µs for a block-long
    one. The statistics are column sums (``sums``): of a block of at most ``_SHORT_COLUMN``
    positions, seen as (positions, C), one matrix-vector product with a vector of ones (the
    BLAS; a NumPy reduction down the positions runs one loop of C values per position); of a
    longer block the sums of its k·C columns down its rows (a product with ones, each a sum
    of as many values as the block has rows), added up per channel in float64: as fast, and
    the BLAS, which adds down a column one value after the other, never sums more than
    ``_SHORT_COLUMN`` values in float32."""

    def __init__(self, x):
        self.shape, self.like = x.shape, x
        self.C, self.P, self.axes, self.k, self.step = _channels_last_geometry(
            x.shape, x.itemsize, _TILE_VALUES, _BLOCK_BYTES)
        self.x2 = x.transpose(self.axes).reshape(-1, self.k * self.C)

    @property
    def key(self):
        """What ``row`` depends on besides the values."""
        return "channels-last", self.C, self.k

    def matrix(self, a):
        return np.ascontiguousarray(a.transpose(self.axes), dtype=self.x2.dtype
                                    ).reshape(self.x2.shape)

    def new(self):
        """A new array shaped like x, channels-last as x is (an array of its own, not a view:
        a leaf's gradient is then kept as it is, not copied), and the same memory seen as x2
        is."""
        a = np.empty_like(self.like, order="K")
        m = a.transpose(self.axes)
        if not m.flags.c_contiguous:        # (size-1 axes may leave order "K" another choice)
            m = np.empty(m.shape, a.dtype)
            a = m.transpose(np.argsort(self.axes))
        return a, m.reshape(self.x2.shape)

    def row(self, values):
        """Per-channel values (C,) tiled k times into a (1, k·C) row (a block's slice [:n]
        still broadcasts). Built from a first tile of at most 1000 values: filling it all
        straight from the (C,) vector would run a loop of C values per position. (A first
        tile of exactly 1024 float32 values, 4 KiB, sometimes made the row take 3–6× as long,
        depending on where the arrays lay in memory.)"""
        C, k, dtype = self.C, self.k, self.x2.dtype
        j = min(k, max(1, 1000 // C))                        # positions in the first tile
        tile = np.empty((j, C), dtype)
        tile[...] = values
        row = np.empty((-(-k // j), j * C), dtype)
        row[...] = tile.reshape(-1)
        return row.reshape(-1)[:k * C].reshape(1, -1)

    dots_need_scratch = True

    def partial_sums(self):
        """A (blocks, C) float64 array for sums per block."""
        return np.empty((-(-self.x2.shape[0] // self.step), self.C))

    def first_moments(self, sums, squares):
        n = min(self.step, self.x2.shape[0]) * self.k
        mean = sums[0] / n
        return mean, squares[0] / n - mean * mean

    def sums(self, out, lo, hi, t):
        """Σ t down the positions of rows lo..hi−1 into out[lo // step] (float64). A block of
        at most ``_SHORT_COLUMN`` positions: one product of its (positions, C) matrix with a
        vector of ones (the BLAS, which adds down a column one position after the other, in
        t's dtype). A longer one: the sums of its k·C columns down its rows (a product with
        a vector of ones; a NumPy sum for fewer than 8 rows, where NumPy's product is slow),
        added up per channel over the k positions of a row in float64."""
        n, C = hi - lo, self.C
        if n * self.k <= _SHORT_COLUMN:
            out[lo // self.step] = np.matmul(_ones(n * self.k, t.dtype), t.reshape(-1, C))
            return
        column = (np.add.reduce(t, axis=0) if n < 8
                  else np.matmul(_ones(self.step, t.dtype)[:n], t))
        np.matmul(_ones(self.k, np.float64), column.astype(np.float64).reshape(-1, C),
                  out=out[lo // self.step])

    def dots(self, out, lo, hi, t, u, buf):
        """Σ t·u down the positions of rows lo..hi−1 into out[lo // step], through buf (may
        be t itself), as ``sums``."""
        np.multiply(t, u, out=buf)
        self.sums(out, lo, hi, buf)

    def channel_sums(self, a2):
        a = a2.reshape(-1, self.C)
        return np.ones(a.shape[0], a.dtype) @ a


@functools.lru_cache(maxsize=64)
def _channels_last_geometry(shape, itemsize, tile_values, block_bytes):
    """(C, P, axes, k, step) of :class:`_ChannelsLast` for an x of this shape and itemsize
    (with ``_TILE_VALUES`` and ``_BLOCK_BYTES`` as given): what the view needs besides x
    itself, kept per shape (a network normalises the same shapes at every step; at batch 1
    working it out costs a few µs of a 20 µs call)."""
    N, C = shape[:2]
    P = math.prod(shape) // (N * C)
    limit = max(1, min(tile_values, block_bytes // itemsize) // C)
    k = _largest_divisor(N * P, limit)
    return C, P, _to_last(len(shape)), k, _block_rows(N * P // k, k * C * itemsize,
                                                     block_bytes)


# Channels-last sums of a block of at most this many positions run down its (positions, C)
# matrix in one product (as accurate as float32 sums of that many values); longer blocks sum
# down their rows first (see _ChannelsLast.sums).
_SHORT_COLUMN = 2048

# The channels-last tile: at most this many values (k·C). NumPy's loops over a (1, W) row
# broadcast down a block run as fast as over a block-long row from W ≈ 6000 float32 values;
# W of 1024–4096 took 1.4–1.6× as long per step (a (65536,) block, 1 thread).
_TILE_VALUES = 1 << 14


@functools.lru_cache(maxsize=64)
def _largest_divisor(n: int, limit: int) -> int:
    """The largest divisor of n that is at most ``limit`` (≥ 1)."""
    if n <= limit:
        return max(n, 1)
    d = np.arange(limit, 0, -1)
    return int(d[np.argmax(n % d == 0)])


def _over_blocks(x2, step, body, scratch: bool) -> None:
    """``body(lo, hi, t)`` over rows lo..hi−1 of x2, a block of ``step`` rows at a time (the
    blocks start at multiples of ``step``, however many threads share them out), the blocks
    split over minigrad's threads. ``t`` is a scratch block shaped like x2[lo:hi] (one per
    thread, reused), or None."""
    rows, width = x2.shape
    blocks = -(-rows // step)
    if blocks == 1:                     # one block (small batches): no hand-over to arrange
        body(0, rows, np.empty_like(x2) if scratch else None)
        return

    def run(first, last):
        buf = np.empty((min(step, rows), width), x2.dtype) if scratch else None
        for k in range(first, last):
            lo, hi = k * step, min(k * step + step, rows)
            body(lo, hi, None if buf is None else buf[:hi - lo])

    # The work is x's elements once: each pass sweeps an x that the last-level cache holds,
    # which a second core hardly speeds up, so the blocks are shared out only from
    # 2·MIN_WORK elements of x (the BatchNorm CNN's (100, 16, 28, 28), not its (100, 32, 14,
    # 14), whose passes took 1.04-1.28x as long on two threads as on one).
    parallel_for(blocks, run, work=x2.size)


def _centred(mu, var) -> bool:
    """Whether the blocked path forms x − μ (where |μ| > σ for some channel), or works with x
    itself: its sums Σ x and Σ dy·x then lose at most as much to rounding as centred ones would
    lose on values twice as large, and it saves one step per block."""
    return np.count_nonzero(mu * mu > var) > 0


def _affine_constants(view, mu, var, w64, bias, eps):
    """(μ, 1/std, w, centred, rows): μ, 1/std and w (C,) in float64 (backward's), whether the
    blocked path forms x − μ (see :func:`_centred`), and the per-channel rows of y's affine
    map: μ, w/std and b when it does, else w/std and b − μ·w/std."""
    istd = (var + eps) ** -0.5
    scale = w64 * istd                                      # w/std
    centred = _centred(mu, var)
    row = view.row
    rows = [row(mu), row(scale), row(bias)] if centred else [row(scale), row(bias - mu * scale)]
    return mu, istd, w64, centred, rows


# Evaluation: the constants depend on the running statistics, w, b, ε and the shape of a
# sample only, and a network in evaluation calls each layer with the same ones batch after
# batch. At batch 1 making them (a dozen NumPy calls and rows as long as x) costs as much as
# y itself, so the last few sets are kept, read-only, under the exact bytes of the four
# vectors: any change to them (an in-place update of a running statistic, a training step of
# w, a zero's sign) is a new key. Sets whose rows are longer than a block are not kept (y's
# own work dwarfs the constants' there); at most 8 sets are kept, with at most 4 MiB of rows
# in all, the oldest let go first (a BoundedCache, which any thread may use).
_eval_cache = BoundedCache(max_bytes=1 << 22, max_entries=8)


def _eval_constants(view, running_mean, running_var, w, b, eps):
    """:func:`_affine_constants` with μ and σ² the running statistics (all four vectors
    rounded to x's dtype first), from ``_eval_cache`` when it holds them."""
    dtype = view.x2.dtype
    mean, var = _data(running_mean), _data(running_var)
    stacked = None                          # the four rounded to x's dtype, (4, C)
    if not _eval_cache.max_entries or view.row_bytes > _BLOCK_BYTES:
        key = None
    elif (type(mean) is type(var) is type(w) is type(b) is np.ndarray
            and mean.dtype == var.dtype == w.dtype == b.dtype == dtype):
        # Already in x's dtype (the usual case): their own bytes are the rounded ones, and
        # the key is made without stacking the four into a new array (1.5 µs at batch 1).
        key = (mean.tobytes(), var.tobytes(), w.tobytes(), b.tobytes(), dtype.char, eps,
               view.key)
    else:
        stacked = np.array((mean, var, w, b), dtype)
        key = (stacked.tobytes(), dtype.char, eps, view.key)
    if key is not None:
        found = _eval_cache.get(key)
        if found is not None:
            return found
    if stacked is None:
        stacked = np.array((mean, var, w, b), dtype)
    constants = _affine_constants(view, *stacked.astype(np.float64), eps)
    if key is None:                         # not kept
        return constants
    for a in (*constants[:3], *constants[4]):
        a.flags.writeable = False
    _eval_cache.put(key, constants, sum(row.nbytes for row in constants[4]))
    return constants


def _batch_statistics(view):
    """μ and the biased σ² (C,) in float64 of x, in one pass when a shift works.

    Sums of t = x − K per plane (channels first) or per block (channels last), added up per
    channel in float64: μ = K + S/m and σ² = Q/m − (S/m)². Rounding in Q is magnified by
    (Q/m)/σ² = 1 + (μ − K)²/σ², so K must be near μ: K = 0 (no subtraction at all) when the
    first block's mean is within its σ of 0, else that mean. If the factor still exceeds 4,
    the pass is repeated with K = μ: then it is the two-pass formula Σ (x − μ)², and the
    factor is 1.
    """
    x2 = view.x2
    m = x2.size // view.C
    sums, squares = view.partial_sums(), view.partial_sums()
    # The first block's sums of x and x² give a rough estimate of μ and σ², enough to choose
    # K; when K = 0 they are also the pass's own sums for that block (at a batch that fits
    # in one block, the whole pass).
    _shifted_sums(view, None, sums, squares, "first")
    shift, spread = view.first_moments(sums, squares)
    first_done = not (shift * shift > spread).any()
    if first_done and x2.shape[0] <= view.step:
        # One block (small batches): those sums are the whole pass with K = 0, and the
        # moments are the ones the loop below would make of them, bit for bit.
        return shift, np.maximum(spread, 0.0)
    if first_done:
        shift = None                                        # K = 0
    for _ in range(2):
        if shift is not None:
            shift = shift.astype(x2.dtype).astype(np.float64)  # the K that is subtracted
        _shifted_sums(view, shift, sums, squares, "rest" if first_done else "all")
        first_done = False
        d = sums.sum(axis=0, dtype=np.float64) / m             # μ − K
        var = squares.sum(axis=0, dtype=np.float64) / m - d * d
        mu = d if shift is None else shift + d
        if not np.any(d * d > 3 * var):                       # also when var is NaN: no retry
            break
        shift = mu
    return mu, np.maximum(var, 0.0)


def _shifted_sums(view, shift, sums, squares, part="all"):
    """Partial sums (per plane or per block, × C) of t and t², t = x − shift[c] (t = x when
    shift is None), into ``sums`` and ``squares`` (from ``view.partial_sums``): of every block
    (``part`` "all"), of the first block only ("first") or of all blocks but the first
    ("rest")."""
    x2 = view.x2
    rows, step = x2.shape[0], view.step
    if part == "rest" and rows <= step:
        return
    shift_row = None if shift is None else view.row(shift)
    scratch = shift is not None or view.dots_need_scratch

    def blocks(lo, hi, t):
        if lo == 0 and part == "rest":
            return
        if shift_row is None:
            xb = x2[lo:hi]
            view.sums(sums, lo, hi, xb)
            view.dots(squares, lo, hi, xb, xb, t)
        else:
            np.subtract(x2[lo:hi], shift_row[:hi - lo], out=t)
            view.sums(sums, lo, hi, t)
            view.dots(squares, lo, hi, t, t, t)

    if part == "first":
        n = min(step, rows)
        blocks(0, n, np.empty((n, x2.shape[1]), x2.dtype) if scratch else None)
    else:
        view.over_blocks(blocks, scratch=scratch)


def _gradient_sums(view, dy2, mu):
    """Partial sums (per plane or per block, × C) of dy and dy·(x − μ[c]) (dy·x when mu is
    None)."""
    x2 = view.x2
    sum_dy, sum_dyx = view.partial_sums(), view.partial_sums()
    mu_row = None if mu is None else view.row(mu)

    def blocks(lo, hi, t):
        dyb = dy2[lo:hi]
        view.sums(sum_dy, lo, hi, dyb)
        if mu_row is None:
            view.dots(sum_dyx, lo, hi, x2[lo:hi], dyb, t)
        else:
            np.subtract(x2[lo:hi], mu_row[:hi - lo], out=t)
            view.dots(sum_dyx, lo, hi, t, dyb, t)

    view.over_blocks(blocks, scratch=mu_row is not None or view.dots_need_scratch)
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

    Two paths. The plain one (``_forward_plain``, ``_backward_plain``) applies the formulas
    array by array; it serves float16, inputs of fewer than ``_MIN_VALUES`` values and rows of
    fewer than ``_MIN_ROW``, and a test holds the other equal to it. The row path (float32,
    float64) sees x as a matrix x2 of one row of m values per sample, in x's own memory order
    (a channels-last x normalised over (C, H, W) is read as (N, H·W·C), w and b permuted
    alike: the statistics do not depend on the order of a row), and goes over it a block of
    rows at a time (:func:`_row_blocks`):
    forward reads x once from memory for μ, σ² (:func:`_row_moments`: one pass of sums of x
    and x², a second over the block, still in cache, when a row's mean is far from 0) and y,
    and saves no x̂; backward reads dy and x once and gets every sum it needs from matrix-vector
    products: Σ w·dy = dy·w, Σ w·dy·x = (dy∘x)·w per row, dw = 1/std·(dy∘x) − (μ/std)·dy
    and db = 1·dy per block (with x − K, K = μ rounded to x's dtype, formed first when some
    row has |μ| > σ, and the sums corrected by μ − K in float64), then

        dx = (w/std)·dy + k·(x − μ) + c,   k = −mean(dx̂·x̂)/std²,  c = −mean(dx̂)/std

    per row. Saved there: x (which the tape keeps anyway), μ and σ² per row (float64).
    Saved on the plain path: x̂, 1/std (one per sample), w.
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
        if getattr(w, "shape", None) != shape or getattr(b, "shape", None) != shape:
            _check_params("layer_norm", x.shape, "normalized_shape", shape, np.shape(w),
                          np.shape(b))
        self.axes = tuple(range(x.ndim - k, x.ndim))     # normalised over
        self.lead = tuple(range(x.ndim - k))             # w and b are summed over
        self.rows = (x.size >= _MIN_VALUES and x.dtype in _BLOCKED_DTYPES
                     and math.prod(shape) >= _MIN_ROW)
        if self.rows:
            return self._forward_rows(x, w, b)
        return self._forward_plain(x, w, b)

    def backward(self, dy):
        if self.rows:
            return self._backward_rows(dy)
        return self._backward_plain(dy)

    # ------------------------------------------------------------------------ plain path

    def _forward_plain(self, x, w, b):
        self.w = np.asarray(w, x.dtype)
        self.xhat, _, _, self.istd = _normalize(x, self.axes, self.eps)
        return self.w * self.xhat + np.asarray(b, x.dtype)

    def _backward_plain(self, dy):
        need_x, need_w, need_b = self.needs_input_grad
        dx = dw = db = None
        if need_x:
            dx = _normalized_grad(dy * self.w, self.xhat, self.istd, self.axes)
        if need_w:
            dw = (dy * self.xhat).sum(axis=self.lead)
        if need_b:
            db = dy.sum(axis=self.lead)
        return dx, dw, db

    # ------------------------------------------------------------------------ row path

    def _forward_rows(self, x, w, b):
        blas_ready()                           # its sums are matrix products
        view = self.view = _Rows(x, len(self.normalized_shape))
        x2, eps = view.x2, self.eps
        w2 = self.w2 = view.param(w)
        b2 = view.param(b)
        y, y2 = view.new()
        L = x2.shape[0]
        if L <= view.step:                     # one block (small batches): no slicing
            self.mu, self.var = _layer_norm_rows(x2, y2, w2, b2, view.piece, eps)
            return y
        mu, var = self.mu, self.var = np.empty(L), np.empty(L)

        def block(lo, hi, _):
            mu[lo:hi], var[lo:hi] = _layer_norm_rows(x2[lo:hi], y2[lo:hi], w2, b2,
                                                     view.piece, eps)

        _over_blocks(x2, view.step, block, scratch=False)
        return y

    def _backward_rows(self, dy):
        blas_ready()                           # its sums are matrix products
        need_x, need_w, need_b = self.needs_input_grad
        view = self.view
        x2, w2 = view.x2, self.w2
        dtype = x2.dtype
        dy2 = view.matrix(dy)
        L, m = x2.shape
        mu, var = self.mu, self.var
        istd = (var + self.eps) ** -0.5
        # Where some row has |μ| > σ, x − K (K = μ rounded to x's dtype) is formed before it
        # meets dy (Σ dy·x − μ·Σ dy would cancel); the choice is made once for all rows. Every
        # sum is then taken with x − K and corrected by μ − K in float64 (K = 0 otherwise):
        # μ − K is small where x − K is formed, so the correction loses little, where
        # x − K alone would be off by up to half an ulp of μ.
        centred = _centred(mu, var)
        istd_t = istd.astype(dtype)
        mu_t = mu.astype(dtype) if centred else None
        off = mu - mu_t if centred else mu               # μ − K
        shift_t = (off * istd).astype(dtype)
        c_scale = istd * (-1 / m)                        # c = c_scale·Σ w·dy
        k_scale = c_scale * istd * istd                  # k = k_scale·Σ w·dy·(x − μ)
        dx = dx2 = None
        if need_x:
            dx, dx2 = view.new()
        step = view.back_step
        partial_dw = [None] * -(-L // step)
        partial_db = [None] * len(partial_dw)
        ones = _ones(min(step, L), dtype)

        def block(lo, hi, t):
            old = _short_buffers(m, t.size)
            try:
                rows(lo, hi, t)
            finally:
                if old is not None:
                    np.setbufsize(old)

        def rows(lo, hi, t):
            xb, dyb = x2[lo:hi], dy2[lo:hi]
            if centred:                                  # t = dy·(x − K)
                np.subtract(xb, mu_t[lo:hi, None], out=t)
                t *= dyb
            else:                                        # t = dy·x
                np.multiply(xb, dyb, out=t)
            # Σ dy·x̂ and Σ dy down the rows (products with a vector each: with the two
            # vectors as one (2, n) matrix the BLAS took 2.4× as long at (128, 512))
            if need_w:
                g = np.matmul(istd_t[lo:hi], t)
                g -= np.matmul(shift_t[lo:hi], dyb)      # − Σ ((μ − K)/std)·dy
                partial_dw[lo // step] = g
            if need_b:
                partial_db[lo // step] = np.matmul(ones[:hi - lo], dyb)
            if not need_x:
                return
            s_dy = np.matmul(dyb, w2).astype(np.float64)         # Σ w·dy
            s_dyx = np.matmul(t, w2).astype(np.float64)          # Σ w·dy·(x − K)
            s_dyx -= off[lo:hi] * s_dy                           # Σ w·dy·(x − μ)
            k = s_dyx * k_scale[lo:hi]                   # −mean(dx̂·x̂)/std²
            c = s_dy * c_scale[lo:hi]                    # −mean(dx̂)/std
            c -= k * off[lo:hi]                          # t = k·(x − K) + c − k·(μ − K)
            if centred:
                np.subtract(xb, mu_t[lo:hi, None], out=t)
                t *= k.astype(dtype)[:, None]
            else:
                np.multiply(xb, k.astype(dtype)[:, None], out=t)
            t += c.astype(dtype)[:, None]
            dxb = dx2[lo:hi]                             # dx = (w/std)·dy + t
            np.multiply(dyb, w2, out=dxb)
            dxb *= istd_t[lo:hi, None]
            dxb += t

        if L <= step:                          # one block (small batches): no slicing
            block(0, L, np.empty_like(x2))
        else:
            _row_blocks(x2, step, block)
        dw = db = None
        if need_w:
            dw = view.unparam(_add_up(partial_dw, dtype))
        if need_b:
            db = view.unparam(_add_up(partial_db, dtype))
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
    (ε > 0).

    Two paths. The plain one (``_forward_plain``, ``_backward_plain``) applies the formulas
    array by array; it serves float16, inputs of fewer than ``_MIN_VALUES`` values and planes
    (∏*) of fewer than ``_MIN_PLANE``, and a test holds the other equal to it. The plane path
    (float32, float64) sees x as N·C planes of P = ∏* values (:class:`_GroupPlanes`: C order,
    or channels last read as it lies, y and dx then channels last too) and goes over a block
    of samples at a time (:func:`_row_blocks`), as BatchNorm's blocked path does with a
    constant per plane instead of per channel: a group's μ, σ² come from sums of x and x² per
    plane added up in float64 (shifted and repeated as in :func:`_row_moments`), and

        y = a·x + (b − a·μ),   a = w/std            (per plane, (x − μ)·a + b when |μ| > σ)

    (where the sums were taken again from t = x − K, y = t·a + (b − a·(μ − K)) from t in place)

    Backward takes Σ dy and Σ dy·x per plane (matrix-vector products), from which every
    other sum follows per plane n, c: Σ dy·x̂ = (Σ dy·x − μ·Σ dy)/std, so dw and db, and
    per group mean dx̂ = Σ_c w·Σ dy / m and mean(dx̂·x̂) = Σ_c w·Σ dy·x̂ / m; then

        dx = a·dy + k·(x − μ) + c,   k = −mean(dx̂·x̂)/std²,  c = −mean(dx̂)/std

    per plane. Forward reads x once from memory and writes y; backward reads dy and x once and
    writes dx. Saved there: x, μ and σ² per group (float64). Saved on the plain path:
    x̂ (N, G, m), 1/std (N, G, 1), w.
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
        if getattr(w, "shape", None) != (C,) or getattr(b, "shape", None) != (C,):
            _check_params("group_norm", x.shape, "one value per channel", (C,), np.shape(w),
                          np.shape(b))
        self.x_shape = x.shape
        self.sum_axes = (0,) + tuple(range(2, x.ndim))
        self.planes = (x.size >= _MIN_VALUES and x.ndim >= 3 and x.dtype in _BLOCKED_DTYPES
                       and x.size // (N * C) >= _MIN_PLANE)
        if self.planes:
            return self._forward_planes(x, w, b)
        return self._forward_plain(x, w, b)

    def backward(self, dy):
        if self.planes:
            return self._backward_planes(dy)
        return self._backward_plain(dy)

    # ------------------------------------------------------------------------ plain path

    def _forward_plain(self, x, w, b):
        N, G = x.shape[0], self.num_groups
        shape = _channel_shape(x.ndim)
        self.w = np.asarray(w, x.dtype).reshape(shape)
        xhat, _, _, self.istd = _normalize(x.reshape(N, G, -1), (2,), self.eps)
        self.xhat = xhat.reshape(x.shape)
        return self.w * self.xhat + np.asarray(b, x.dtype).reshape(shape)

    def _backward_plain(self, dy):
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

    # ------------------------------------------------------------------------ plane path

    def _forward_planes(self, x, w, b):
        blas_ready()                           # its sums are matrix products
        N, C = x.shape[:2]
        G, dtype, eps = self.num_groups, x.dtype, self.eps
        view = self.view = _GroupPlanes(x, G)
        x2, per = view.x2, C // G
        self.w64 = np.asarray(w, dtype).astype(np.float64)
        b64 = np.asarray(b, dtype).astype(np.float64)
        y, y2 = view.new()
        self.mu, self.var = np.empty((N, G)), np.empty((N, G))

        def block(lo, hi, t):
            old = _short_buffers(view.inner, t.size)
            try:
                planes(lo, hi, t)
            finally:
                if old is not None:
                    np.setbufsize(old)

        def planes(lo, hi, t):
            n = hi - lo
            xb, yb = x2[lo:hi], y2[lo:hi]
            mu, var, shift = view.moments(xb, t, yb)
            self.mu[lo:hi], self.var[lo:hi] = mu, var
            a = self.w64 * ((var + eps) ** -0.5).repeat(per, axis=1)      # w/std (n, C)
            mu_c = mu.repeat(per, axis=1)
            xv, yv = view.planes(xb), view.planes(yb)
            if shift is not None:                        # y holds x − K: (x − K)·a + b − a·(μ − K)
                yv *= view.constant(a)
                yv += view.constant(b64 - a * (mu - shift).repeat(per, axis=1))
            elif _centred(mu, var):                      # (x − μ)·a + b
                np.subtract(xv, view.constant(mu_c), out=yv)
                yv *= view.constant(a)
                yv += view.constant(np.broadcast_to(b64, (n, C)))
            else:                                        # x·a + (b − a·μ)
                np.multiply(xv, view.constant(a), out=yv)
                yv += view.constant(b64 - a * mu_c)

        _row_blocks(x2, view.step, block)
        return y

    def _backward_planes(self, dy):
        blas_ready()                           # its sums are matrix products
        need_x, need_w, need_b = self.needs_input_grad
        view, w64, eps = self.view, self.w64, self.eps
        x2, step = view.x2, view.back_step
        N, C = self.x_shape[:2]
        G, dtype = self.num_groups, x2.dtype
        per = C // G
        m = per * view.P
        dy2 = view.matrix(dy)
        dx = dx2 = None
        if need_x:
            dx, dx2 = view.new()
        blocks = -(-N // step)
        sum_dw, sum_db = np.zeros((blocks, C)), np.zeros((blocks, C))

        def block(lo, hi, t):
            old = _short_buffers(view.inner, t.size)
            try:
                planes(lo, hi, t)
            finally:
                if old is not None:
                    np.setbufsize(old)

        def planes(lo, hi, t):
            n = hi - lo
            xb, dyb = x2[lo:hi], dy2[lo:hi]
            xv, dyv, tv = view.planes(xb), view.planes(dyb), view.planes(t)
            mu, var = self.mu[lo:hi], self.var[lo:hi]
            istd = (var + eps) ** -0.5
            centred = _centred(mu, var)
            mu_c = mu.repeat(per, axis=1)                # (n, C)
            # As LayerNorm's backward: x − K (K = μ in x's dtype) where some group has
            # |μ| > σ, else x (K = 0), the sums corrected by μ − K in float64.
            K = off = mu_c
            if centred:
                K = mu_c.astype(dtype)
                off = mu_c - K                           # μ − K (n, C)
                K = view.constant(K)
            s_dy = view.sums(dyb)
            if centred:                                  # Σ dy·(x − K)
                np.subtract(xv, K, out=tv)
                s_dyx = view.dots(t, dyb, t)
            else:                                        # Σ dy·x
                s_dyx = view.dots(xb, dyb, t)
            s_dyx -= off * s_dy                          # Σ dy·(x − μ)
            istd_c = istd.repeat(per, axis=1)
            g = istd_c * s_dyx                           # Σ dy·x̂ per plane
            sum_dw[lo // step], sum_db[lo // step] = g.sum(axis=0), s_dy.sum(axis=0)
            if not need_x:
                return
            mean_dxhat = (w64 * s_dy).reshape(n, G, per).sum(axis=2) / m
            mean_dxhat_xhat = (w64 * g).reshape(n, G, per).sum(axis=2) / m
            k = (-istd ** 2 * mean_dxhat_xhat).repeat(per, axis=1)
            c = (-istd * mean_dxhat).repeat(per, axis=1)
            dxv = view.planes(dx2[lo:hi])
            if centred:                                  # a·dy + k·(x − K) + c − k·(μ − K)
                np.subtract(xv, K, out=tv)
                tv *= view.constant(k)
            else:                                        # a·dy + k·x + (c − k·μ)
                np.multiply(xv, view.constant(k), out=tv)
            tv += view.constant(c - k * off)
            np.multiply(dyv, view.constant(w64 * istd_c), out=dxv)
            dxv += tv

        _row_blocks(x2, step, block)
        dw = sum_dw.sum(axis=0).astype(dtype) if need_w else None
        db = sum_db.sum(axis=0).astype(dtype) if need_b else None
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


class _GroupPlanes:
    """How GroupNorm's plane path sees x (N, C, *), P = ∏*: a matrix x2 of one row per sample
    (its values in memory order) gone over a block of samples at a time, and per block

    - ``planes``: a block's rows as the array its elementwise steps run on, and ``constant``
      one value per plane (n, C) laid out to broadcast against it;
    - ``sums`` and ``dots``: Σ per plane (n, C) in float64 of a block of rows (or of the
      products of two), in pieces added up in float64;
    - ``moments``: μ and σ² per group (n, G) in float64, as :func:`_row_moments` takes them
      (one pass of sums of x and x², again with a shift by μ where μ² > 3σ², x − K then left
      in the block of y), and that shift K or None.

    C order: x2 (N, C·P), planes (n·C, P) and a constant a column (n·C, 1); the sums are row
    sums of the planes (matrix-vector products, ``np.vecdot``). Channels last (memory
    (N, *, C), as a convolution that works channels last returns it; read as it lies, and y
    and dx laid out so too): x2 (N, P·C), planes (n, P/k, k·C) with k positions of C values
    in a row, a constant the C values of each sample tiled k times, (n, 1, k·C) (k the largest
    divisor of P with k·C ≤ ``_GROUP_TILE``: a (n, 1, C) constant would run NumPy's loops C
    values at a time); the sums are column sums down the positions, a product with a vector
    of ones per piece of positions. Any other layout is copied to C order."""

    def __init__(self, x, G):
        N, C = x.shape[:2]
        self.shape, self.G, self.C = x.shape, G, C
        self.P = P = x.size // (N * C)
        self.dtype = x.dtype
        self.last = _layout(x) == "channels-last"
        if self.last:
            self.axes = _to_last(x.ndim)
            self.x2 = x.transpose(self.axes).reshape(N, P * C)
            self.k = _largest_divisor(P, max(1, _GROUP_TILE // C))
            self.inner = self.k * C
            self.piece = _largest_divisor(P, _COLUMN_PIECE)
            self.ones = _ones(self.piece, x.dtype)
        else:
            self.x2 = np.ascontiguousarray(x).reshape(N, C * P)
            self.inner = P
            self.piece = _piece(P, _PIECE, _MIN_PIECE)
        self.step = _block_rows(N, C * P * x.itemsize, _BLOCK_BYTES)
        self.back_step = _block_rows(N, C * P * x.itemsize, _BACKWARD_BLOCK_BYTES)

    def new(self):
        """A new array shaped like x (channels last when x is) and its memory as x2."""
        if not self.last:
            a = np.empty(self.shape, self.dtype)
            return a, a.reshape(self.x2.shape)
        a = np.empty(tuple(self.shape[i] for i in self.axes), self.dtype)
        return a.transpose(np.argsort(self.axes)), a.reshape(self.x2.shape)

    def matrix(self, a):
        """An array shaped like x (any layout) laid out as x2 (a view when it already is)."""
        if self.last:
            a = a.transpose(self.axes)
        return np.ascontiguousarray(a, dtype=self.dtype).reshape(self.x2.shape)

    def planes(self, a):
        if self.last:
            return a.reshape(len(a), self.P // self.k, self.inner)
        return a.reshape(-1, self.P)

    def constant(self, values):
        if not self.last:
            return values.astype(self.dtype).reshape(-1, 1)
        n = len(values)
        tile = np.empty((n, self.k, self.C), self.dtype)
        tile[...] = values[:, None, :]
        return tile.reshape(n, 1, self.inner)

    def sums(self, a):
        n = len(a)
        if not self.last:
            return _sums_by_piece(a.reshape(n * self.C, self.P), self.piece).reshape(n, self.C)
        pieces = np.matmul(self.ones, a.reshape(-1, self.piece, self.C))
        return pieces.reshape(n, -1, self.C).sum(axis=1, dtype=np.float64)

    def dots(self, a, b, t):
        """Σ a·b per plane (n, C), through the scratch t (may be a itself)."""
        n = len(a)
        if not self.last:
            return _dots_by_piece(a.reshape(n * self.C, self.P), b.reshape(n * self.C, self.P),
                                  self.piece, t.reshape(n * self.C, self.P)).reshape(n, self.C)
        np.multiply(a, b, out=t)
        return self.sums(t)

    def moments(self, xb, t, yb):
        """(μ, σ², K) per group, K (n, G) the shift (μ of the first sums rounded to x's dtype,
        in float64) when the sums were taken again from x − K, which yb then holds (the
        block's y, not yet written; t the scratch of the sums), else None."""
        m = self.C // self.G * self.P
        mu, var = self._moments_once(xb, None, t, m, yb)
        shift = None
        if (mu * mu > 3 * var).any():                        # (NaN: no retry)
            shift = mu.astype(self.dtype).astype(np.float64)
            d, var = self._moments_once(xb, shift, t, m, yb)
            mu = shift + d
        return mu, np.maximum(var, 0.0, out=var), shift

    def _moments_once(self, xb, shift, t, m, yb):
        n, G, C = len(xb), self.G, self.C
        src = xb
        if shift is not None:
            np.subtract(self.planes(xb), self.constant(shift.repeat(C // G, axis=1)),
                        out=self.planes(yb))
            src = yb
        s = self.sums(src).reshape(n, G, -1).sum(axis=2) / m
        q = self.dots(src, src, t).reshape(n, G, -1).sum(axis=2) / m
        q -= s * s
        return s, q


# The channels-last tile of GroupNorm's plane path: at most this many values (k·C) in a row
# of a block's planes (rows of 512 or more run NumPy's loops at full speed with the buffer
# of _short_buffers).
_GROUP_TILE = 2048
# Column sums (channels last) are taken over pieces of at most this many positions, added up
# in float64 (the BLAS adds down a column one row after the other).
_COLUMN_PIECE = 128


# LayerNorm's row path: rows of at least _MIN_ROW values (GroupNorm's plane path takes
# planes of at least _MIN_PLANE values, as BatchNorm's blocked path does), and an x of at
# least _MIN_VALUES values for both. Below that the plain path, with a third as many NumPy
# calls, is as fast or faster (float32, 1 thread; forward, and forward and backward, on the
# fast path against the plain one): (1, 512) 1.2× and 1.4×, (32, 512) 1.07× and 1.12×,
# (1, 32, 32, 32) 1.0× and 1.0×, channels last 1.15× forward; from 2^16 values the fast path
# takes 0.8–0.85× ((128, 512); (2, 32, 32, 32) in C order and channels last).
_MIN_ROW = 16
_MIN_VALUES = 1 << 16

# Row sums of a block are taken in pieces of at most _PIECE values (float32 sums of a piece,
# added up per row in float64), as BatchNorm takes them per plane: a float32 dot product of
# 8192 values loses more to rounding than NumPy's pairwise sum of them did. A row is cut into
# pieces only when a divisor of its length of at least 128 values allows it (shorter pieces
# make more, slower, products).
_PIECE = 1024
_MIN_PIECE = 128


@functools.lru_cache(maxsize=64)
def _piece(m: int, piece: int, min_piece: int) -> int:
    """The length of the pieces a row of m values is summed in: the largest divisor of m of
    at most ``piece`` values when it holds at least ``min_piece`` (or m itself)."""
    d = _largest_divisor(m, piece)
    return d if d >= min(m, min_piece) else m


def _sums_by_piece(a, piece):
    """Σ_j a[i, j] (rows,) in float64 of a (rows, P): float32 (or float64) sums of pieces of
    ``piece`` values, added up in float64."""
    if piece == a.shape[1]:
        return _plane_sums(a).astype(np.float64)
    return _plane_sums(a.reshape(-1, piece)).reshape(len(a), -1).sum(axis=1, dtype=np.float64)


def _dots_by_piece(a, b, piece, scratch):
    """Σ_j a[i, j]·b[i, j] (rows,) in float64, as :func:`_sums_by_piece` (through scratch,
    see :func:`_row_dots`)."""
    rows = len(a)
    if piece == a.shape[1]:
        return _row_dots(a, b, scratch).astype(np.float64)
    d = _row_dots(a.reshape(-1, piece), b.reshape(-1, piece), scratch.reshape(-1, piece))
    return d.reshape(rows, -1).sum(axis=1, dtype=np.float64)


def _row_dots(a, b, scratch):
    """Σ_j a[i, j]·b[i, j] of two (rows, P) arrays, (rows,): ``np.vecdot`` (``_plane_dots``)
    for rows of 128 values or more; for shorter ones the product into ``scratch`` (may be a
    itself) and its row sums by the BLAS, up to 3× as fast (P = 16)."""
    if a.shape[1] >= 128:
        return _plane_dots(a, b)
    np.multiply(a, b, out=scratch)
    return _plane_sums(scratch)


def _moments_once(xb, shift, piece, t):
    """μ − shift (if given) and the biased σ² (rows,) in float64 of the rows of xb
    (rows, m), from float32/float64 sums of t = x − shift and t² per piece, added up in
    float64 (``shift`` a column of xb's dtype; t, the block's y not yet written, holds
    x − shift afterwards)."""
    m = xb.shape[1]
    src = xb if shift is None else np.subtract(xb, shift[:, None], out=t)
    if shift is not None and piece < 128:     # Σ t² of short rows goes through a scratch
        t = np.empty_like(xb)                 # (_row_dots): t = x − K is kept for y
    if piece == m:                      # a row in one piece: its sum and Σ t² divided in float64
        s = np.divide(_plane_sums(src), m, dtype=np.float64)
        q = np.divide(_row_dots(src, src, t), m, dtype=np.float64)
    else:
        s = _sums_by_piece(src, piece)
        q = _dots_by_piece(src, src, piece, t)
        s /= m
        q /= m
    q -= s * s
    return s, q


def _row_moments(xb, piece, t):
    """(μ, σ², K): μ and the biased σ² (rows,) in float64 of each row of the block xb
    (rows, m), summed in pieces of ``piece`` values through the scratch t (shaped like xb; the
    block's y serves), and the shift K (rows,) in xb's dtype when t holds x − K, else None.

    One pass of sums of x and x²: σ² = mean x² − μ², whose rounding is magnified by
    mean x² / σ² = 1 + μ²/σ². Where that factor exceeds 4 for some row (|μ| > 1.73σ; a
    uniform [0, 1) row sits on the edge, μ² = 3σ²), the block (still in cache) is summed
    again with its rows shifted by their μ rounded to x's dtype, t = x − K: the two-pass
    formula, μ = K + mean t, σ² = mean t² − (mean t)², with a factor of 1.
    """
    mu, var = _moments_once(xb, None, piece, t)
    shift = None
    if np.greater(mu * mu, 3 * var).any():               # (NaN: no retry)
        shift = mu.astype(xb.dtype)
        d, var = _moments_once(xb, shift, piece, t)
        mu = shift + d
    return mu, np.maximum(var, 0.0, out=var), shift


def _layer_norm_rows(xb, yb, w2, b2, piece, eps):
    """y = (x − μ)·(1/std)·w + b on a block of rows of x2 into yb (its scratch for the sums
    before that); returns μ and σ² of its rows (float64).

    Where the sums were taken again from t = x − K (K = μ of the first sums, rounded to x's
    dtype; see :func:`_row_moments`), yb holds t and x − μ is formed as t − (μ − K): the
    difference μ − K is small and rounds to float32 with little loss, where μ rounded to
    float32 loses up to half an ulp of μ itself (at μ = 1e4, σ = 1: 5e-4/σ in y)."""
    mu, var, shift = _row_moments(xb, piece, yb)
    dtype = xb.dtype
    istd_col = ((var + eps) ** -0.5).astype(dtype)[:, None]
    old = _short_buffers(xb.shape[1], xb.size)
    try:
        if shift is None:
            np.subtract(xb, mu.astype(dtype)[:, None], out=yb)
        else:
            yb -= (mu - shift).astype(dtype)[:, None]
        yb *= istd_col
        yb *= w2
        yb += b2
    finally:
        if old is not None:
            np.setbufsize(old)
    return mu, var


# NumPy runs a ufunc whose operands broadcast (a column of per-row constants, a row of
# per-column ones) through its buffered iterator, which with rows shorter than its buffer
# (8192 values) copies them through the buffer. With the buffer set to 512 values the same
# step on rows of 512 to 8191 values runs straight from the arrays, 1.4–1.8× as fast ((R, P)
# float32 of 2^18 values, P = 512 … 4096, 1 thread). The size is per thread (NumPy keeps it
# in a context variable), set around each block's steps and restored after.
_SHORT_BUFFER = 512


def _short_buffers(inner: int, values: int):
    """``np.setbufsize(_SHORT_BUFFER)`` when a block's rows hold ``inner`` values, between
    512 and 8191, and the block ``values`` at least 2^14 in all (below that, setting and
    restoring it costs more than it saves); returns the size to restore, or None."""
    if _SHORT_BUFFER <= inner < 8192 and values >= 1 << 14:
        return np.setbufsize(_SHORT_BUFFER)
    return None


def _add_up(partials, dtype):
    """The sum of a list of per-block partial sums, in float64 in the order of the blocks
    (fixed by the shape), as ``dtype``; a single block's own sum as it is."""
    if len(partials) == 1:
        return partials[0].astype(dtype, copy=False)
    return np.sum(partials, axis=0, dtype=np.float64).astype(dtype)


def _row_blocks(x2, step, body) -> None:
    """``body(lo, hi, t)`` over the rows of x2 a block of ``step`` rows at a time, with a
    scratch block t, the blocks split over minigrad's threads (BatchNorm's
    :func:`_over_blocks`): each block's results depend on its rows alone, and the blocks are
    fixed by the shape, so they are the same on any number of threads."""
    _over_blocks(x2, step, body, scratch=True)


class _Rows:
    """x (*, D₁, …, D_k) seen as x2 (L, m): one row of the m = D₁·…·D_k values of each
    sample, in x's memory order when x is C-contiguous in some order of its axes that keeps
    the leading axes first and outermost (a channels-last x normalised over (C, H, W): rows
    (H, W, C)), else a C-order copy. ``param`` lays out w or b like a row, ``unparam`` takes a
    row back to the normalised shape; ``new`` and ``matrix`` as :class:`_ChannelsFirst`'s."""

    def __init__(self, x, k):
        self.shape, self.k = x.shape, k
        self.order, self.inner, self.piece, self.step, self.back_step, L = _rows_geometry(
            x.shape, x.strides, x.itemsize, k, _BLOCK_BYTES, _BACKWARD_BLOCK_BYTES, _PIECE,
            _MIN_PIECE)
        if self.order is None:                      # C order (or copied to it)
            self.x2 = np.ascontiguousarray(x).reshape(L, -1)
        else:
            self.x2 = x.transpose(self.order).reshape(L, -1)

    def param(self, p):
        """w or b (D₁, …, D_k) as a row of m values in x2's order."""
        p = np.asarray(p, self.x2.dtype)
        if self.order is None:
            return p.reshape(-1)
        return np.ascontiguousarray(p.transpose(self.inner)).reshape(-1)

    def unparam(self, row):
        """A row of m values in x2's order as an array of the normalised shape, C order."""
        normalized = self.shape[len(self.shape) - self.k:]
        if self.order is None:
            return row.reshape(normalized)
        shape = tuple(normalized[i] for i in self.inner)
        return np.ascontiguousarray(row.reshape(shape).transpose(np.argsort(self.inner)))

    def matrix(self, a):
        """An array shaped like x (in any layout) laid out as x2 (a view when it already is)."""
        if self.order is not None:
            a = a.transpose(self.order)
        return np.ascontiguousarray(a, dtype=self.x2.dtype).reshape(self.x2.shape)

    def new(self):
        """A new array shaped like x, in x2's memory order, and the same memory seen as x2."""
        if self.order is None:
            a = np.empty(self.shape, self.x2.dtype)
            return a, a.reshape(self.x2.shape)
        a = np.empty(tuple(self.shape[i] for i in self.order), self.x2.dtype)
        return a.transpose(np.argsort(self.order)), a.reshape(self.x2.shape)


@functools.lru_cache(maxsize=64)
def _rows_geometry(shape, strides, itemsize, k, block_bytes, backward_block_bytes, piece,
                   min_piece):
    """(order, inner, piece, step, back_step, L) of :class:`_Rows` for an x of this shape,
    strides and itemsize normalised over its k trailing axes: the axis order in which x is
    C-contiguous with its leading axes first (None for C order, or for a layout that is copied
    to it), the order of the trailing axes in it, the length of the pieces a row is summed in,
    the rows of a block forward and backward and the rows in all (kept per shape: a network
    normalises the same few shapes at every step)."""
    ndim = len(shape)
    lead = ndim - k
    L = math.prod(shape[:lead])
    m = math.prod(shape[lead:])
    order = None
    if not _c_contiguous(shape, strides, itemsize):
        trailing = sorted(range(lead, ndim), key=lambda i: -strides[i])
        candidate = tuple(range(lead)) + tuple(trailing)
        if _c_contiguous(tuple(shape[i] for i in candidate),
                         tuple(strides[i] for i in candidate), itemsize):
            order = candidate
    inner = None if order is None else tuple(i - lead for i in order[lead:])
    return (order, inner, _piece(m, piece, min_piece),
            _block_rows(L, m * itemsize, block_bytes),
            _block_rows(L, m * itemsize, backward_block_bytes), L)


def _c_contiguous(shape, strides, itemsize) -> bool:
    """Whether an array of this shape and these strides is C-contiguous."""
    step = itemsize
    for n, s in zip(reversed(shape), reversed(strides)):
        if n != 1 and s != step:
            return False
        step *= n
    return True


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
