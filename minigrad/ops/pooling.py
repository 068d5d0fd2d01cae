"""2-D max and average pooling, by views of the input (no im2col, no loop over pixels).

Notation: x (N, C, H, W); a KH×KW window moved by a stride (SH, SW) over x padded by (PH, PW);
y (N, C, OH, OW) with OH = 1 + (H + 2·PH − KH) // SH (likewise OW).

Two paths, both vectorised over the whole batch:

* Windows that tile the input (stride = kernel, the usual 2×2 pooling): x padded and cut to
  (OH·KH, OW·KW) is, without a copy, x6 of shape (N, C, OH, KH, OW, KW), window (oh, ow)
  being x6[:, :, oh, :, ow, :]. First each run of KW neighbours in a window row is reduced
  (x6 seen as (N·C·OH·KH·OW, KW): its KW columns are long 1-D strided arrays), then each
  group of KH of those row results (seen as (N·C·OH, KH, OW)). Every step is one NumPy call
  over long, simple loops, where a reduction over the small axes (3, 5) of x6 would run many
  times slower; the row-then-column order also gives the first maximum in row-major order for
  free. When a gradient is wanted, the same two passes also track where the first maximum
  of each row and then of each window was, giving one flat index per window; backward is then
  a single scatter of dy into zeros at those indices. Without a gradient (inference) only the
  maxima are taken.
* Any other stride: a loop over the KH·KW offsets (i, j) of the window; for a fixed offset the
  elements ``xp[:, :, oh·SH + i, ow·SW + j]`` of every window form one strided view
  (N, C, OH, OW), and backward adds each offset's share into that view of the gradient.
"""

from __future__ import annotations

import functools

import numpy as np

from minigrad.function import Function
from minigrad.ops.conv import output_size, pad, pair
from minigrad.parallel import parallel_for


def _settings(op: str, kernel_size, stride, padding):
    kernel = pair(op, "kernel_size", kernel_size, 1)
    stride = kernel if stride is None else pair(op, "stride", stride, 1)
    padding = pair(op, "padding", padding, 0)
    if padding[0] >= kernel[0] or padding[1] >= kernel[1]:
        # A window could then lie wholly in the padding and pool nothing but padding.
        raise ValueError(f"{op}: padding (PH, PW)={padding} must be smaller than "
                         f"kernel_size (KH, KW)={kernel}")
    return kernel, stride, padding


def _check_input(op: str, x, kernel, stride, padding):
    if np.ndim(x) != 4:
        raise ValueError(f"{op}: input must be 4-D (N, C, H, W), got x.shape={np.shape(x)}")
    return output_size(op, x.shape, kernel, stride, padding, kernel_name="kernel_size (KH, KW)")


