"""2-D max and average pooling, by views of the input (no im2col, no loop over pixels).

Notation: x (N, C, H, W); a KH×KW window moved by a stride (SH, SW) over x padded by (PH, PW);
y (N, C, OH, OW) with OH = 1 + (H + 2·PH − KH) // SH (likewise OW).

Two paths, both vectorised over the whole batch:

* Windows that tile the input (stride = kernel, the usual 2×2 pooling): x padded and cut to
  (OH·KH, OW·KW) is, without a copy, x6 of shape (N, C, OH, KH, OW, KW), window (oh, ow)
  being x6[:, :, oh, :, ow, :], and its maxima are x6.max(axis=(3, 5)) (``_window_max_plain``,
  the readable formulation, which a reduction over those small axes runs many times slower).
  First each run of KW neighbours in a window row is reduced, then each group of KH of those
  row results. The row pass runs over shifted copies of the whole flat input,
  max(a[k], a[k + CI], …) (CI = 1 in C order, see "Memory layout" below): one long
  contiguous loop per shift, though only every KW-th result is wanted. The column pass reads
  its results at the run starts through reshaped views and writes the maxima straight into y
  (``_window_max``, the path taken without a gradient, in inference). When a gradient is
  wanted, the two passes also track where the first maximum of each row and then of each
  window was (the row pass over the same shifted copies), giving one flat index per window
  (``_tiled_winner``: the offset inside the window formed in bytes, exact modulo 2⁸, then
  added to the windows' starts; channels-last runs of first-maximal columns gathered first
  as one void element each); backward is then a single scatter of dy into zeros at those
  indices. What a shape needs before x is read is kept per shape, strides and dtype
  (``_tiled_plan``), since a network pools the same shapes at every step. The row-then-column
  order gives the first maximum in row-major order for free, and both paths fold np.maximum
  over each window in that order, so they give y the same bits, ties of −0.0 and +0.0 and
  NaN included (y is NaN where a window holds one).
* Any other stride (overlapping windows, as 3×3 pooling with stride 2): a loop over the KH·KW
  offsets (i, j) of the window; for a fixed offset the elements ``xp[:, :, oh·SH + i,
  ow·SW + j]`` of every window form one strided view (N, C, OH, OW). Without a gradient the
  maxima are folded over those views. With one, each view is also compared with the running
  maximum (through one contiguous copy: ``_offsets_argmax``), which keeps each window's first
  winner as its offset t = i·KW + j, one byte per window; backward turns those into flat
  positions in dL/dx and adds dy there by one np.add.at, window after window in order
  (n, c, oh, ow) (``_scatter_to_winners``), the sums of the general path's np.bincount in the
  same order, so the same bits in float64. Both split over images by parallel_for.

The options beyond today's defaults (dilation, ceil_mode, return_indices for max pooling;
ceil_mode, count_include_pad=False and divisor_override for average pooling) take a third,
general path, so that the two above keep their speed: the same loop over the KH·KW offsets,
with offset (i, j) at ``xp[:, :, oh·SH + i·DH, ow·SW + j·DW]`` and xp padded further at the
bottom and right where ceil_mode's last window overhangs. Max pooling there keeps the offset of
each window's first maximum, turns it into PyTorch's flat index h·W + w into the input plane
(the ``return_indices`` output) and backward adds dy at those indices; average pooling divides
each window by its own divisor (PyTorch's rules, see :class:`AvgPool2d`).

Memory layout. A convolution computed channels-last returns a channels-last view: the
(N, C, H, W) transpose of a C-contiguous (N, H, W, C) array. The tiled path works on "planes"
(B, H, W, CI) in memory order, (N·C, H, W, 1) for x in C order and the view (N, H, W, C) for a
channels-last x, reducing over axes 1 and 2 of either the same way; with CI = C the C channels
of a cell sit side by side, and each run of KW neighbours is reduced over shifted copies of the
flat planes (see ``_window_max``). So a channels-last x is never transposed: y and dL/dx come out
channels-last (and dL/dy is read as it comes, transposed only when its layout is not x's), in
the same bits as for the same values in C order, since every window is reduced in the same
order. The other-stride path keeps a channels-last x's layout too (without a gradient, y
follows x's strides; with one, y and dL/dx are channels-last for a channels-last x and C order
otherwise, and each cell's sum takes its windows in the same order in either layout); the
general path returns C-order arrays. On the tiled path any other strided x is copied to C
order first.
"""

from __future__ import annotations

import functools

import numpy as np

from minigrad.cache import BoundedCache
from minigrad.function import Function
from minigrad.ops.conv import crop4, output_size, pad, pad4, pair
from minigrad.parallel import blas_ready, channels_last, parallel_for

# np.add.at adds one element at a time before NumPy 1.25 (130 ms for 2^19 float32 values at
# random places in 2^21, against 8.6 ms in NumPy 2.4); np.bincount there takes 34 ms.
_FAST_ADD_AT = np.lib.NumpyVersion(np.__version__) >= "1.25.0"


def _settings(op: str, kernel_size, stride, padding):
    """(kernel, stride, padding) as (h, w) pairs of ints, checked (``_settings_plain``), and
    kept for the very objects given when each is an int, a tuple or None: those cannot change,
    so the same three objects (a layer passes its own tuples at every call) give the same
    answer, found by their ids (the entry holds them, so their ids stay theirs). Equal values
    of other types (True for 1, 2.0 inside a tuple) are other objects, and are checked."""
    key = (op, id(kernel_size), id(stride), id(padding))
    found = _SETTINGS.get(key)
    if found is not None and found[0] is kernel_size and found[1] is stride \
            and found[2] is padding:
        return found[3]
    settings = _settings_plain(op, kernel_size, stride, padding)
    if all(type(v) in _IMMUTABLE for v in (kernel_size, stride, padding)):
        _SETTINGS.put(key, (kernel_size, stride, padding, settings))
    return settings


_SETTINGS = BoundedCache(max_bytes=None, max_entries=64)   # a few layers' settings recur
_IMMUTABLE = (int, tuple, type(None))


def _settings_plain(op: str, kernel_size, stride, padding):
    kernel = pair(op, "kernel_size", kernel_size, 1)
    stride = kernel if stride is None else pair(op, "stride", stride, 1)
    padding = pair(op, "padding", padding, 0)
    if padding[0] >= kernel[0] or padding[1] >= kernel[1]:
        # A window could then lie wholly in the padding and pool nothing but padding.
        raise ValueError(f"{op}: padding (PH, PW)={padding} must be smaller than "
                         f"kernel_size (KH, KW)={kernel}")
    return kernel, stride, padding