def _lowest(dtype):
    """A value no element can beat: −∞ for floats, the smallest integer for integers."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return -np.inf
    if dtype.kind in "iu":
        return np.iinfo(dtype).min
    return False


# ------------------------------------------------------------------------------ tiled windows


def _tile(x, kernel, padding, out, fill):
    """x padded with ``fill`` and cut to (OH·KH, OW·KW), contiguous: a copy only if needed."""
    (KH, KW), (OH, OW) = kernel, out
    xp = pad(x, padding, fill)
    return np.ascontiguousarray(xp[:, :, :OH * KH, :OW * KW])


def _untile(dxt, x_shape, padding):
    """dL/dx from dL/d(tiled x): zeros for the cut-off rows and columns, padding dropped."""
    N, C, H, W = x_shape
    PH, PW = padding
    if dxt.shape[2:] == (H + 2 * PH, W + 2 * PW) and PH == PW == 0:
        return dxt
    dxp = np.zeros((N, C, H + 2 * PH, W + 2 * PW), dxt.dtype)
    dxp[:, :, :dxt.shape[2], :dxt.shape[3]] = dxt
    return np.ascontiguousarray(dxp[:, :, PH:PH + H, PW:PW + W])


def _first(v, out):
    """v[:, 0] as a new array, or copied into ``out``."""
    if out is None:
        return v[:, 0].copy()
    out[...] = v[:, 0]
    return out


def _reduce_groups(v, ufunc, out=None):
    """ufunc over axis 1 of v (G, k, ...) by k − 1 elementwise calls: (G, ...), into ``out``
    when it is given."""
    if v.shape[1] == 1:
        return _first(v, out)
    m = ufunc(v[:, 0], v[:, 1], out=out)
    for j in range(2, v.shape[1]):
        ufunc(m, v[:, j], out=m)
    return m


def _reduce_argmax(v, out=None):
    """Max over axis 1 of v (G, k, ...) and the first j reaching it: ((G, ...), (G, ...)).

    The index is kept by arithmetic on small unsigned integers, idx + gt·(j − idx) (exact
    modulo 2⁸ as gt is 0 or 1), never by np.where, which branches on every element. A later
    element takes over only when strictly greater, so ties keep the first. The maxima go into
    ``out`` when it is given.
    """
    k = v.shape[1]
    if k == 1:
        return _first(v, out), np.zeros(v[:, 0].shape, np.uint8)
    gt = np.greater(v[:, 1], v[:, 0])
    m = np.maximum(v[:, 0], v[:, 1], out=out)
    if k == 2:
        return m, gt.view(np.uint8)           # bool is one byte holding 0 or 1: no copy
    idx = gt.astype(np.uint8 if k <= 256 else np.intp)
    for j in range(2, k):
        np.greater(v[:, j], m, out=gt)
        np.maximum(m, v[:, j], out=m)
        idx += gt * (idx.dtype.type(j) - idx)
    return m, idx


@functools.lru_cache(maxsize=8)
def _window_starts(G, KH, OW, KW, base):  # noqa: N803
    """(G, OW): flat index of the first cell of window (g, ow) in the tiled input, counted from
    ``base`` (where a batch slice starts), read-only. The same slices recur every step."""
    starts = (np.arange(base, base + G * KH * OW * KW, KH * OW * KW, dtype=np.intp)[:, None]
              + np.arange(0, OW * KW, KW, dtype=np.intp))
    starts.flags.writeable = False
    return starts


def _tiled_winner(row, col, kernel, out, base):
    """Flat index into the tiled input (N·C·OH·KH·OW·KW,) of each window's first maximum.

    row (G, OW): the window row holding the first maximum; col (G, KH, OW): the first maximal
    column of every window row. The window (g, ow) starts at (g·KH·OW + ow)·KW, its row r at
    r·OW·KW further, and the column of that row is col[g, r, ow]. Written into ``out`` (G·OW,),
    every index shifted by ``base`` (where this batch slice starts in the tiled input).
    """
    KH, KW = kernel
    G, OW = row.shape
    c = col[:, 0].copy()
    for r in range(1, KH):
        c += (row == r) * (col[:, r] - c)     # takes col[:, r] where row == r, exact mod 2⁸
    small = np.uint16 if KH * OW * KW <= np.iinfo(np.uint16).max else np.intp
    offset = row * small(OW * KW)             # the offset within the window's block
    offset += c
    np.add(_window_starts(G, KH, OW, KW, base), offset, out=out.reshape(G, OW))


# ------------------------------------------------------------------------ any stride: offsets


def _offset_slices(kernel, stride, out):
    """For each window offset (i, j) in row-major order, the index of its view of xp."""
    (KH, KW), (SH, SW), (OH, OW) = kernel, stride, out
    for i in range(KH):
        rows = slice(i, i + SH * (OH - 1) + 1, SH)
        for j in range(KW):
            yield (Ellipsis, rows, slice(j, j + SW * (OW - 1) + 1, SW))


def _unpad(dxp, padding):
    """dL/dx from dL/d(padded x): the padding's share is dropped."""
    PH, PW = padding
    if PH == 0 and PW == 0:
        return dxp
    return np.ascontiguousarray(dxp[:, :, PH:dxp.shape[2] - PH, PW:dxp.shape[3] - PW])


class MaxPool2d(Function):
    """2-D max pooling: the largest element of each KH×KW window.

    Forward: y[n, c, oh, ow] = max_{i,j} xp[n, c, oh·SH + i, ow·SW + j], xp = x padded with −∞
    (padded cells never win).

    Backward: dL/dx[n, c, h, w] = Σ over the windows whose winner is x[n, c, h, w] of
    dL/dy of that window (a sum only where windows overlap, stride < kernel).

    Shapes: x (N, C, H, W) → y (N, C, OH, OW), OH = 1 + (H + 2·PH − KH) // SH.
    Ties: the gradient of a window goes to its FIRST maximal element in row-major order of the
    window (smallest i, then smallest j), as PyTorch does; the other tied elements get 0.

    Tiled windows (stride = kernel): forward also finds each window's first winner and saves
    its flat index into the padded, cut input (N·C·OH·OW integers); backward scatters dy there.
    Any other stride: forward only takes maxima and saves the padded input (a reference when
    there is no padding) and y; backward finds the first winners by comparing in order.
    """

    def __init__(self, kernel_size, stride=None, padding=0):
        self.kernel_size, self.stride, self.padding = _settings(
            "max_pool2d", kernel_size, stride, padding)

    def forward(self, x):
        x = np.asarray(x)
        out = _check_input("max_pool2d", x, self.kernel_size, self.stride, self.padding)
        (KH, KW), (OH, OW) = self.kernel_size, out
        N, C = x.shape[:2]
        self.x_shape, self.out = x.shape, out
        if self.stride == self.kernel_size:
            y = np.empty((N, C, OH, OW), x.dtype)
            fill = _lowest(x.dtype)
            if not getattr(self, "needs_input_grad", (True,))[0]:
                def images(lo, hi):                 # images lo..hi−1, on one thread
                    xt = _tile(x[lo:hi], self.kernel_size, self.padding, out, fill)
                    rows = _reduce_groups(xt.reshape(-1, KW), np.maximum)  # (n·C·OH·KH·OW,)
                    _reduce_groups(rows.reshape(-1, KH, OW), np.maximum,     # (n·C·OH, OW)
                                   out=y[lo:hi].reshape(-1, OW))

                parallel_for(N, images, work=x.size)
                return y
            # The same two reductions, each also giving the first winner's position.
            self.xt_shape = (N, C, OH * KH, OW * KW)
            self.winner = np.empty(N * C * OH * OW, np.intp)
            tile, pooled = C * OH * KH * OW * KW, C * OH * OW     # elements per image

            def images(lo, hi):
                xt = _tile(x[lo:hi], self.kernel_size, self.padding, out, fill)
                rows, col = _reduce_argmax(xt.reshape(-1, KW))
                _, row = _reduce_argmax(rows.reshape(-1, KH, OW), out=y[lo:hi].reshape(-1, OW))
                _tiled_winner(row, col.reshape(-1, KH, OW), (KH, KW),
                              self.winner[lo * pooled:hi * pooled], lo * tile)

            parallel_for(N, images, work=2 * x.size)
            return y
        xp = pad(x, self.padding, _lowest(x.dtype))
        views = _offset_slices(self.kernel_size, self.stride, out)
        y = xp[next(views)].copy()
        for index in views:
            np.maximum(y, xp[index], out=y)
        self.xp, self.y = xp, y
        return y

    def backward(self, dy):
        KH, KW = self.kernel_size
        if self.stride == self.kernel_size:
            # Windows do not overlap: each dL/dy lands on its window's winner, all else is 0.
            dxt = np.empty(self.xt_shape, dy.dtype)
            N, C, HT, WT = self.xt_shape
            tile, pooled = C * HT * WT, dy[0].size                 # elements per image
            flat, dy_flat, winner = dxt.reshape(-1), dy.reshape(-1), self.winner

            def images(lo, hi):
                flat[lo * tile:hi * tile] = 0
                flat[winner[lo * pooled:hi * pooled]] = dy_flat[lo * pooled:hi * pooled]

            parallel_for(N, images, work=dxt.size + 2 * dy.size)
            return _untile(dxt, self.x_shape, self.padding)
        xp, y = self.xp, self.y
        dxp = np.zeros(xp.shape, dy.dtype)
        overlap = self.stride[0] < KH or self.stride[1] < KW
        rest = dy.copy()                # dL/dy of the windows whose winner is not found yet
        offsets = list(_offset_slices(self.kernel_size, self.stride, self.out))
        for index in offsets[:-1]:
            share = rest * (xp[index] == y)
            if overlap:
                dxp[index] += share
            else:
                dxp[index] = share
            rest -= share               # exact: r − r = 0 for the winner, r − 0 = r elsewhere
        dxp[offsets[-1]] += rest        # the windows still left are won by their last cell
        return _unpad(dxp, self.padding)

    def backward_graph(self, dy):
        from minigrad.ops.grad_ops import MaxPool2dBackward

        return MaxPool2dBackward(self.kernel_size, self.stride, self.padding)(
            dy, self.inputs[0])