def _flag(op: str, name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be True or False, got {value!r}")
    return bool(value)


def _check_input(op: str, x, kernel, stride, padding):
    return _check_shape(op, np.shape(x), kernel, stride, padding)


def _check_shape(op: str, shape, kernel, stride, padding):
    """(OH, OW) for an input of this shape; raises, naming the op, for a bad shape."""
    if len(shape) != 4:
        raise ValueError(f"{op}: input must be 4-D (N, C, H, W), got x.shape={shape}")
    return output_size(op, shape, kernel, stride, padding, kernel_name="kernel_size (KH, KW)")


def _lowest(dtype):
    """A value no element can beat: −∞ for floats, the smallest integer for integers."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return -np.inf
    if dtype.kind in "iu":
        return np.iinfo(dtype).min
    return False


# ------------------------------------------------------------------------------ tiled windows


def _images(x, lo, hi, cl=None):
    """Images lo..hi−1 of x (N, C, H, W) as planes (B, H, W, CI) in memory order, C-contiguous:
    (n·C, H, W, 1) for an x in C order (a copy only if x is not C-contiguous), the view
    (n, H, W, C) for a channels-last x (``cl``: whether x is, when the caller knows). Pooling
    acts on axes 1 and 2 of either the same way."""
    if channels_last(x) if cl is None else cl:
        return x[lo:hi].transpose(0, 2, 3, 1)
    N, C, H, W = x.shape
    return np.ascontiguousarray(x[lo:hi]).reshape(-1, H, W, 1)


@functools.lru_cache(maxsize=64)
def _tiled_plan(shape, strides, dtype, kernel, padding):
    """What the tiled max pooling of an x of this shape, strides and dtype needs before it
    reads x, kept per shape (a network pools the same shapes at every step): (OH, OW), whether
    x is channels-last, CI, the padding's fill, and the shape (B·OH, KH, OW[, CI]) the row
    pass's results take for the column pass. Raises, naming the op, for a bad shape."""
    out = _check_shape("max_pool2d", shape, kernel, kernel, padding)
    cl = _channels_last_strides(shape, strides, np.dtype(dtype).itemsize)
    CI = shape[1] if cl else 1
    return out, cl, CI, _lowest(dtype), _by_window(kernel[0], out[1], CI)


def _c_contiguous(shape, strides, itemsize) -> bool:
    """NumPy's C_CONTIGUOUS flag of an array of this shape and strides: every axis longer
    than 1 steps over all the elements of the axes after it (axes of length 1 have no step
    that matters), and an array with no elements is contiguous."""
    if 0 in shape:
        return True
    step = itemsize
    for n, s in zip(reversed(shape), reversed(strides)):
        if n != 1:
            if s != step:
                return False
            step *= n
    return True


def _channels_last_strides(shape, strides, itemsize) -> bool:
    """:func:`minigrad.parallel.channels_last` of an (N, C, H, W) array from its shape and
    strides alone: not C-contiguous, and C-contiguous as (N, H, W, C)."""
    (N, C, H, W), (sN, sC, sH, sW) = shape, strides
    return (not _c_contiguous(shape, strides, itemsize)
            and _c_contiguous((N, H, W, C), (sN, sH, sW, sC), itemsize))


def _planes(shape, cl):
    """The shape (B, H, W, CI) of the planes of a whole batch of the shape (N, C, H, W)."""
    N, C, H, W = shape
    return (N, H, W, C) if cl else (N * C, H, W, 1)


def _empty(shape, dtype, cl):
    """np.empty(shape) for (N, C, H, W), channels-last when ``cl``: an array of its own (not a
    view of another, so that the tape can make it a leaf's .grad without copying it)."""
    if not cl:
        return np.empty(shape, dtype)
    N, C, H, W = shape
    step = np.dtype(dtype).itemsize
    # The ndarray constructor allocates memory of its own laid out by the strides it is
    # given: one call, where an (N, H, W, C) array, its transpose and empty_like took three.
    return np.ndarray(shape, dtype, strides=(H * W * C * step, step, W * C * step, C * step))


def _zeros(shape, dtype, cl):
    """np.zeros(shape) for (N, C, H, W), channels-last when ``cl``."""
    if not cl:
        return np.zeros(shape, dtype)
    a = _empty(shape, dtype, cl)
    a[...] = 0
    return a


def _as_planes(a, cl):
    """An (N, C, H, W) array made by ``_empty`` as its planes (B, H, W, CI), a C-contiguous
    view: the array ``_images`` reads and ``_untile`` writes."""
    return a.transpose(0, 2, 3, 1) if cl else a.reshape(_planes(a.shape, False))


def _tile(v, kernel, padding, out, fill):
    """Planes v (B, H, W, CI) padded with ``fill`` and cut to (B, OH·KH, OW·KW, CI),
    C-contiguous: a copy only if needed."""
    (KH, KW), (OH, OW), (PH, PW) = kernel, out, padding
    if PH or PW:
        B, H, W, CI = v.shape
        vp = np.full((B, H + 2 * PH, W + 2 * PW, CI), fill, v.dtype)
        vp[:, PH:PH + H, PW:PW + W] = v
        v = vp
    return np.ascontiguousarray(v[:, :OH * KH, :OW * KW])


def _untile(dvt, dv, padding):
    """dL/d(planes) from dL/d(tiled planes) dvt (B, OH·KH, OW·KW, CI), written into dv
    (B, H, W, CI): the padding's share dropped, zeros for the rows and columns no window
    reached."""
    H, W = dv.shape[1:3]
    PH, PW = padding
    hc, wc = min(H, dvt.shape[1] - PH), min(W, dvt.shape[2] - PW)    # rows, columns covered
    dv[:, :hc, :wc] = dvt[:, PH:PH + hc, PW:PW + wc]
    dv[:, hc:] = 0
    dv[:, :hc, wc:] = 0


def _window_max_plain(xt, KH, KW):  # noqa: N803
    """The maximum of each window of tiled planes xt (B, OH·KH, OW·KW, CI): (B, OH, OW, CI).
    The readable formulation of ``_window_max`` (the same values; NaN where a window holds
    one)."""
    B, HT, WT, CI = xt.shape
    return xt.reshape(B, HT // KH, KH, WT // KW, KW, CI).max(axis=(2, 4))


def _window_max(xt, KH, KW, out=None):  # noqa: N803
    """The maximum of each window of tiled planes xt (B, OH·KH, OW·KW, CI), C-contiguous:
    (B, OH, OW, CI), written into ``out`` (C-contiguous) when it is given.

    Two passes. The row pass takes, over the whole flat array a of the planes, the maxima of
    shifted copies, r[k] = max(a[k], a[k + CI], …, a[k + (KW − 1)·CI]): one long contiguous
    loop per shift (NumPy's vector loops), though only the entries at the run starts, every
    KW·CI-th group of CI, are wanted; that is faster than reducing the runs' KW strided columns
    (C order) or their rows of only CI elements (channels-last). The column pass reads r at the
    run starts of each window's KH rows, plain reshaped views of r (B·OH, KH, OW, CI), and
    takes their maxima straight into the output. Each maximum is np.maximum folded in the
    window's row-major order, as on the gradient path, so a window of tied cells gives the
    same bits (the last of them: np.maximum returns its second argument on ties, −0.0 beside
    +0.0) and a window with a NaN gives its first NaN.
    """
    B, HT, WT, CI = xt.shape
    OH, OW = HT // KH, WT // KW
    if out is None:
        out = np.empty((B, OH, OW, CI), xt.dtype)
    assert out.shape == (B, OH, OW, CI) and out.flags.c_contiguous, \
        f"_window_max: out must be C-contiguous {(B, OH, OW, CI)}, got {out.shape}"
    if out.size == 0:
        return out
    a = xt.reshape(-1)
    rows = a
    if KW > 1:
        rows = np.empty_like(a)
        L = a.size - (KW - 1) * CI          # the run starts all lie below L
        r = np.maximum(a[:L], a[CI:CI + L], out=rows[:L])
        for j in range(2, KW):
            np.maximum(r, a[j * CI:j * CI + L], out=r)
    window = rows.reshape(B * OH, KH, OW, KW * CI)
    if KH == 2:                             # _reduce_groups' one call, without its list
        np.maximum(window[:, 0, :, :CI], window[:, 1, :, :CI], out=out.reshape(B * OH, OW, CI))
    else:
        _reduce_groups(_parts(window[..., :CI]), np.maximum, out=out.reshape(B * OH, OW, CI))
    return out


def _row_runs(xt, KW, ufunc=None):  # noqa: N803
    """The first pass over tiled planes xt (B, OH·KH, OW·KW, CI): each run of KW neighbours in
    a window row reduced by ``ufunc`` (np.add), or by ``_reduce_argmax`` when ufunc is None.
    Returns (rows, col), each (B·OH·KH·OW, CI): the runs' results and, for the argmax, the
    first maximal column of each run (else None).

    Run (g, c) holds a[g·KW·CI + j·CI + c], j < KW, of the flat planes a: the reduction runs
    over the shifted copies a[j·CI:] of the whole flat array (one long contiguous loop per
    column, KW times the elements needed, where rows of only CI elements would cost NumPy a
    loop setup each, and strided columns of CI = 1 run no vector loop), and the runs' results
    are read back at the run starts g·KW·CI + c through a reshaped view. The sums of planes in
    C order (CI = 1) still reduce the KW strided columns of xt seen as (B·OH·KH·OW, KW).
    """
    B, HT, WT, CI = xt.shape
    if CI == 1 and ufunc is not None:
        return _reduce_groups(_parts(xt.reshape(-1, KW)), ufunc)[:, None], None
    a = xt.reshape(-1)
    L = a.size - (KW - 1) * CI              # the run starts all lie below L
    shifted = [a[j * CI:j * CI + L] for j in range(KW)]
    G = a.size // (KW * CI)

    def starts(flat):
        return flat.reshape(G, KW * CI)[:, :CI]

    rows = np.empty_like(a)
    if ufunc is not None:
        _reduce_groups(shifted, ufunc, out=rows[:L])
        return starts(rows), None
    col = np.empty(a.size, np.uint8 if KW <= 256 else np.intp)
    _reduce_argmax(shifted, out=rows[:L], index=col[:L])
    return starts(rows), starts(col)


def _by_window(KH, OW, CI):  # noqa: N803
    """The shape that ``_row_runs``'s results take for the second pass: (B·OH, KH, OW, CI),
    and (B·OH, KH, OW) when CI = 1 (NumPy's loops then run along OW)."""
    return (-1, KH, OW) if CI == 1 else (-1, KH, OW, CI)


def _pooled(window):
    """The shape of the second pass's result: ``window`` without its KH axis."""
    return (window[0], *window[2:])


def _parts(v):
    """The k arrays v[:, j] of v (G, k, ...), the operands of ``_reduce_groups``."""
    return [v[:, j] for j in range(v.shape[1])]


def _reduce_groups(parts, ufunc, out=None):
    """ufunc folded over the k arrays ``parts`` in order, by k − 1 elementwise calls; into
    ``out`` when it is given."""
    if len(parts) == 1:
        if out is None:
            return parts[0].copy()
        out[...] = parts[0]
        return out
    m = ufunc(parts[0], parts[1], out=out)
    for p in parts[2:]:
        ufunc(m, p, out=m)
    return m


def _reduce_argmax(parts, out=None, index=None):
    """Maximum of the k arrays ``parts`` (each of one shape) and, for each element, the first
    j reaching it: (maxima, index). The maxima go into ``out``, the indices into ``index``
    (uint8 for k ≤ 256, else intp) when they are given.

    The index is kept by arithmetic on small unsigned integers, idx + gt·(j − idx) (exact
    modulo 2⁸ as gt is 0 or 1), never by np.where, which branches on every element. A later
    element takes over only when strictly greater, so ties keep the first.
    """
    k = len(parts)
    if index is None:
        index = np.empty(parts[0].shape, np.uint8 if k <= 256 else np.intp)
    if k == 1:
        index[...] = 0
        return _reduce_groups(parts, np.maximum, out=out), index
    if k == 2:
        # bool is one byte holding 0 or 1: the comparison writes the uint8 index directly
        np.greater(parts[1], parts[0], out=index.view(np.bool_))
        return np.maximum(parts[0], parts[1], out=out), index
    gt = np.greater(parts[1], parts[0])
    m = np.maximum(parts[0], parts[1], out=out)
    index[...] = gt
    for j in range(2, k):
        np.greater(parts[j], m, out=gt)
        np.maximum(m, parts[j], out=m)
        index += gt * (index.dtype.type(j) - index)
    return m, index


@functools.lru_cache(maxsize=8)
def _window_starts(G, KH, OW, KW, base, CI=1):  # noqa: N803
    """(G, OW·CI): flat index of the first cell of window (g, ow) in channel c (at ow·CI + c)
    in the tiled planes (…, OH·KH, OW·KW, CI), counted from ``base`` (where a batch slice
    starts), read-only. The same slices recur every step."""
    block = KH * OW * KW * CI
    inner = (np.arange(0, OW * KW * CI, KW * CI, dtype=np.intp)[:, None]
             + np.arange(CI, dtype=np.intp)).reshape(-1)
    starts = np.arange(base, base + G * block, block, dtype=np.intp)[:, None] + inner
    starts.flags.writeable = False
    return starts


# From this many runs of CI elements on, gathering them as void elements pays (see _as_runs).
_MANY_RUNS = 512


def _as_runs(a, CI):  # noqa: N803
    """a (..., CI), its last axis contiguous, seen as (...) elements of CI items each (a void
    dtype): a copy between two such views moves whole runs, one element per run."""
    runs = a.view(np.dtype((np.void, CI * a.itemsize)))
    return runs.reshape(runs.shape[:-1])


def _tiled_winner(row, col, kernel, out, base, CI=1):  # noqa: N803
    """Flat index into the tiled planes (B·OH·KH·OW·KW·CI,) of each window's first maximum.

    row (G, OW, CI): the window row holding the first maximum; col (G, KH, OW, CI): the first
    maximal column of every window row (CI = 1 for planes of C order, CI = C for channels-last
    ones, whose channels are the innermost axis). The window (g, ow) of channel c starts at
    ((g·KH·OW + ow)·KW)·CI + c, its row r at r·OW·KW·CI further, and the column s of that row
    at s·CI further, s = col[g, r, ow, c]. Written into ``out`` (G·OW·CI,), every index
    shifted by ``base`` (where this batch slice starts in the tiled planes).
    """
    KH, KW = kernel
    G, OW = row.shape[:2]
    if CI > 1 and KH > 1 and G * KH * OW >= _MANY_RUNS:
        # col is read at the run starts of the flat planes: runs of CI indices, KW·CI apart,
        # which NumPy's loops would take CI at a time. Seen as one element each (a void
        # dtype of CI indices), the runs are gathered by one long copy loop (worth its fixed
        # cost, a few µs, only when there are many runs).
        runs = np.empty((G, KH, OW, CI), col.dtype)
        _as_runs(runs, CI)[...] = _as_runs(col, CI)
        col = runs
    if KH == 2 and KH * OW * KW <= 256 and row.dtype == col.dtype == np.uint8:
        # The offset in units of CI, t = c + row·OW·KW < 2·OW·KW, fits in uint8: with row 0 or
        # 1, t = col0 + row·(col1 − col0 + OW·KW), exact mod 2⁸, four passes on bytes.
        t = np.subtract(col[:, 1], col[:, 0])
        t += np.uint8(OW * KW)
        t *= row
        t += col[:, 0]
        if CI == 1:
            offset = t
        else:
            offset = t.astype(np.uint16) if KH * OW * KW * CI <= 1 << 16 else t.astype(np.intp)
            offset *= offset.dtype.type(CI)
    else:
        c = col[:, 0].copy()
        for r in range(1, KH):
            c += (row == r) * (col[:, r] - c)     # takes col[:, r] where row == r, exact mod 2⁸
        # The offset within the window's block, < KH·OW·KW·CI, in an integer type chosen here:
        # row and c may be uint8, and NumPy 1.x keeps uint8 · (a small scalar) in uint8, where
        # it wraps.
        small = np.uint16 if KH * OW * KW * CI <= np.iinfo(np.uint16).max else np.intp
        offset = row.astype(small)                # row < KH: exact
        offset *= small(OW * KW * CI)
        if CI == 1:
            offset += c.astype(small, copy=False)     # c < KW: exact
        else:
            offset += c.astype(small) * small(CI)
    np.add(_window_starts(G, KH, OW, KW, base, CI), offset.reshape(G, OW * CI),
           out=out.reshape(G, OW * CI))


# ------------------------------------------------------------------------ any stride: offsets


def _offset_slices(kernel, stride, out):
    """For each window offset (i, j) in row-major order, the index of its view of xp."""
    (KH, KW), (SH, SW), (OH, OW) = kernel, stride, out
    for i in range(KH):
        rows = slice(i, i + SH * (OH - 1) + 1, SH)
        for j in range(KW):
            yield (Ellipsis, rows, slice(j, j + SW * (OW - 1) + 1, SW))


def _pad(x, padding, value=0):
    """``conv.pad`` keeping x's layout: a channels-last x gives a channels-last padded array."""
    PH, PW = padding
    if not channels_last(x) or PH == PW == 0:
        return pad(x, padding, value)
    N, C, H, W = x.shape
    xp = np.full((N, H + 2 * PH, W + 2 * PW, C), value, x.dtype).transpose(0, 3, 1, 2)
    xp[:, :, PH:PH + H, PW:PW + W] = x
    return xp


def _unpad(dxp, padding):
    """dL/dx from dL/d(padded x): the padding's share is dropped (a copy in dxp's layout)."""
    PH, PW = padding
    if PH == 0 and PW == 0:
        return dxp
    return dxp[:, :, PH:dxp.shape[2] - PH, PW:dxp.shape[3] - PW].copy(order="K")


# ------------------------------------------------------------------ the general path's helpers


def _first_inputs(n_out, K, S, D, P, size):  # noqa: N803
    """For each output position o along one axis: the first window offset i (0 ≤ i < K) whose
    cell o·S + i·D − P lies in the input [0, size), and whether the window has one."""
    cells = np.arange(n_out)[:, None] * S + np.arange(K) * D - P
    inside = (cells >= 0) & (cells < size)
    return inside.argmax(axis=1), inside.any(axis=1)


def _pooled_size(op, x, kernel, stride, padding, dilation, ceil_mode):
    """(OH, OW) by PyTorch's rule, and the padding (top, bottom, left, right) every window needs.

    OH = ⌊(H + 2·PH − DH·(KH − 1) − 1) / SH⌋ + 1, rounded up instead with ceil_mode; then, with
    ceil_mode, a last window that would start in the bottom padding (at or past H + PH in the
    padded input) is dropped, so each window starts inside the input or the top padding.
    Raises ValueError when a window would still hold no input cell (possible with dilation).
    """
    if np.ndim(x) != 4:
        raise ValueError(f"{op}: input must be 4-D (N, C, H, W), got x.shape={np.shape(x)}")
    out, pads = [], []
    for axis, name in ((0, "row"), (1, "column")):
        size = x.shape[2 + axis]
        K, S, P, D = kernel[axis], stride[axis], padding[axis], dilation[axis]
        E = D * (K - 1) + 1
        if E > size + 2 * P:
            raise ValueError(
                f"{op}: kernel_size (KH, KW)={kernel} with dilation={dilation} spans {E} "
                f"{name}s, more than the padded input's {size + 2 * P}; x.shape={x.shape}, "
                f"padding={padding}")
        o = (size + 2 * P - E + (S - 1 if ceil_mode else 0)) // S + 1
        if ceil_mode and (o - 1) * S >= size + P:
            o -= 1
        _, has_input = _first_inputs(o, K, S, D, P, size)
        if not has_input.all():
            bad = int(np.argmin(has_input))
            raise ValueError(
                f"{op}: the window of output {name} {bad} covers only padding (kernel_size="
                f"{kernel}, stride={stride}, padding={padding}, dilation={dilation}, "
                f"ceil_mode={ceil_mode}); x.shape={x.shape}")
        out.append(o)
        pads += [P, max(0, (o - 1) * S + E - size - P)]
    return tuple(out), tuple(pads)


def _dilated_offsets(kernel, stride, dilation, out):
    """For each window offset (i, j) in row-major order, the index of its view of xp."""
    (KH, KW), (SH, SW), (DH, DW), (OH, OW) = kernel, stride, dilation, out
    for i in range(KH):
        rows = slice(i * DH, i * DH + SH * (OH - 1) + 1, SH)
        for j in range(KW):
            yield (Ellipsis, rows, slice(j * DW, j * DW + SW * (OW - 1) + 1, SW))


def _offsets_argmax(x, kernel, stride, padding, fill, out, index):
    """``_reduce_argmax`` over the window offsets' views of x padded with ``fill``: the maximum
    folded in order into ``out`` (the same calls on the same values, so the same bits as the
    fold over the views of the padded x on the inference path) and the first offset t =
    i·KW + j reaching it into ``index``.

    Each view is copied once into one contiguous buffer (``_offset_view``, straight from x,
    the padding written as ``fill``: no padded copy of x), which the comparison and the
    maximum then read (NumPy's loops run about four times as fast on contiguous operands as
    on the stride-2 views of a 3×3 stride-2 pooling, and a little faster than on the short
    rows of stride-1 views: at (64, 32, 32, 32) float32, 3×3 stride 2 took 7.6 ms where
    ``_reduce_argmax`` on the views took 10.4 ms, and 3×3 stride 1 23.8 ms where the views
    read as they are took 26.8 ms). A later view takes over where it is strictly greater, so
    the winner is the last t with v_t > max(v_0, …, v_{t−1}): index = max_t t·gt_t, one
    product and one maximum on small integers per view."""
    (KH, KW), (PH, PW) = kernel, padding
    _offset_view(x, -PH, -PW, stride, fill, out)
    index[...] = 0
    v = np.empty_like(out)
    gt = np.empty_like(out, dtype=np.bool_)
    t_gt = np.empty_like(index)
    for t in range(1, KH * KW):
        i, j = divmod(t, KW)
        _offset_view(x, i - PH, j - PW, stride, fill, v)
        np.greater(v, out, out=gt)
        np.maximum(out, v, out=out)
        np.multiply(gt, index.dtype.type(t), out=t_gt)
        np.maximum(index, t_gt, out=index)
    return out, index


def _offset_view(x, di, dj, stride, fill, dst):
    """dst[n, c, oh, ow] = x[n, c, oh·SH + di, ow·SW + dj], ``fill`` where that cell is off x
    (in the padding)."""
    (SH, SW), (H, W), (OH, OW) = stride, x.shape[2:], dst.shape[2:]
    oh0, oh1 = max(0, -(di // SH)), min(OH, (H - 1 - di) // SH + 1)    # rows on x
    ow0, ow1 = max(0, -(dj // SW)), min(OW, (W - 1 - dj) // SW + 1)
    if oh0 >= oh1 or ow0 >= ow1:
        dst[...] = fill
        return
    dst[:, :, :oh0] = fill
    dst[:, :, oh1:] = fill
    dst[:, :, oh0:oh1, :ow0] = fill
    dst[:, :, oh0:oh1, ow1:] = fill
    dst[:, :, oh0:oh1, ow0:ow1] = x[:, :, oh0 * SH + di:(oh1 - 1) * SH + di + 1:SH,
                                    ow0 * SW + dj:(ow1 - 1) * SW + dj + 1:SW]


# Outputs per block of images in the other-stride path's comparisons (see MaxPool2d.forward).
_ARGMAX_BLOCK = 1 << 18


@functools.lru_cache(maxsize=4)
def _window_origins(NC, out, stride, padding, steps, cl):  # noqa: N803
    """(N, C, OH, OW) intp, laid out as y (channels-last when ``cl``), read-only: the flat
    position in the memory of dx (strides ``steps`` in elements) of each window's offset
    (0, 0), n·sN + c·sC + (oh·SH − PH)·sH + (ow·SW − PW)·sW (off x where it is padding).
    Kept per shape: a network pools the same shapes at every step."""
    (N, C), (OH, OW), (SH, SW), (PH, PW), (sN, sC, sH, sW) = NC, out, stride, padding, steps
    origin = _empty((N, C, OH, OW), np.intp, cl)
    np.add((np.arange(N, dtype=np.intp) * sN)[:, None, None, None]
           + (np.arange(C, dtype=np.intp) * sC)[:, None, None],
           (np.arange(OH, dtype=np.intp) * SH - PH)[:, None] * sH
           + (np.arange(OW, dtype=np.intp) * SW - PW) * sW, out=origin)
    origin.flags.writeable = False
    return origin


class MaxPool2d(Function):
    """2-D max pooling: the largest element of each KH×KW window.

    Forward: y[n, c, oh, ow] = max_{i,j} xp[n, c, oh·SH + i, ow·SW + j], xp = x padded with −∞
    (padded cells never win).

    Backward: dL/dx[n, c, h, w] = Σ over the windows whose winner is x[n, c, h, w] of
    dL/dy of that window (a sum only where windows overlap, stride < kernel).

    Shapes: x (N, C, H, W) → y (N, C, OH, OW), OH = 1 + (H + 2·PH − KH) // SH.
    Ties: the gradient of a window goes to its FIRST maximal element in row-major order of the
    window (smallest i, then smallest j), as PyTorch does; the other tied elements get 0.

    A window whose maximum is −∞ (every input cell −∞) ties with its padding: its gradient
    goes to its first input cell, never to a padded one (PyTorch's choice).

    Options, as in PyTorch: ``dilation`` (DH, DW) spaces the window's cells, xp[n, c, oh·SH +
    i·DH, ow·SW + j·DW]; ``ceil_mode`` rounds OH up (the last window may overhang the padded
    input, and is dropped if it would start in the bottom padding); ``return_indices`` makes
    forward also save ``indices`` (N, C, OH, OW), the flat position h·W + w of each winner in
    its input plane, as PyTorch returns them. On the general path NaN wins its window (the
    last NaN, as in PyTorch). On the other paths y is NaN where its window holds a NaN, and
    the gradient of such a window goes to a cell found by comparisons that are false against
    NaN: on the tiled path the cell that the two passes of ">" pick (along each window row,
    then down the row maxima; it may be a number beside the NaN, as tests/test_pooling.py
    pins), on the other-stride path the window's last cell.

    Tiled windows (stride = kernel): forward also finds each window's first winner and saves
    its flat index into the padded, cut input (N·C·OH·OW integers); backward scatters dy there.
    Any other stride: forward folds the maxima over the KH·KW offsets' views and, when a
    gradient is wanted, keeps each window's first winner as its offset i·KW + j (uint8, by
    strict ">" against the running maximum, so ties keep the first); backward adds dy at
    those winners in dx by one np.add.at (where windows overlap a cell's sum takes its windows
    in order (n, c, oh, ow), as the general path does). A dL/dy that is ±∞ or NaN reaches
    only its window's winner on every path.
    Dilation, return_indices, or a ceil_mode that changes OH or OW: the general path of the
    module docstring (forward keeps the winners' flat indices; backward adds dy there).

    Layout: y and dL/dx are channels-last for a channels-last x and C-contiguous for a
    C-contiguous x (on the general path, C-contiguous always); for a channels-last x the tiled
    winners index the channels-last tiled planes, in y's memory order.
    """

    # Defaults at class level: settings() lists the new options only when they were given.
    dilation = (1, 1)
    ceil_mode = False
    return_indices = False

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                 return_indices=False):
        self.kernel_size, self.stride, self.padding = _settings(
            "max_pool2d", kernel_size, stride, padding)
        if type(dilation) is int and dilation == 1 and ceil_mode is False \
                and return_indices is False:
            return                          # the defaults, as every layer passes them
        dilation = pair("max_pool2d", "dilation", dilation, 1)
        if dilation != (1, 1):
            self.dilation = dilation
        if _flag("max_pool2d", "ceil_mode", ceil_mode):
            self.ceil_mode = True
        if _flag("max_pool2d", "return_indices", return_indices):
            self.return_indices = True

    def forward(self, x):
        x = np.asarray(x)
        self.general = False
        if self.dilation != (1, 1) or self.ceil_mode or self.return_indices:
            out, pads = _pooled_size("max_pool2d", x, self.kernel_size, self.stride,
                                     self.padding, self.dilation, self.ceil_mode)
            if (self.dilation != (1, 1) or self.return_indices
                    or out != _check_input("max_pool2d", x, self.kernel_size, self.stride,
                                           self.padding)):
                self.general = True
                return self._forward_general(x, out, pads)
        if self.stride == self.kernel_size:
            # Planes (B, H, W, CI) in memory order: the reductions run over CI channels side
            # by side for a channels-last x (and y is channels-last too), over one otherwise.
            out, cl, CI, fill, window = _tiled_plan(x.shape, x.strides, x.dtype,
                                                    self.kernel_size, self.padding)
            (KH, KW), (OH, OW) = self.kernel_size, out
            N, C = x.shape[:2]
            self.x_shape, self.out, self.cl = x.shape, out, cl
            y = _empty((N, C, OH, OW), x.dtype, cl)
            yv = _as_planes(y, cl)
            if not getattr(self, "needs_input_grad", (True,))[0]:
                H, W = x.shape[2:]
                if (H == OH * KH and W == OW * KW and self.padding == (0, 0)
                        and (cl or x.flags.c_contiguous)):
                    # The windows tile x exactly (a network's 2×2 pooling of even sizes):
                    # x's planes as they lie are the tiled planes, and a slice covering the
                    # whole batch (one thread, small batches) is taken as it is. The same
                    # calls on the same values as below, without _images and _tile.
                    xt = x.transpose(0, 2, 3, 1) if cl else x.reshape(N * C, H, W, 1)
                    if N == 1:              # parallel_for would run it whole, right here
                        _window_max(xt, KH, KW, out=yv)
                        return y

                    def images(lo, hi):
                        if hi - lo == N:
                            _window_max(xt, KH, KW, out=yv)
                        elif lo < hi:
                            _window_max(xt[lo * C // CI:hi * C // CI], KH, KW,
                                        out=yv[lo * C // CI:hi * C // CI])
                else:
                    def images(lo, hi):             # images lo..hi−1, on one thread
                        if lo == hi:
                            return
                        xt = _tile(_images(x, lo, hi, cl), self.kernel_size, self.padding,
                                   out, fill)
                        _window_max(xt, KH, KW, out=yv[lo * C // CI:hi * C // CI])

                parallel_for(N, images, work=x.size)
                return y
            # The same two reductions, each also giving the first winner's position.
            self.xt_shape = _planes((N, C, OH * KH, OW * KW), cl)
            self.winner = np.empty(N * C * OH * OW, np.intp)
            tile, pooled = C * OH * KH * OW * KW, C * OH * OW     # elements per image
            pooled_window = _pooled(window)

            def images(lo, hi):
                if lo == hi:
                    return
                xt = _tile(_images(x, lo, hi, cl), self.kernel_size, self.padding, out, fill)
                rows, col = _row_runs(xt, KW)
                _, row = _reduce_argmax(_parts(rows.reshape(window)),
                                        out=yv[lo * C // CI:hi * C // CI].reshape(pooled_window))
                _tiled_winner(row, col.reshape(window), (KH, KW),
                              self.winner[lo * pooled:hi * pooled], lo * tile, CI)

            parallel_for(N, images, work=2 * x.size)
            if self.padding != (0, 0):
                self._route_padding_ties_tiled(yv, fill)
            return y
        out = _check_input("max_pool2d", x, self.kernel_size, self.stride, self.padding)
        self.x_shape, self.out = x.shape, out
        if not getattr(self, "needs_input_grad", (True,))[0]:
            xp = _pad(x, self.padding, _lowest(x.dtype))
            views = _offset_slices(self.kernel_size, self.stride, out)
            y = xp[next(views)].copy(order="K")         # laid out like x
            for index in views:
                np.maximum(y, xp[index], out=y)
            return y
        # The same maxima, each window's first winner kept as its offset t = i·KW + j.
        self.cl = cl = channels_last(x)
        y = _empty((x.shape[0], x.shape[1], *out), x.dtype, cl)
        KK = self.kernel_size[0] * self.kernel_size[1]
        self.tap = _empty(y.shape, np.uint8 if KK <= 256 else np.intp, cl)
        tap, fill = self.tap, _lowest(x.dtype)
        # Blocks of about 2¹⁸ outputs: each offset's buffer and the running maximum stay in
        # the cache between offsets (3×3 stride 1 at (64, 32, 32, 32): 25.1 → 16.7 ms), while
        # fewer outputs would pay the per-call costs of the KH·KW offsets too often.
        block = max(1, _ARGMAX_BLOCK // max(1, y[:1].size))

        def images(lo, hi):                 # images lo..hi−1, on one thread
            for a in range(lo, hi, block):
                b = min(hi, a + block)
                _offsets_argmax(x[a:b], self.kernel_size, self.stride, self.padding, fill,
                                out=y[a:b], index=tap[a:b])

        parallel_for(x.shape[0], images, work=KK * y.size)
        self._route_special_windows(y)
        return y

    def _route_padding_ties_tiled(self, yv, fill):
        """Windows whose maximum equals the padding's fill: winner = their first input cell.
        yv: the output's planes (B, OH, OW, CI), in the winners' order."""
        stuck = np.flatnonzero(yv == fill)
        if stuck.size == 0:
            return
        N, C, H, W = self.x_shape
        (KH, KW), (OH, OW), (PH, PW) = self.kernel_size, self.out, self.padding
        CI = yv.shape[3]
        plane, oh, ow, c = np.unravel_index(stuck, yv.shape)
        first_row, _ = _first_inputs(OH, KH, KH, 1, PH, H)
        first_col, _ = _first_inputs(OW, KW, KW, 1, PW, W)
        rows, cols = oh * KH + first_row[oh], ow * KW + first_col[ow]
        self.winner[stuck] = ((plane * (OH * KH) + rows) * (OW * KW) + cols) * CI + c

    def backward(self, dy):
        if self.general:
            return self._backward_general(dy)
        KH, KW = self.kernel_size
        if self.stride == self.kernel_size:
            # Windows do not overlap: each dL/dy lands on its window's winner, all else is 0.
            # dx comes out in x's layout; dy is read in the order of the winners (y's planes),
            # a transposing copy only when dy's layout is not x's.
            dx = _empty(self.x_shape, dy.dtype, self.cl)
            dxv = _as_planes(dx, self.cl)
            whole = dxv.shape == self.xt_shape and self.padding == (0, 0)
            dxt = dxv if whole else np.empty(self.xt_shape, dy.dtype)   # the tiled planes
            N = self.x_shape[0]
            tile, pooled = dxt.size // max(N, 1), dy.size // max(N, 1)   # elements per image
            dyv = dy.transpose(0, 2, 3, 1) if self.cl else dy
            flat, dy_flat, winner = dxt.reshape(-1), dyv.reshape(-1), self.winner

            def images(lo, hi):
                flat[lo * tile:hi * tile] = 0
                flat[winner[lo * pooled:hi * pooled]] = dy_flat[lo * pooled:hi * pooled]

            parallel_for(N, images, work=dxt.size + 2 * dy.size)
            if not whole:
                _untile(dxt, dxv, self.padding)
            return dx
        return self._scatter_to_winners(dy)

    def _route_special_windows(self, y):
        """The other-stride path's winners where the running comparison cannot pick them.

        A window whose maximum is NaN keeps the last cell (no comparison with NaN holds); one
        whose maximum ties the padding's fill (all −∞, with padding) takes its first input
        cell, never a padded one. Where a NaN window's last cell lies in the padding its
        gradient is dropped: ``self.lost`` marks those windows (None when there are none)."""
        self.lost = None
        (KH, KW), (SH, SW), (PH, PW) = self.kernel_size, self.stride, self.padding
        if y.dtype.kind == "f":
            nan = np.isnan(y)
            if nan.any():
                self.tap[nan] = KH * KW - 1
                if PH or PW:
                    H, W = self.x_shape[2:]
                    OH, OW = self.out
                    row_out = np.arange(OH) * SH + KH - 1 - PH >= H      # last cell padded
                    col_out = np.arange(OW) * SW + KW - 1 - PW >= W
                    lost = nan & (row_out[:, None] | col_out[None, :])
                    if lost.any():
                        self.lost = lost
        if PH or PW:
            stuck = y == _lowest(y.dtype)
            if stuck.any():
                H, W = self.x_shape[2:]
                OH, OW = self.out
                first_row, _ = _first_inputs(OH, KH, SH, 1, PH, H)
                first_col, _ = _first_inputs(OW, KW, SW, 1, PW, W)
                first = first_row[:, None] * KW + first_col[None, :]
                np.copyto(self.tap, np.broadcast_to(first, y.shape).astype(self.tap.dtype),
                          where=stuck)

    def _scatter_to_winners(self, dy):
        """dL/dx of the other-stride path: each dL/dy added at its window's winner, the
        windows taken in order (n, c, oh, ow) for every cell, in either layout.

        The winner of window (n, c, oh, ow) at offset t = i·KW + j is the cell (n, c, oh·SH
        + i − PH, ow·SW + j − PW) of x, at flat position n·sN + c·sC + h·sH + w·sW in dx's
        memory (strides in elements): the window's start plus t·sW + ⌊t / KW⌋·(sH − KW·sW).
        One np.add.at over those positions, where overlapping windows share a winner."""
        (KH, KW), cl, tap = self.kernel_size, self.cl, self.tap
        dx = _empty(self.x_shape, dy.dtype, cl)
        sN, sC, sH, sW = (s // dx.itemsize for s in dx.strides)
        # The offset in a type that holds it (uint16 as a rule: less memory to go through),
        # formed modulo its range, which is exact as the offset itself fits.
        small = np.uint16 if (KH - 1) * sH + (KW - 1) * sW <= np.iinfo(np.uint16).max \
            else np.intp
        if KW == 1:
            offset = np.multiply(tap, sH, dtype=small)            # laid out like tap
        else:
            offset = np.multiply(tap, sW, dtype=small)
            step = sH - KW * sW                                   # may be negative
            offset += np.multiply(np.floor_divide(tap, tap.dtype.type(KW)),
                                  step % 2 ** 16 if small is np.uint16 else step, dtype=small)
        origin = _window_origins(self.x_shape[:2], self.out, self.stride, self.padding,
                                 (sN, sC, sH, sW), cl)
        if self.lost is not None:
            # +0.0 added at the image's first cell instead: no change to any sum.
            dy = np.where(self.lost, 0, dy)
            offset[np.broadcast_to(self.lost, offset.shape)] = 0
            image = np.arange(len(origin), dtype=np.intp)[:, None, None, None] * sN
            origin = np.where(self.lost, image, origin)
        flat = _as_planes(dx, cl).reshape(-1)

        def images(lo, hi):                 # windows of images lo..hi−1 write only theirs
            flat[lo * sN:hi * sN] = 0
            at = np.add(origin[lo:hi], offset[lo:hi], dtype=np.intp)
            d = dy[lo:hi]
            if cl:                          # memory order (n, OH, OW, C), as tap lies
                at, d = at.transpose(0, 2, 3, 1), d.transpose(0, 2, 3, 1)
            if _FAST_ADD_AT:
                np.add.at(flat, at.reshape(-1), d.reshape(-1))
            else:                           # the same sums, in float64, rounded once
                at -= lo * sN
                flat[lo * sN:hi * sN] = np.bincount(at.reshape(-1), d.reshape(-1),
                                                    minlength=(hi - lo) * sN)

        parallel_for(self.x_shape[0], images, work=dx.size + 3 * dy.size)
        return dx

    def backward_graph(self, dy):
        from minigrad.ops.grad_ops import max_pool2d_backward_graph

        return max_pool2d_backward_graph(self, dy)

    # ------------------------------------------------ dilation, ceil_mode, return_indices

    def _forward_general(self, x, out, pads):
        N, C, H, W = x.shape
        (KH, KW), (SH, SW), (DH, DW) = self.kernel_size, self.stride, self.dilation
        (PH, PW), (OH, OW) = self.padding, out
        fill = _lowest(x.dtype)
        xp = pad4(x, pads, fill)
        views = _dilated_offsets(self.kernel_size, self.stride, self.dilation, out)
        y = xp[next(views)].copy()
        arg = np.zeros(y.shape, np.intp)      # offset k = i·KW + j of each window's winner
        for k, index in enumerate(views, start=1):
            v = xp[index]
            takes = v > y
            if x.dtype.kind == "f":
                takes |= np.isnan(v)
            arg[takes] = k
            np.maximum(y, v, out=y)
        # A maximum equal to the padding's fill: the first input cell wins, not a padded one.
        first_row, _ = _first_inputs(OH, KH, SH, DH, PH, H)
        first_col, _ = _first_inputs(OW, KW, SW, DW, PW, W)
        stuck = y == fill
        if stuck.any():
            first = first_row[:, None] * KW + first_col[None, :]
            arg = np.where(stuck, first, arg)
        i, j = np.divmod(arg, KW)
        rows = np.arange(OH)[:, None] * SH + i * DH - PH
        cols = np.arange(OW) * SW + j * DW - PW
        self.indices = rows * W + cols        # (N, C, OH, OW), as PyTorch returns them
        self.x_shape = x.shape
        return y

    def _backward_general(self, dy):
        N, C, H, W = self.x_shape
        planes = np.arange(N * C, dtype=np.intp).reshape(N, C, 1, 1) * (H * W)
        dx = np.bincount((self.indices + planes).reshape(-1), weights=dy.reshape(-1),
                         minlength=N * C * H * W)
        return dx.reshape(self.x_shape).astype(dy.dtype, copy=False)


class AvgPool2d(Function):
    """2-D average pooling: the mean of each KH×KW window, zero padding counted.

    Forward: y[n, c, oh, ow] = (1 / (KH·KW)) Σ_{i,j} xp[n, c, oh·SH + i, ow·SW + j],
    xp = x padded with zeros; the divisor is always KH·KW (PyTorch's count_include_pad=True).

    Backward: dL/dx[n, c, h, w] = (1 / (KH·KW)) Σ over the windows containing x[n, c, h, w]
    of their dL/dy.

    Shapes: x (N, C, H, W) → y (N, C, OH, OW), OH = 1 + (H + 2·PH − KH) // SH.
    Linear: no kinks or ties. Saved: nothing but x's shape (and layout, below).

    Options, as in PyTorch: ``ceil_mode`` rounds OH up as :class:`MaxPool2d` does; window
    (oh, ow) then divides by its own d[oh, ow] instead of KH·KW: with ``count_include_pad``
    (the default) the number of its cells inside the padded input (fewer than KH·KW only
    where ceil_mode's last window overhangs), without it the number of its input cells, and
    ``divisor_override`` (a nonzero int) replaces either. Then y = Σ_window xp / d and
    dL/dx gets dL/dy / d from every window holding x. These options, when they change
    anything, take the general path of the module docstring (d is an (OH, OW) array); the
    default settings keep the paths below.

    Layout: y and dL/dx are channels-last for a channels-last x and C-contiguous for a
    C-contiguous x (on the general path, C-contiguous always). Saved: x's shape and whether
    it was channels-last.
    """

    # Defaults at class level: settings() lists the new options only when they were given.
    ceil_mode = False
    count_include_pad = True
    divisor_override = None

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
        self.kernel_size, self.stride, self.padding = _settings(
            "avg_pool2d", kernel_size, stride, padding)
        if _flag("avg_pool2d", "ceil_mode", ceil_mode):
            self.ceil_mode = True
        if not _flag("avg_pool2d", "count_include_pad", count_include_pad):
            self.count_include_pad = False
        if divisor_override is not None:
            if (not isinstance(divisor_override, (int, np.integer))
                    or isinstance(divisor_override, bool)):
                raise TypeError(f"avg_pool2d: divisor_override must be an int or None, got "
                                f"{divisor_override!r}")
            if divisor_override == 0:
                raise ValueError("avg_pool2d: divisor_override must not be zero")
            self.divisor_override = int(divisor_override)

    def forward(self, x):
        x = np.asarray(x)
        self.general = False
        if self.ceil_mode or not self.count_include_pad or self.divisor_override is not None:
            out, pads = _pooled_size("avg_pool2d", x, self.kernel_size, self.stride,
                                     self.padding, (1, 1), self.ceil_mode)
            floor = _check_input("avg_pool2d", x, self.kernel_size, self.stride, self.padding)
            if (out != floor or self.divisor_override is not None
                    or (not self.count_include_pad and self.padding != (0, 0))):
                self.general = True
                _check_float(x)
                return self._forward_general(x, out, pads)
        out = _check_input("avg_pool2d", x, self.kernel_size, self.stride, self.padding)
        _check_float(x)
        (KH, KW), (OH, OW) = self.kernel_size, out
        self.x_shape, self.out = x.shape, out
        N, C = x.shape[:2]
        self.cl = cl = channels_last(x)
        if self.stride == self.kernel_size:
            # As MaxPool2d's tiled path, on planes in memory order (channels-last stays so).
            xt = _tile(_images(x, 0, N), self.kernel_size, self.padding, out, 0)
            CI = xt.shape[3]
            y = _empty((N, C, OH, OW), x.dtype, cl)
            if N:
                rows, _ = _row_runs(xt, KW, np.add)
                window = _by_window(KH, OW, CI)
                _reduce_groups(_parts(rows.reshape(window)), np.add,
                               out=_as_planes(y, cl).reshape(_pooled(window)))
        else:
            xp = _pad(x, self.padding)
            views = _offset_slices(self.kernel_size, self.stride, out)
            y = xp[next(views)].copy(order="K")         # laid out like x
            for index in views:
                y += xp[index]
        y *= y.dtype.type(1 / (KH * KW))
        return y

    def backward(self, dy):
        if self.general:
            return self._backward_general(dy)
        (KH, KW), (OH, OW) = self.kernel_size, self.out
        N, C, H, W = self.x_shape
        PH, PW = self.padding
        if self.stride == self.kernel_size and self.cl:
            # Channels-last planes: each window's KH·KW cells get its dL/dy / (KH·KW), the C
            # channels of a cell side by side; dx is channels-last like x.
            dykv = np.multiply(dy.transpose(0, 2, 3, 1), dy.dtype.type(1 / (KH * KW)),
                               out=np.empty((N, OH, OW, C), dy.dtype))
            dx = _empty(self.x_shape, dy.dtype, True)
            dxv = _as_planes(dx, True)
            whole = dxv.shape == (N, OH * KH, OW * KW, C) and (PH, PW) == (0, 0)
            dxt = dxv if whole else np.empty((N, OH * KH, OW * KW, C), dy.dtype)
            dxt.reshape(N * OH, KH, OW, KW, C)[...] = dykv.reshape(N * OH, 1, OW, 1, C)
            if not whole:
                _untile(dxt, dxv, self.padding)
            return dx
        dyk = dy * dy.dtype.type(1 / (KH * KW))
        if self.stride == self.kernel_size:
            drows = np.empty((N * C * OH, KH, OW), dy.dtype)
            drows[...] = dyk.reshape(-1, 1, OW)
            dxt = np.empty((N, C, OH * KH, OW * KW), dy.dtype)
            columns = dxt.reshape(-1, KW)
            for j in range(KW):
                columns[:, j] = drows.reshape(-1)
            if dxt.shape == self.x_shape and (PH, PW) == (0, 0):
                return dxt
            dx = np.empty(self.x_shape, dy.dtype)
            _untile(dxt.reshape(-1, OH * KH, OW * KW, 1), _as_planes(dx, False), self.padding)
            return dx
        dxp = _zeros((N, C, H + 2 * PH, W + 2 * PW), dy.dtype, self.cl)     # laid out like x
        for index in _offset_slices(self.kernel_size, self.stride, self.out):
            dxp[index] += dyk
        return _unpad(dxp, self.padding)

    def backward_graph(self, dy):
        from minigrad.ops.grad_ops import AvgPool2dBackward

        return AvgPool2dBackward(self)(dy)

    # ------------------------------------ ceil_mode, count_include_pad, divisor_override

    def _divisor(self, x_shape, out):
        """d (OH, OW): each window's divisor by PyTorch's rule."""
        if self.divisor_override is not None:
            return np.full(out, self.divisor_override)
        counts = []
        for axis in (0, 1):
            size, K = x_shape[2 + axis], self.kernel_size[axis]
            S, P = self.stride[axis], self.padding[axis]
            start = np.arange(out[axis]) * S - P
            end = np.minimum(start + K, size + P)       # clipped to the padded input
            if not self.count_include_pad:
                start, end = np.maximum(start, 0), np.minimum(end, size)
            counts.append(end - start)
        return counts[0][:, None] * counts[1][None, :]

    def _forward_general(self, x, out, pads):
        xp = pad4(x, pads, 0)
        views = _dilated_offsets(self.kernel_size, self.stride, (1, 1), out)
        y = xp[next(views)].copy()
        for index in views:
            y += xp[index]
        self.divisor = self._divisor(x.shape, out).astype(x.dtype)
        self.x_shape, self.out, self.pads = x.shape, out, pads
        y /= self.divisor
        return y

    def _backward_general(self, dy):
        N, C, H, W = self.x_shape
        PT, PB, PL, PR = self.pads
        dyk = dy / self.divisor
        dxp = np.zeros((N, C, H + PT + PB, W + PL + PR), dy.dtype)
        for index in _dilated_offsets(self.kernel_size, self.stride, (1, 1), self.out):
            dxp[index] += dyk
        return crop4(dxp, self.pads, H, W)


def _check_float(x):
    if x.dtype.kind != "f":
        raise TypeError(f"avg_pool2d: input must be floating point, got dtype {x.dtype} "
                        f"(x.shape={x.shape})")


# Global average pooling's own path: the dtypes of its product with a vector of ones.
_GLOBAL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class AdaptiveAvgPool2d(Function):
    """2-D adaptive average pooling: y has the asked size (OH, OW) whatever x's size.

    Window (oh, ow) covers rows [⌊oh·H/OH⌋, ⌈(oh + 1)·H/OH⌉) and likewise columns (PyTorch's
    windows: they may differ in size by one, and overlap when H is not a multiple of OH).
    Each window's mean is separable, y[n, c] = A_H · x[n, c] · A_Wᵀ with A_H (OH, H) holding
    1 / (window height) on each window's rows (A_W likewise), so forward is two matrix
    products and backward their transposes:

      dL/dx[n, c] = A_Hᵀ · dL/dy[n, c] · A_W

    Shapes: x (N, C, H, W) → y (N, C, OH, OW). ``output_size`` 1 is global average pooling.
    Linear: no kinks or ties. Saved: A_H and A_W (and whether x was channels-last).

    Layout: for a channels-last x the same two products run on x's memory as it is, (N, H, W·C)
    then (N·OH, W, C) (each a batch of products of contiguous matrices, where the per-plane
    products would each read a strided plane), and y and dL/dx are channels-last. The sums are
    the same but the BLAS may order them differently, so the two layouts agree to rounding.

    Global average pooling (output 1 × 1, float32 or float64) skips the window matrices: y is
    Σ x / (H·W) per plane, one matrix-vector product with a vector of ones over x's memory as it
    lies ((N·C, H·W) · 1, or 1 · (N, H·W, C) channels-last: 6× as fast as the two products at
    (64, 64, 8, 8) float32), and dL/dx is dL/dy / (H·W) repeated over each plane, laid out as
    x was (``_global_forward``, ``_global_backward``; the products stay the plain formulation,
    and a test holds the two equal).
    """

    def __init__(self, output_size):
        # None for a side keeps the input's size there, as in PyTorch.
        if isinstance(output_size, (tuple, list)) and len(output_size) == 2 and None in output_size:
            given = pair("adaptive_avg_pool2d", "output_size",
                         tuple(1 if v is None else v for v in output_size), 1)
            self.output_size = tuple(None if v is None else g for v, g in zip(output_size, given))
        else:
            self.output_size = pair("adaptive_avg_pool2d", "output_size", output_size, 1)

    @staticmethod
    def _window_matrix(n_out, size, dtype):
        """A (n_out, size): row o averages the input cells of window o."""
        o = np.arange(n_out)
        start = (o * size) // n_out
        end = -((-(o + 1) * size) // n_out)               # ⌈(o + 1)·size / n_out⌉
        cells = np.arange(size)
        inside = (cells >= start[:, None]) & (cells < end[:, None])
        return inside / (end - start)[:, None].astype(dtype)

    def forward(self, x):
        x = np.asarray(x)
        if x.ndim != 4:
            raise ValueError(f"adaptive_avg_pool2d: input must be 4-D (N, C, H, W), got "
                             f"x.shape={x.shape}")
        if x.dtype.kind != "f":
            raise TypeError(f"adaptive_avg_pool2d: input must be floating point, got dtype "
                            f"{x.dtype} (x.shape={x.shape})")
        H, W = x.shape[2:]
        if H == 0 or W == 0:
            raise ValueError(f"adaptive_avg_pool2d: input must have at least one row and "
                             f"column, got x.shape={x.shape}")
        OH, OW = (H if v is None else v for v, H in zip(self.output_size, (H, W)))
        self.cl = channels_last(x)
        self.glob = (OH, OW) == (1, 1) and x.dtype in _GLOBAL_DTYPES and x.size > 0
        if self.glob:
            return self._global_forward(x)
        self.a_h = self._window_matrix(OH, H, x.dtype).astype(x.dtype, copy=False)
        self.a_w = self._window_matrix(OW, W, x.dtype).astype(x.dtype, copy=False)
        if self.cl:
            N, C = x.shape[:2]
            y = _empty((N, C, OH, OW), x.dtype, True)
            rows = np.matmul(self.a_h, x.transpose(0, 2, 3, 1).reshape(N, H, W * C))
            np.matmul(self.a_w, rows.reshape(N * OH, W, C),
                      out=_as_planes(y, True).reshape(N * OH, OW, C))
            return y
        return np.matmul(np.matmul(self.a_h, x), self.a_w.T)

    def backward_graph(self, dy):
        from minigrad.ops.grad_ops import AvgPool2dBackward

        return AvgPool2dBackward(self)(dy)

    def _global_forward(self, x):
        """y = Σ x / (H·W) per plane (N, C, 1, 1), by a product with a vector of ones."""
        N, C, H, W = x.shape
        P = H * W
        self.x_shape, self.dtype = x.shape, x.dtype
        ones = np.ones(P, x.dtype)
        blas_ready()
        if self.cl:
            s = np.matmul(ones, x.transpose(0, 2, 3, 1).reshape(N, P, C))
        else:
            s = np.matmul(np.ascontiguousarray(x).reshape(N * C, P), ones)
        s /= P
        return s.reshape(N, C, 1, 1)

    def _global_backward(self, dy):
        """dL/dx = dL/dy / (H·W) on every cell of its plane, laid out as x was."""
        N, C, H, W = self.x_shape
        P = H * W
        g = np.asarray(dy, self.dtype).reshape(N, C) / P
        dx = _empty(self.x_shape, self.dtype, self.cl)          # an array of its own
        if self.cl:
            np.copyto(_as_planes(dx, True).reshape(N, P, C), g.reshape(N, 1, C))
        else:
            np.copyto(dx.reshape(N * C, P), g.reshape(N * C, 1))
        return dx

    def backward(self, dy):
        if self.glob:
            return self._global_backward(dy)
        if self.cl:
            N, C, OH, OW = dy.shape
            H, W = self.a_h.shape[1], self.a_w.shape[1]
            dx = _empty((N, C, H, W), np.result_type(dy, self.a_h), True)
            columns = np.matmul(self.a_w.T, dy.transpose(0, 2, 3, 1).reshape(N * OH, OW, C))
            np.matmul(self.a_h.T, columns.reshape(N, OH, W * C),
                      out=_as_planes(dx, True).reshape(N, H, W * C))
            return dx
        return np.matmul(np.matmul(self.a_h.T, dy), self.a_w)