class AvgPool2d(Function):
    """2-D average pooling: the mean of each KH×KW window, zero padding counted.

    Forward: y[n, c, oh, ow] = (1 / (KH·KW)) Σ_{i,j} xp[n, c, oh·SH + i, ow·SW + j],
    xp = x padded with zeros; the divisor is always KH·KW (PyTorch's count_include_pad=True).

    Backward: dL/dx[n, c, h, w] = (1 / (KH·KW)) Σ over the windows containing x[n, c, h, w]
    of their dL/dy.

    Shapes: x (N, C, H, W) → y (N, C, OH, OW), OH = 1 + (H + 2·PH − KH) // SH.
    Linear: no kinks or ties. Saved: nothing but x's shape.
    """

    def __init__(self, kernel_size, stride=None, padding=0):
        self.kernel_size, self.stride, self.padding = _settings(
            "avg_pool2d", kernel_size, stride, padding)

    def forward(self, x):
        x = np.asarray(x)
        out = _check_input("avg_pool2d", x, self.kernel_size, self.stride, self.padding)
        if x.dtype.kind != "f":
            raise TypeError(f"avg_pool2d: input must be floating point, got dtype {x.dtype} "
                            f"(x.shape={x.shape})")
        (KH, KW), (OH, OW) = self.kernel_size, out
        self.x_shape, self.out = x.shape, out
        if self.stride == self.kernel_size:
            xt = _tile(x, self.kernel_size, self.padding, out, 0)
            rows = _reduce_groups(xt.reshape(-1, KW), np.add)
            y = _reduce_groups(rows.reshape(-1, KH, OW), np.add).reshape(x.shape[0],
                                                                          x.shape[1], OH, OW)
        else:
            xp = pad(x, self.padding)
            views = _offset_slices(self.kernel_size, self.stride, out)
            y = xp[next(views)].copy()
            for index in views:
                y += xp[index]
        y *= y.dtype.type(1 / (KH * KW))
        return y

    def backward(self, dy):
        (KH, KW), (OH, OW) = self.kernel_size, self.out
        N, C, H, W = self.x_shape
        PH, PW = self.padding
        dyk = dy * dy.dtype.type(1 / (KH * KW))
        if self.stride == self.kernel_size:
            drows = np.empty((N * C * OH, KH, OW), dy.dtype)
            drows[...] = dyk.reshape(-1, 1, OW)
            dxt = np.empty((N, C, OH * KH, OW * KW), dy.dtype)
            columns = dxt.reshape(-1, KW)
            for j in range(KW):
                columns[:, j] = drows.reshape(-1)
            return _untile(dxt, self.x_shape, self.padding)
        dxp = np.zeros((N, C, H + 2 * PH, W + 2 * PW), dy.dtype)
        for index in _offset_slices(self.kernel_size, self.stride, self.out):
            dxp[index] += dyk
        return _unpad(dxp, self.padding)

    def backward_graph(self, dy):
        from minigrad.ops.grad_ops import AvgPool2dBackward

        return AvgPool2dBackward(self.kernel_size, self.stride, self.padding,
                                 self.x_shape)(dy)
