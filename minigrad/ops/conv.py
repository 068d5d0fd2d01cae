"""2-D convolution as im2col + one matrix product, and the im2col/col2im helpers.

Notation: x (N, C, H, W) is a batch of N images of C channels; w (FN, C, FH, FW) holds FN
filters; the output is (N, FN, OH, OW) with OH = 1 + (H + 2·PH − FH) // SH for padding PH and
stride SH (likewise OW). K = C·FH·FW is the length of one receptive field and P = OH·OW the
number of output pixels of one image.

The column layout
-----------------
``im2col`` gives ``col`` of shape (N, K, P). Picture the textbook's figure per image: slide the
FH×FW window over the padded image, cut out the C×FH×FW block under it and flatten it in
(c, fh, fw) order; that block becomes one *column* of ``col[n]``, and the columns follow the
window positions in reading order, column p = oh·OW + ow. A filter flattened the same way,
``w.reshape(FN, K)``, is one row, so the convolution of image n is the matrix product
``w.reshape(FN, K) @ col[n]``: (FN, K) · (K, P) = (FN, P), which is already the channel-first
output (FN, OH, OW) of image n.

The textbook lays the receptive fields out as rows, (N·P, K); its product (N·P, FN) must then
be transposed to (N, FN, OH, OW), a full copy of the output. Putting them in columns per image
avoids that copy: the product over the whole batch is one ``np.matmul`` of (FN, K) with the
stack (N, K, P), and its result (N, FN, P) only needs a reshape.

Channels last
-------------
From ``Conv2d.channels_last_from`` (16) input channels on, the fast path lays the receptive
fields out as rows instead, the textbook's way, with each field flattened in (fh, fw, c)
order: col (N·P, K), and the product col · w_rows, (N·P, K) · (K, FN), gives the output as
rows (N·P, FN), that is (N, OH, OW, FN): the activations' memory is NHWC, "channels last".
It is returned as the (N, FN, OH, OW) view ``y_nhwc.transpose(0, 3, 1, 2)``, so every shape
stays PyTorch's NCHW; only the strides change (PyTorch calls this memory format
``channels_last``). Why it pays when there are many channels:

- a window row of a padded NHWC image is FW·C values in a row, so im2col copies runs of
  48–192 values (C = 16–64, FW = 3) instead of runs of OW, each as one item of a void
  dtype (one ``memcpy``, not a loop over the values);
- the images go in blocks of at most 2 MiB of columns (``Conv2d.nhwc_block_bytes``), at least
  two and an even number of them, of sizes that differ by at most one image (so that two
  threads get the same work), each block
  unfolded into a buffer of the thread's own and multiplied at once, so the product reads its
  columns from the cache and no array of the whole batch's columns is written to memory
  (smaller units, bands of output rows whose columns fit in L2, or products cut into small
  pieces, cost more in calls than they save in cache misses: docs/ops.md has the figures);
- backward unfolds each block again for dL/dw = Σ_blocks colᵀ · dy, (K, n·P) · (n·P, FN): at
  these sizes that costs less than writing the columns to memory in forward and reading them
  back (DeepConvNet's are 110 MB per step at batch 100);
- the element-wise ops, pooling and BatchNorm that follow keep the NHWC memory of their input,
  so the next convolution's input and the gradients reaching it need no transposing copy;
- at batch 1 a layer's product takes only 25–60 µs, so what surrounds it counts: the weight
  rows (a transposing copy that reads w with a stride of C·FH·FW values, 28 µs for 64×64×3×3
  filters) are kept from one call to the next while the filters' bytes stay the same
  (:class:`_WeightRows`, which compares them), and a block is unfolded into memory its
  thread keeps, one array for all the layers, through views kept per shape
  (:class:`_Block` in :class:`_Scratch`), instead of arrays and views made anew; the forward
  pass, on one thread or many, backward's dL/dw and dL/dx by convolution (which unfolds dy)
  share that one unfold; the checks of a call and the sizes worked out from its shapes are
  kept per combination of shapes, dtypes and settings (:class:`_Plan`), and a single block
  runs without ``parallel_for``. The arrays and products are the same, so the results are
  the same to the bit.

With few channels (the input layer, C = 1) the runs would be short and the per-image layout
stays; its padded input and window view are kept per thread and shape
(:meth:`_Scratch.windows`) and its filters with the bias column in :class:`_WeightRows`, so a
batch-1 call pays for one copy of x instead of padding it and building the view anew.
The blocks are fixed by the shapes alone, not by the number of threads, and the blocks'
sums for dL/dw are added in order, so the result is the same to the bit on any number of
threads.

The general path
----------------
Dilation, groups and asymmetric padding (``padding='same'`` with an even kernel) take a second,
plainer path, so that the default one above keeps its speed: the padded input (PT rows above,
PB below, PL columns left, PR right) is viewed as (N, C, FH, FW, OH, OW) with the kernel's
offsets DH rows and DW columns apart instead of one, ``view[n, c, i, j, oh, ow] = xp[n, c,
oh·SH + i·DH, ow·SW + j·DW]``; one copy makes it col (N, G, K/G, P), K/G = (C/G)·FH·FW,
and group g is the product of its (FN/G, K/G) filters with its (K/G, P) columns, all groups
and images in one ``np.matmul``. Backward is the same products transposed and a dilated
col2im.

Three cases of it have paths of their own, which that general path checks in the tests:

- depthwise (groups = C = FN, one filter per channel), at any stride: its col (N, G, K/G, P)
  would be FH·FW rows a channel, and the product a batch of (1, FH·FW) · (FH·FW, P) ones; the
  path builds exactly those rows, a block of images at a time in the cache, from each
  padded plane with its Hp·Wp values in a row (:class:`_Planes`), where a tap's windows are
  one run of OH·Wp values: one ``memcpy`` a run, Wp − OW dropped columns a row; at stride
  (SH, SW) the plane is first split into SH·SW phase planes xp[r::SH, q::SW], in which a
  tap's windows are again one run;
- other groups with enough columns a group (``Conv2d.grouped_from``): G convolutions of one
  group each, each on the path its own shapes take (the fast path, from 16 channels a group);
- 1×1 at stride 1 without padding, x channels first: x's own memory is the columns, y[n] =
  w (FN, C) · x[n] (C, H·W), with no unfold at all.

:class:`ConvTranspose2d` is built from the same pieces the other way round; without groups or
dilation it runs on the fast path above, its forward pass as that path's dL/dx and its
backward (from batch 4) as its forward pass and dL/dw.
"""

from __future__ import annotations

import functools
import math
import os
import threading

import numpy as np
from numpy.lib.stride_tricks import as_strided

from minigrad.cache import BoundedCache
from minigrad.function import Function
from minigrad.parallel import blas_ready, channels_last, parallel_for

# A convolution's matrix products count towards its split among the threads (parallel_for's
# ``work``, in array elements) at one element per FLOPS_PER_ELEMENT floating-point operations.
# Counting the elements alone (the columns unfolded, the output written) missed the products:
# DeepConvNet's 3×3 layers at batch 8 touch 0.2-1.0 million elements, under two slices'
# worth, yet take 0.3-0.7 ms on one thread, mostly in their products. On one thread here an
# element unfolded costs about what 19 operations of the product cost (a fit over those
# layers' times); 32 splits the three largest at batch 8 (DeepConvNet's batch-8 forward pass
# 0.84x the time on two threads) and none at batch 4, where 16 split them and lost 2-4%.
FLOPS_PER_ELEMENT = 32


def _work(elements: int, flops: int) -> int:
    """A convolution's work for ``parallel_for``: the elements its slices read and write, and
    its products' floating-point operations at ``FLOPS_PER_ELEMENT`` to an element."""
    return elements + flops // FLOPS_PER_ELEMENT


def _view(a: np.ndarray, shape, strides, writeable: bool = True) -> np.ndarray:
    """A strided view of a's memory, as ``numpy.lib.stride_tricks.as_strided`` gives it: over
    a C-contiguous ``a`` (every caller's case but a user's odd array) through the ndarray
    constructor, about ten times cheaper, which matters at batch 1."""
    if not a.flags.c_contiguous:
        return as_strided(a, shape, strides, writeable=writeable)
    v = np.ndarray(shape, a.dtype, a, 0, strides)
    if not writeable:
        v.flags.writeable = False
    return v


def pair(op: str, name: str, value, minimum: int) -> tuple[int, int]:
    """``value`` (an int or an (h, w) pair of ints) as an (h, w) tuple, each ≥ ``minimum``.

    >>> pair("conv2d", "stride", 2, 1)
    (2, 2)
    >>> pair("conv2d", "padding", (1, 0), 0)
    (1, 0)
    """
    if type(value) is tuple and len(value) == 2 and type(value[0]) is type(value[1]) is int \
            and min(value) >= minimum:
        return value                                    # already a valid pair: the usual case
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        hw = (int(value), int(value))
    elif (isinstance(value, (tuple, list)) and len(value) == 2
          and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)):
        hw = (int(value[0]), int(value[1]))
    else:
        raise TypeError(f"{op}: {name} must be an int or an (h, w) pair of ints, "
                        f"got {value!r}")
    if min(hw) < minimum:
        what = "positive" if minimum == 1 else f"at least {minimum}"
        if minimum == 0:
            what = "non-negative"
        raise ValueError(f"{op}: {name} must be {what}, got {value!r}")
    return hw


def output_size(op: str, x_shape, kernel: tuple[int, int], stride: tuple[int, int],
                padding: tuple[int, int], kernel_name: str = "kernel (FH, FW)",
                ) -> tuple[int, int]:
    """(OH, OW) = (1 + (H + 2·PH − FH) // SH, 1 + (W + 2·PW − FW) // SW).

    Raises ValueError, naming ``op``, when the kernel does not fit in the padded input.

    >>> output_size("conv2d", (1, 1, 28, 28), (5, 5), (1, 1), (0, 0))
    (24, 24)
    """
    H, W = x_shape[-2:]
    (FH, FW), (SH, SW), (PH, PW) = kernel, stride, padding
    if FH > H + 2 * PH or FW > W + 2 * PW:
        raise ValueError(
            f"{op}: {kernel_name}=({FH}, {FW}) is larger than the padded input "
            f"(H + 2·PH, W + 2·PW)=({H + 2 * PH}, {W + 2 * PW}); x.shape={tuple(x_shape)}, "
            f"padding=({PH}, {PW})")
    return 1 + (H + 2 * PH - FH) // SH, 1 + (W + 2 * PW - FW) // SW


def pad(x: np.ndarray, padding: tuple[int, int], value=0) -> np.ndarray:
    """x (N, C, H, W) with PH rows of ``value`` above and below and PW columns left and right.

    Returns ``x`` itself when there is no padding.
    """
    PH, PW = padding
    if PH == 0 and PW == 0:
        return x
    N, C, H, W = x.shape
    xp = np.full((N, C, H + 2 * PH, W + 2 * PW), value, dtype=x.dtype)
    xp[:, :, PH:PH + H, PW:PW + W] = x
    return xp


def window_view(xp: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
                out: tuple[int, int]) -> np.ndarray:
    """The read-only view (N, C, FH, FW, OH, OW) of the padded input xp (N, C, Hp, Wp) with
    ``view[n, c, i, j, oh, ow] = xp[n, c, oh·SH + i, ow·SW + j]``: no copy."""
    N, C = xp.shape[:2]
    (FH, FW), (SH, SW), (OH, OW) = kernel, stride, out
    sN, sC, sH, sW = xp.strides
    return _view(xp, (N, C, FH, FW, OH, OW), (sN, sC, sH, sW, sH * SH, sW * SW),
                 writeable=False)


def _unfold_into(col: np.ndarray, view: np.ndarray) -> None:
    """``np.copyto(col.reshape(view.shape), view)``: col (n, C·FH·FW, OH·OW), a block of the
    per-image columns, from the window view (n, C, FH, FW, OH, OW), so that
    ``col[m, (c·FH + i)·FW + j, oh·OW + ow] = view[m, c, i, j, oh, ow]``.

    For several images, when the view's last axis is one value apart (stride 1 along the
    width), each run of OW values is in a row in both, and is copied as one item of a void
    dtype, one ``memcpy`` instead of NumPy's loop over the values (1 → 16 channels at 28×28,
    batch 8: 7.9 µs instead of 17.9). For one image the four views that takes cost what the
    copy saves, and the plain copy stays. A copy moves bytes: the same col either way.
    """
    dst = col.reshape(view.shape)
    it = view.itemsize
    if len(view) > 1 and view.strides[5] == it and dst.strides[5] == it:
        run = _void(view.shape[5] * it)
        np.copyto(dst.view(run)[..., 0], view.view(run)[..., 0])
    else:
        np.copyto(dst, view)


_voids: dict = {}


def _void(nbytes: int) -> np.dtype:
    """The void dtype of ``nbytes`` bytes (kept: making one costs 0.9 µs)."""
    run = _voids.get(nbytes)
    if run is None:
        run = _voids[nbytes] = np.dtype((np.void, nbytes))
    return run


def _check_x(op: str, x) -> None:
    if np.ndim(x) != 4:
        raise ValueError(f"{op}: input must be 4-D (N, C, H, W), got x.shape={np.shape(x)}")


def im2col(x: np.ndarray, FH: int, FW: int, stride=1, padding=0) -> np.ndarray:  # noqa: N803
    """Unfold the FH×FW windows of a batch of images into columns (see the module docstring).

    ``col[n, (c·FH + i)·FW + j, oh·OW + ow] = xp[n, c, oh·SH + i, ow·SW + j]`` where xp is x
    zero-padded by PH rows and PW columns on each side.

    Args:
        x: images (N, C, H, W).
        FH, FW: the window (kernel) height and width.
        stride: an int or an (SH, SW) pair.
        padding: an int or a (PH, PW) pair of zeros added on each side.

    Returns:
        col (N, C·FH·FW, OH·OW), a new array of x's dtype.

    >>> x = np.arange(9.0).reshape(1, 1, 3, 3)
    >>> im2col(x, 2, 2)[0]
    array([[0., 1., 3., 4.],
           [1., 2., 4., 5.],
           [3., 4., 6., 7.],
           [4., 5., 7., 8.]])
    """
    x = np.asarray(x)
    _check_x("im2col", x)
    kernel = pair("im2col", "kernel (FH, FW)", (FH, FW), 1)
    stride = pair("im2col", "stride", stride, 1)
    padding = pair("im2col", "padding", padding, 0)
    OH, OW = output_size("im2col", x.shape, kernel, stride, padding)
    N, C = x.shape[:2]
    view = window_view(pad(x, padding), kernel, stride, (OH, OW))
    return view.reshape(N, C * kernel[0] * kernel[1], OH * OW)  # reshape copies the view


def col2im(col: np.ndarray, x_shape, FH: int, FW: int, stride=1,  # noqa: N803
           padding=0) -> np.ndarray:
    """The adjoint of :func:`im2col`: add each column back onto the window it came from.

    Where windows overlap, their values add up; the padding is cut off. This is how a
    gradient with respect to ``col`` becomes one with respect to x.

    Args:
        col: (N, C·FH·FW, OH·OW), laid out as :func:`im2col` gives it.
        x_shape: (N, C, H, W) of the images.
        FH, FW, stride, padding: as given to :func:`im2col`.

    Returns:
        (N, C, H, W), of col's dtype.

    >>> x = np.arange(9.0).reshape(1, 1, 3, 3)
    >>> col2im(np.ones((1, 4, 4)), x.shape, 2, 2)[0, 0]   # how many windows cover each pixel
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    """
    x_shape = tuple(int(n) for n in x_shape)
    if len(x_shape) != 4:
        raise ValueError(f"col2im: x_shape must be 4-D (N, C, H, W), got {x_shape}")
    kernel = pair("col2im", "kernel (FH, FW)", (FH, FW), 1)
    stride = pair("col2im", "stride", stride, 1)
    padding = pair("col2im", "padding", padding, 0)
    OH, OW = output_size("col2im", x_shape, kernel, stride, padding)
    N, C, H, W = x_shape
    expected = (N, C * kernel[0] * kernel[1], OH * OW)
    if np.shape(col) != expected:
        raise ValueError(f"col2im: col must have shape (N, C·FH·FW, OH·OW)={expected} for "
                         f"x_shape={x_shape}, kernel=({FH}, {FW}), stride={stride}, "
                         f"padding={padding}; got col.shape={np.shape(col)}")
    return _col2im(np.asarray(col), x_shape, kernel, stride, padding, (OH, OW))


def _col2im(col, x_shape, kernel, stride, padding, out, dx=None):
    """col2im without argument checks (the conv backward's path); into ``dx`` when given."""
    N, C, H, W = x_shape
    (FH, FW), (SH, SW), (PH, PW), (OH, OW) = kernel, stride, padding, out
    col6 = col.reshape(N, C, FH, FW, OH, OW)
    if dx is not None and not (PH or PW):
        dxp = dx
        dxp.fill(0)
    else:
        dxp = np.zeros((N, C, H + 2 * PH, W + 2 * PW), dtype=col.dtype)
    # One strided add per kernel offset (FH·FW of them): every window position at once.
    for i in range(FH):
        rows = slice(i, i + SH * (OH - 1) + 1, SH)
        for j in range(FW):
            dxp[:, :, rows, j:j + SW * (OW - 1) + 1:SW] += col6[:, :, i, j]
    if PH or PW:
        if dx is not None:
            dx[...] = dxp[:, :, PH:PH + H, PW:PW + W]
            return dx
        return np.ascontiguousarray(dxp[:, :, PH:PH + H, PW:PW + W])
    return dxp


# --------------------------------------------------------------- the general (plain) path


def _groups(op: str, groups) -> int:
    if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool):
        raise TypeError(f"{op}: groups must be an int, got {groups!r}")
    if groups < 1:
        raise ValueError(f"{op}: groups must be positive, got {groups}")
    return int(groups)


def _check_kernel(op: str, name: str, w_shape) -> None:
    """A kernel with no element would make the op return its bias alone: refuse it."""
    if 0 in w_shape[1:]:
        raise ValueError(f"{op}: {name}={tuple(w_shape)} has no elements per filter; the "
                         f"kernel and its channels must be non-empty")


def _conv_pads(padding, kernel, dilation) -> tuple[int, int, int, int]:
    """(PT, PB, PL, PR): rows above and below, columns left and right.

    'same' pads D·(F − 1) in all, as PyTorch does: half (rounded down) before, the rest after.
    """
    if padding == "same":
        (FH, FW), (DH, DW) = kernel, dilation
        th, tw = DH * (FH - 1), DW * (FW - 1)
        return th // 2, th - th // 2, tw // 2, tw - tw // 2
    PH, PW = padding
    return PH, PH, PW, PW


def pad4(x: np.ndarray, pads, value=0) -> np.ndarray:
    """x (N, C, H, W) with (PT, PB, PL, PR) rows/columns of ``value`` around it."""
    PT, PB, PL, PR = pads
    if not (PT or PB or PL or PR):
        return x
    N, C, H, W = x.shape
    xp = np.full((N, C, H + PT + PB, W + PL + PR), value, dtype=x.dtype)
    xp[:, :, PT:PT + H, PL:PL + W] = x
    return xp


def crop4(xp: np.ndarray, pads, H: int, W: int) -> np.ndarray:  # noqa: N803
    """The H×W image inside xp padded by (PT, PB, PL, PR): the adjoint of :func:`pad4`."""
    PT, _, PL, _ = pads
    if xp.shape[2:] == (H, W):
        return xp
    return np.ascontiguousarray(xp[:, :, PT:PT + H, PL:PL + W])


def dilated_output_size(op: str, x_shape, kernel, stride, pads, dilation,
                        kernel_name: str = "kernel (FH, FW)") -> tuple[int, int]:
    """(OH, OW) = (1 + (H + PT + PB − DH·(FH − 1) − 1) // SH, likewise for W)."""
    H, W = x_shape[-2:]
    (FH, FW), (SH, SW), (PT, PB, PL, PR), (DH, DW) = kernel, stride, pads, dilation
    EH, EW = DH * (FH - 1) + 1, DW * (FW - 1) + 1
    if EH > H + PT + PB or EW > W + PL + PR:
        raise ValueError(
            f"{op}: {kernel_name}=({FH}, {FW}) with dilation=({DH}, {DW}) spans ({EH}, {EW}), "
            f"more than the padded input ({H + PT + PB}, {W + PL + PR}); "
            f"x.shape={tuple(x_shape)}, padding (top, bottom, left, right)={tuple(pads)}")
    return 1 + (H + PT + PB - EH) // SH, 1 + (W + PL + PR - EW) // SW


def dilated_window_view(xp: np.ndarray, kernel, stride, dilation, out) -> np.ndarray:
    """The read-only view (N, C, FH, FW, OH, OW) with
    ``view[n, c, i, j, oh, ow] = xp[n, c, oh·SH + i·DH, ow·SW + j·DW]``: no copy.

    The caller makes sure xp holds every cell the view reaches: (OH − 1)·SH + (FH − 1)·DH rows.
    """
    N, C, Hp, Wp = xp.shape
    (FH, FW), (SH, SW), (DH, DW), (OH, OW) = kernel, stride, dilation, out
    assert (OH - 1) * SH + (FH - 1) * DH < Hp and (OW - 1) * SW + (FW - 1) * DW < Wp, \
        f"window view out of bounds: xp.shape={xp.shape}"
    sN, sC, sH, sW = xp.strides
    return as_strided(xp, (N, C, FH, FW, OH, OW),
                      (sN, sC, sH * DH, sW * DW, sH * SH, sW * SW), writeable=False)


def dilated_col2im(col6: np.ndarray, padded_shape, stride, dilation) -> np.ndarray:
    """The adjoint of :func:`dilated_window_view`: col6 (N, C, FH, FW, OH, OW) added back onto
    a zero array of ``padded_shape`` (N, C, Hp, Wp), one strided add per kernel offset."""
    _, _, FH, FW, OH, OW = col6.shape
    (SH, SW), (DH, DW) = stride, dilation
    dxp = np.zeros(padded_shape, dtype=col6.dtype)
    for i in range(FH):
        rows = slice(i * DH, i * DH + SH * (OH - 1) + 1, SH)
        for j in range(FW):
            dxp[:, :, rows, j * DW:j * DW + SW * (OW - 1) + 1:SW] += col6[:, :, i, j]
    return dxp


class _Recycled:
    """Column arrays of convolutions whose backward pass is over, kept for the next forward
    pass that asks for the same shape and dtype, the most recent first, at most ``max_bytes``
    in all (the oldest are let go first).

    A fresh array of tens of MB costs the kernel one page fault per 4 KiB page on first touch:
    the columns of DeepConvNet's six convolutions, 110 MB at batch 100, made new at every step,
    cost about a fifth of its training time. Recycled, they are written where memory is already
    mapped. An op hands its columns back only once the graph no longer needs them (``_release``
    after backward, or at once when no gradient is wanted), so no array is ever shared.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes, self.bytes = max_bytes, 0
        self.arrays: list[np.ndarray] = []
        self.lock = threading.Lock()

    # Below this size the C library serves an array from memory already mapped (glibc's
    # malloc maps a block of its own only from 128 KiB on): such arrays are made anew, not
    # pooled, which spares a batch-1 call the lock and the search (1 µs of an input layer's 30).
    min_bytes = 1 << 17

    def empty(self, shape, dtype) -> np.ndarray:
        shape, dtype = tuple(shape), np.dtype(dtype)
        if math.prod(shape) * dtype.itemsize < self.min_bytes:
            return np.empty(shape, dtype=dtype)
        with self.lock:
            for i in range(len(self.arrays) - 1, -1, -1):
                a = self.arrays[i]
                if a.shape == shape and a.dtype == dtype:
                    del self.arrays[i]
                    self.bytes -= a.nbytes
                    return a
        return np.empty(shape, dtype=dtype)

    def give(self, a: np.ndarray) -> None:
        if a.nbytes > self.max_bytes or a.nbytes < self.min_bytes:
            return
        with self.lock:
            self.arrays.append(a)
            self.bytes += a.nbytes
            while self.bytes > self.max_bytes:
                self.bytes -= self.arrays.pop(0).nbytes

    def clear(self) -> None:
        with self.lock:
            self.arrays, self.bytes = [], 0


_recycled = _Recycled(256 << 20)


class _Plan:
    """What ``Conv2d.forward`` works out from the shapes, dtypes and settings of a call alone,
    kept (in ``_plans``, keyed by them) for the next call that has the same: that the checks
    passed, whether the general path runs (``general``, with the padding ``pads`` (PT, PB, PL,
    PR)), the even padding ``pad`` (PH, PW), the output's (OH, OW) ``out``, the product's
    ``dtype``, and whether the channels-last path runs (``nhwc``), with, for it, whether x is
    a channels-last view (``x_nhwc``), the blocks' ``bounds``, the key of the largest block
    in :class:`_Scratch` (``block``) and the op's ``work`` for ``parallel_for``.

    At batch 1 the checks and these sizes cost about as much as a layer's unfold: a look-up
    keyed by the shapes replaces them. The key holds everything they are computed from (x's
    strides too, for ``x_nhwc``; the two class settings the path and the blocks depend on), so
    a plan found is the one that the call would compute; a plan is never changed once kept.
    """

    __slots__ = ("general", "pads", "pad", "out", "dtype", "nhwc", "x_nhwc", "bounds",
                 "block", "work", "special")

    def __init__(self, general: bool, pads, pad=None, out=None, dtype=None,
                 nhwc: bool = False) -> None:
        self.general, self.pads, self.pad, self.out = general, pads, pad, out
        self.dtype, self.nhwc, self.special = dtype, nhwc, None


_plans = BoundedCache(max_bytes=None, max_entries=256)

# Conv2d's settings: the ids of the four objects given → (those objects, their checked
# values); see Conv2d.__init__.
_checked_settings: dict = {}


def _libc_memcmp():
    """The C library's ``memcmp(a, b, n)`` through ctypes, called with ``ctypes.c_void_p``
    and ``ctypes.c_size_t`` arguments made once (0.35 µs a call, against 0.49 with
    ``argtypes`` converting ints), or None where it cannot be loaded (then
    :class:`_WeightRows` compares copies of the bytes instead)."""
    try:
        import ctypes
        import ctypes.util

        name = None if os.name == "posix" else ctypes.util.find_library("c") or "msvcrt"
        memcmp = ctypes.CDLL(name).memcmp
        memcmp.restype = ctypes.c_int
        return memcmp
    except (OSError, AttributeError, TypeError):
        return None


_memcmp = _libc_memcmp()


class _WeightRows:
    """The channels-last weight rows of the filters last seen, kept for the next forward pass
    with the same filters: ``w_rows[(i, j, c), f] = w[f, c, i, j]``, with the bias as its
    last row, in the product's dtype.

    The transposing copy reads w with a stride of C·FH·FW values: 28 µs for DeepConvNet's
    64×64×3×3 filters, as long as that layer's product at batch 1. An entry holds a copy of
    the bytes of w and b it was made from and is used only when the filters' bytes are the
    same now, so a change in place (an optimiser's step, ``w.data[...] = ...``, a plain
    array written to) gives new rows. The entries are keyed by the filters' array (its id)
    and dtype, and w's shape and dtype must be the entry's. Small filters compare
    ``w.tobytes()`` with the kept bytes (an entry whose array has gone then matches only an
    array with the same bytes). From ``memcmp_from`` bytes (32 KiB) on, for a C-contiguous
    w, the entry holds w itself (so its id names no other array while the entry lives), w's
    data address and a copy's (NumPy does not move the memory of an array that another
    object refers to: ``resize`` refuses), and compares the two memories with the C
    library's ``memcmp``, about half of ``w.tobytes() ==`` (3.8 µs against 6.8 on the
    147 KB of 64×64×3×3 filters); w's strides must be the entry's too (they can be set in
    place). b always compares its bytes (a few hundred). The entries are in a
    :class:`~minigrad.cache.BoundedCache` of at most ``max_bytes`` (each counted as twice
    its rows: the rows and the copy of w's bytes), the oldest let go first. The rows are
    read-only: the op never writes into them.
    """

    memcmp_from = 1 << 15

    def __init__(self, max_bytes: int) -> None:
        self.kept = BoundedCache(max_bytes)

    def get(self, w: np.ndarray, b, dtype, channels_first: bool = False) -> np.ndarray:
        """The rows (K [+ 1], FN) above; with ``channels_first`` the per-image path's matrix
        (FN, K [+ 1]) instead: ``w.reshape(FN, K)`` with b as its last column, as
        ``np.concatenate([w.reshape(FN, K), b.reshape(FN, 1)], axis=1, dtype=dtype)``
        makes it (a copy of 2 µs at batch 1, kept here like the rows)."""
        key = (id(w), dtype, channels_first)
        b_key = None if b is None else (b.dtype, b.tobytes())
        entry = self.kept.get(key)
        if (entry is not None and entry[1] == w.shape and entry[2] == w.dtype
                and entry[8] == b_key):
            if entry[0] is None:                  # small filters: their bytes
                if entry[4] == w.tobytes():
                    return entry[9]
            elif entry[0] is w and entry[3] == w.strides and not _memcmp(*entry[5:8]):
                return entry[9]                   # w's memory equals the copy's
        FN, C, FH, FW = w.shape
        K = FH * FW * C
        if channels_first:
            w_rows = np.empty((FN, K + (b is not None)), dtype=dtype)
            w_rows[:, :K] = w.reshape(FN, K)
            if b is not None:
                w_rows[:, K] = b                          # the bias meets a row of ones
        else:
            w_rows = np.empty((K + (b is not None), FN), dtype=dtype)
            w_rows[:K].reshape(FH, FW, C, FN)[...] = w.transpose(2, 3, 1, 0)
            if b is not None:
                w_rows[K] = b                             # the bias row meets a column of ones
        w_rows.flags.writeable = False
        if _memcmp is not None and w.nbytes >= self.memcmp_from and w.flags.c_contiguous:
            import ctypes

            copy = w.copy()
            entry = (w, w.shape, w.dtype, w.strides, copy, ctypes.c_void_p(w.ctypes.data),
                     ctypes.c_void_p(copy.ctypes.data), ctypes.c_size_t(w.nbytes))
        else:
            entry = (None, w.shape, w.dtype, None, w.tobytes(), None, None, None)
        self.kept.put(key, entry + (b_key, w_rows), 2 * w_rows.nbytes)
        return w_rows

    def clear(self) -> None:
        self.kept.clear()


_weight_rows = _WeightRows(32 << 20)


class _Block:
    """The memory of one block of n images for the channels-last unfold, laid in ``memory``
    (a uint8 array of at least ``_Block.bytes_for(key)`` bytes): the padded images xp
    (n, Hp, Wp, C), their images' part, the columns col (n·P, rows), and the two views the
    unfold copies between (the 6-D windows and fields, their window rows as single items),
    for key (n, H, W, C, PH, PW, FH, FW, stride, rows, dtype)."""

    __slots__ = ("xp", "inner", "col", "windows", "fields", "ones", "K", "P")

    @staticmethod
    def _layout(key):
        n, H, W, C, PH, PW, FH, FW, (SH, SW), rows, dtype = key  # noqa: N806
        OH, OW = 1 + (H + 2 * PH - FH) // SH, 1 + (W + 2 * PW - FW) // SW  # noqa: N806
        xp_shape = (n, H + 2 * PH, W + 2 * PW, C)
        xp_bytes = math.prod(xp_shape) * dtype.itemsize
        col_at = -(-xp_bytes // 64) * 64                     # col starts on a cache line
        col_bytes = n * OH * OW * rows * dtype.itemsize
        return xp_shape, xp_bytes, col_at, col_bytes, OH, OW

    @staticmethod
    def bytes_for(key) -> int:
        _, _, col_at, col_bytes, _, _ = _Block._layout(key)
        return col_at + col_bytes + 64                       # 64: room to align the start

    def __init__(self, memory: np.ndarray, key) -> None:
        n, H, W, C, PH, PW, FH, FW, (SH, SW), rows, dtype = key  # noqa: N806
        xp_shape, xp_bytes, col_at, col_bytes, OH, OW = self._layout(key)  # noqa: N806
        memory = memory[-memory.ctypes.data % 64:]
        xp = memory[:xp_bytes].view(dtype).reshape(xp_shape)
        col = memory[col_at:col_at + col_bytes].view(dtype).reshape(n * OH * OW, rows)
        # The views are those of windows[m, oh, ow, i, j, c] = xp[m, oh·SH + i, ow·SW + j, c]
        # and fields[m, oh, ow, i, j, c] = col[(m·OH + oh)·OW + ow, (i·FW + j)·C + c], with
        # the last two axes, FW·C values in a row in both xp and col, taken as one item of a
        # void dtype of FW·C values: NumPy copies such an item with one memcpy where it would
        # loop over the values one by one (16 → 16 channels at 28×28, batch 1: 16 µs instead
        # of 25). A copy moves bytes, so col holds the same bits either way.
        sN, sH, sW, _ = xp.strides
        r, it = col.strides[0], dtype.itemsize
        run = _void(FW * C * it)
        self.windows = np.ndarray((n, OH, OW, FH), run, xp, 0, (sN, sH * SH, sW * SW, sH))
        self.windows.flags.writeable = False
        self.fields = np.ndarray((n, OH, OW, FH), run, col, 0,
                                 (OH * OW * r, OW * r, r, FW * C * it))
        self.xp, self.inner, self.col = xp, xp[:, PH:PH + H, PW:PW + W], col
        self.K, self.P = FH * FW * C, OH * OW
        self.ones = col[:, self.K:]                          # the bias's column, if any

    def unfold(self, x_nhwc: np.ndarray, s: int, e: int) -> np.ndarray:
        """Images s..e−1 (at most n) of x_nhwc (N, H, W, C) padded into xp and unfolded into
        the first (e − s)·P rows of col, which are returned:

            col[(m·OH + oh)·OW + ow, (i·FW + j)·C + c] = xp[m, oh·SH + i, ow·SW + j, c],

        the channels-last im2col. xp's borders and col's columns past K are left
        as they are (zeros, and the bias's ones, from :meth:`_Scratch.block`)."""
        m = e - s
        if m == len(self.xp):                               # a whole block: the views as kept
            self.inner[...] = x_nhwc[s:e]
            np.copyto(self.fields, self.windows)
            return self.col
        self.inner[:m] = x_nhwc[s:e]                        # the batch's last, smaller block
        np.copyto(self.fields[:m], self.windows[:m])
        return self.col[:m * self.P]


class _Scratch(threading.local):
    """Each thread's memory for the channels-last unfold, of the forward pass and of
    backward's dL/dw: one array (``arena``) that every layer's blocks (:class:`_Block`, padded
    images and columns) are laid in, and, per shape, the block's views of it, kept for the
    next call.

    At batch 1 making the two arrays and the two strided views anew cost about a third of a
    small layer's time in Python and NumPy calls. One arena for all the layers, rather than
    buffers of each layer's own, keeps the memory the layers write in the same few MB, as
    fresh arrays from the C library's free list were (buffers per layer made DeepConvNet's
    batch-8 forward pass 1.1× as long). So each call still zeroes xp (its borders are the
    padding) and sets the bias's column of ones. The arena grows to the largest block asked
    for, up to ``max_bytes``; a larger block gets memory of its own, not kept. Every thread
    that has unfolded a block (the caller's, and the workers' when blocks are handed over)
    keeps its arena while it lives. The per-image path's padded images and window views are
    kept here too, per shape (:meth:`windows`).
    """

    max_bytes = 16 << 20

    def __init__(self) -> None:
        self.arena = np.empty(0, dtype=np.uint8)
        self.blocks: dict = {}
        self.padded = BoundedCache(max_bytes=None, max_entries=8)   # a few layers' shapes

    def block(self, key) -> _Block:
        """The block for key (n, H, W, C, PH, PW, FH, FW, stride, rows, dtype), xp zeroed and
        col's columns past FH·FW·C set to 1."""
        block = self.blocks.get(key)
        if block is None:
            need = _Block.bytes_for(key)
            if need > self.max_bytes:
                block = _Block(np.empty(need, dtype=np.uint8), key)
            else:
                if need > self.arena.nbytes:                 # grow: the old views go
                    self.arena = np.empty(need, dtype=np.uint8)
                    self.blocks = {}
                block = self.blocks[key] = _Block(self.arena, key)
        block.xp.fill(0)
        block.ones.fill(1)
        return block

    def clear(self) -> None:
        self.arena, self.blocks = np.empty(0, dtype=np.uint8), {}
        self.padded.clear()

    padded_max_bytes = 1 << 18

    def windows(self, x: np.ndarray, padding, kernel, stride, out) -> np.ndarray:
        """The per-image path's read-only window view (N, C, FH, FW, OH, OW) of x padded with
        zeros, as ``window_view(pad(x, padding), kernel, stride, out)`` gives it, through a
        padded array this thread keeps per shape (up to ``padded_max_bytes``, 256 KiB, else
        made anew; at most 8 shapes, 2 MiB a thread): x is copied into its inner part, its
        borders stay zero, and its view is kept too. At batch 1 that is one copy instead of
        ``np.full``, a copy and the view's constructor (5 µs of an input layer's 45). The view
        is read only while the op's forward pass runs, on this thread or the workers it waits
        for."""
        key = (x.shape, x.dtype, padding, kernel, stride)
        kept = self.padded.get(key)
        if kept is None:
            PH, PW = padding
            N, C, H, W = x.shape
            if N * C * (H + 2 * PH) * (W + 2 * PW) * x.itemsize > self.padded_max_bytes:
                return window_view(pad(x, padding), kernel, stride, out)
            xp = np.zeros((N, C, H + 2 * PH, W + 2 * PW), dtype=x.dtype)
            kept = (xp[:, :, PH:PH + H, PW:PW + W], window_view(xp, kernel, stride, out))
            self.padded.put(key, kept)
        np.copyto(kept[0], x)
        return kept[1]


_scratch = _Scratch()


def _empty_like_layout(a: np.ndarray, shape, dtype) -> np.ndarray:
    """An empty (N, C, H, W) array of ``shape`` in a's layout: NHWC memory when a is a
    channels-last view, C-contiguous otherwise."""
    if channels_last(a):
        N, C, H, W = shape
        return np.empty((N, H, W, C), dtype=dtype).transpose(0, 3, 1, 2)
    return np.empty(shape, dtype=dtype)


# ------------------------------------------------------------------ the depthwise path's cores


def _one_thread(body, total: int) -> None:
    """``body(0, total)`` on the calling thread, the BLAS set to one thread first.

    The depthwise path's blocks run on one thread: shared out between two (``parallel_for``),
    3×3 over 32 channels, x (64, 32, 32, 32), took 1.3–1.5× as long on two threads as on one
    (forward 9.2 → 12.3 ms, backward 15.7 → 23.6 ms, the two alternating in one process);
    with the blocks kept on one thread both took the one-thread time. Its copies and its
    products of one row per channel run at the speed of memory, which a second core does
    not add to here, and the blocks a worker reads the caller wrote."""
    blas_ready()
    body(0, total)


@functools.lru_cache(maxsize=64)
def _planes(chw, pads, kernel, dilation, stride=(1, 1)) -> _Planes:
    """The :class:`_Planes` of these settings, made once (its offsets and phase slices are
    worked out in Python: at batch 1 making them anew took a fifth of a small layer's
    time). A _Planes is never changed once made."""
    return _Planes(chw, pads, kernel, dilation, stride)


class _Planes:
    """Depthwise convolution on flat planes: each image's C planes padded by pads (PT, PB,
    PL, PR) to (Hp, Wp) and, at stride (SH, SW), split into SH·SW phase planes, phase (r, q)
    holding the padded positions (a·SH + r, b·SW + q) as its row a, column b, all Hq × Wq
    (Hq = ⌈Hp / SH⌉, Wq = ⌈Wp / SW⌉, zeros past the plane's end), their values in a row: a
    plane is the phases one after the other, SH·SW·Hq·Wq values (Hp·Wp at stride 1, where the
    one phase is the padded plane). Tap (i, j) at offset (u, v) = (i·DH, j·DW) reads phase
    (u mod SH, v mod SW), and output position oh·Wq + ow reads that phase at oh·Wq + ow plus
    the tap's offset (u // SH)·Wq + v // SW, so that a plane's windows for one tap are one run
    of L = OH·Wq values; the Wq − OW positions a row past OW are not outputs (they read across
    the row's end) and are dropped. A block of m images is padded into ``buf`` (m·C planes and
    ``margin`` values more, the last plane's runs reaching past its end) and unfolded into col
    (C, FH·FW, m·L), one ``memcpy`` a run (each run an item of a void dtype), so that one
    product per channel covers the block (one per plane cost 1 µs a call, about the whole
    product's time)."""

    def __init__(self, chw, pads, kernel, dilation, stride=(1, 1)) -> None:
        (C, H, W), (PT, PB, PL, PR) = chw, pads
        (FH, FW), (DH, DW), (SH, SW) = kernel, dilation, stride
        self.C, self.H, self.W, self.PT, self.PL = C, H, W, PT, PL
        self.Hp, self.Wp = H + PT + PB, W + PL + PR
        self.OH = (self.Hp - (FH - 1) * DH - 1) // SH + 1
        self.OW = (self.Wp - (FW - 1) * DW - 1) // SW + 1
        self.Hq, self.Wq = -(-self.Hp // SH), -(-self.Wp // SW)
        self.FH, self.FW, self.DH, self.DW, self.SH, self.SW = FH, FW, DH, DW, SH, SW
        self.strided = (SH, SW) != (1, 1)
        self.phase = self.Hq * self.Wq
        self.plane, self.L, self.T = SH * SW * self.phase, self.OH * self.Wq, FH * FW
        # Tap (i, j)'s phase (row-major over the SH × SW phases) and its run's start.
        self.tap_phase = [(i * DH % SH) * SW + j * DW % SW for i in range(FH) for j in range(FW)]
        self.tap_shift = [(i * DH // SH) * self.Wq + j * DW // SW
                          for i in range(FH) for j in range(FW)]
        self.offsets = [p * self.phase + s for p, s in zip(self.tap_phase, self.tap_shift)]
        self.margin = max(0, max(self.offsets) + self.L - self.plane)

        self.slices = {(r, q): self._phase_slices(r, q) for r in range(SH) for q in range(SW)}

    def phase_slices(self, r: int, q: int):
        """(rows of x, columns of x, rows of phase (r, q), its columns): x[h0::SH, w0::SW]
        is phase (r, q)'s [a0:a0 + nh, b0:b0 + nw]; None when no value of x falls in it."""
        return self.slices[r, q]

    def _phase_slices(self, r: int, q: int):
        h0, w0 = (r - self.PT) % self.SH, (q - self.PL) % self.SW
        nh, nw = len(range(h0, self.H, self.SH)), len(range(w0, self.W, self.SW))
        if not (nh and nw):
            return None
        a0, b0 = (h0 + self.PT) // self.SH, (w0 + self.PL) // self.SW
        return (slice(h0, None, self.SH), slice(w0, None, self.SW),
                slice(a0, a0 + nh), slice(b0, b0 + nw))

    def fill(self, buf, src, m: int) -> None:
        """buf ← src (m, C, H, W) padded with zeros (and split into phases)."""
        C, H, W, PT, PL = self.C, self.H, self.W, self.PT, self.PL
        buf[m * C * self.plane:m * C * self.plane + self.margin] = 0
        if self.strided:
            # One memset, then a copy a phase: zeroing each phase's borders as slices cost
            # more than the copies (slices of one or two values a row).
            buf[:m * C * self.plane] = 0
            phases = buf[:m * C * self.plane].reshape(m, C, self.SH * self.SW, self.Hq, self.Wq)
            for r in range(self.SH):
                for q in range(self.SW):
                    cut = self.phase_slices(r, q)
                    if cut is not None:
                        rows, cols, a, b = cut
                        phases[:, :, r * self.SW + q, a, b] = src[:, :, rows, cols]
            return
        padded = buf[:m * C * self.plane].reshape(m, C, self.Hp, self.Wp)
        padded[:, :, :PT] = 0
        padded[:, :, PT + H:] = 0
        padded[:, :, PT:PT + H, :PL] = 0
        padded[:, :, PT:PT + H, PL + W:] = 0
        padded[:, :, PT:PT + H, PL:PL + W] = src

    def unfold(self, buf, col, m: int) -> np.ndarray:
        """col[c, t, n, p] = buf[(n·C + c)·plane + offsets[t] + p], p < L, for the m images in
        buf, laid in ``col``'s memory (a flat array) as (C, FH·FW, m·L), which is returned:
        one product per channel over the whole block. At stride 1 the offsets are i·DH·Wp +
        j·DW, one view over the four axes; with phases, one copy a tap."""
        C, L, it = self.C, self.L, buf.itemsize
        run = _void(L * it)
        c = col[:C * self.T * m * L].reshape(C, self.T, m, L)
        runs = c.view(run)[..., 0]                                      # (C, T, m)
        if not self.strided:
            windows = np.ndarray((m, C, self.FH, self.FW), run, buf, 0,
                                 (C * self.plane * it, self.plane * it,
                                  self.DH * self.Wp * it, self.DW * it))
            np.copyto(runs.reshape(C, self.FH, self.FW, m).transpose(3, 0, 1, 2), windows)
        else:
            for t, offset in enumerate(self.offsets):
                windows = np.ndarray((C, m), run, buf, offset * it,
                                     (self.plane * it, C * self.plane * it))
                np.copyto(runs[:, t], windows)
        return c.reshape(C, self.T, m * L)

    def convolve(self, x, w_taps, b, dtype, blocks_of, kept=None):
        """y (N, C, OH, OW) = Σ_taps windows · w_taps[c, tap] + b[c], C-contiguous. With
        ``kept`` (N·C·plane + margin values), the blocks are padded into it instead of a
        buffer of the block's own, and it holds the whole batch's planes after the call
        (:meth:`weight_grad` unfolds them again instead of padding x again)."""
        N = len(x)
        C, L, T, OH, OW, Wq = self.C, self.L, self.T, self.OH, self.OW, self.Wq
        item = np.dtype(dtype).itemsize
        bounds = blocks_of(N, C * T * L * item)
        largest = max((e - s for s, e in zip(bounds, bounds[1:])), default=0)
        y = np.empty((N, C, OH, OW), dtype=dtype)
        w_rows = np.ascontiguousarray(w_taps).reshape(C, 1, T)   # BLAS wants it in a row
        b4 = None if b is None else np.asarray(b, dtype=dtype).reshape(C, 1, 1)

        def images(lo, hi):
            buf = None if kept is not None else np.empty(largest * C * self.plane
                                                         + self.margin, dtype=dtype)
            col = np.empty(C * T * largest * L, dtype=dtype)
            out = np.empty(C * largest * L, dtype=dtype)
            for k in range(lo, hi):
                s, e = bounds[k], bounds[k + 1]
                m = e - s
                if kept is not None:
                    buf = kept[s * C * self.plane:]
                self.fill(buf, x[s:e], m)
                o = out[:C * m * L].reshape(C, 1, m * L)
                np.matmul(w_rows, self.unfold(buf, col, m), out=o)  # (C, 1, T) · (C, T, m·L)
                rows = o.reshape(C, m, OH, Wq)[..., :OW].transpose(1, 0, 2, 3)
                if b4 is None:
                    y[s:e] = rows
                else:
                    np.add(rows, b4, out=y[s:e])

        if N:
            _one_thread(images, len(bounds) - 1)
        return y

    def weight_grad(self, x, kept, dy, dtype, blocks_of, windows_only=False):
        """dL/dw (C, FH·FW) = Σ_blocks col[c] · dy[c], one product per channel and block, col
        unfolded from x padded again or, given ``kept``, from the planes :meth:`convolve`
        left there, dy's positions past OW set to 0, the blocks' sums added in order.

        The phase planes of a stride are kept: splitting x into them again cost more
        (stride 2, 64 channels, x (100, 64, 14, 14), forward and backward 19.9 → 17.4 ms,
        about 2 ms a pass of the phases' strided copies). The planes of stride 1 are not:
        padding x is a copy of runs of W values, and kept, the forward pass writes the
        batch's planes to memory instead of one block's to the cache; at x (100, 32, 14, 14)
        forward 3.3 → 3.8 ms, forward and backward 10.3 → 9.9 ms alone, and in MobileNet's
        training step no gain beyond the noise, for the batch's planes in memory (7 MB).

        The dropped positions read x across a row's end, so an ∞ or NaN of x that no output
        reads through some tap still adds 0·∞ = NaN to that tap's sum, where the general path
        never reads it. ``windows_only`` sets col's dropped positions to 0 as well, which
        keeps such a tap's sum finite; it costs about a tenth of the time (short strided
        runs), so the caller asks for it only when a sum came out non-finite. (Past a block's
        planes, where only dropped positions read, ``kept`` holds the next block's.)"""
        N = len(dy)
        C, L, T, OH, OW, Wq = self.C, self.L, self.T, self.OH, self.OW, self.Wq
        bounds = blocks_of(N, C * T * L * np.dtype(dtype).itemsize)
        largest = max((e - s for s, e in zip(bounds, bounds[1:])), default=0)
        partial = np.zeros((len(bounds) - 1, C, T), dtype=dtype)

        def images(lo, hi):
            buf = None if kept is not None else np.empty(largest * C * self.plane
                                                         + self.margin, dtype=dtype)
            col = np.empty(C * T * largest * L, dtype=dtype)
            d = np.empty(C * largest * L, dtype=dtype)
            for k in range(lo, hi):
                s, e = bounds[k], bounds[k + 1]
                m = e - s
                if kept is None:
                    self.fill(buf, x[s:e], m)
                else:
                    buf = kept[s * C * self.plane:]
                dk = d[:C * m * L].reshape(C, m, OH, Wq)
                dk[...] = 0               # one memset: the dropped columns are 1-2 values a row
                dk[..., :OW] = dy[s:e].transpose(1, 0, 2, 3)
                cols = self.unfold(buf, col, m)
                if windows_only:
                    cols.reshape(C, T, m, OH, Wq)[..., OW:] = 0
                g = np.matmul(cols, dk.reshape(C, m * L, 1))            # (C, T, 1)
                partial[k] = g[..., 0]

        if N:
            _one_thread(images, len(bounds) - 1)
        return partial.sum(axis=0)

    def input_grad(self, dy, w_taps, dtype, blocks_of):
        """dL/dx (N, C, H, W), C-contiguous, at a stride, phase by phase: the padded
        position (a·SH + r, b·SW + q) is row a, column b of phase (r, q), and tap (i, j) of
        that phase (shift (α, β) = (i·DH // SH, j·DW // SW)) adds w[c, i, j] · dy[a − α, b − β]
        there, so

            dxp[phase (r, q)][a, b] = Σ_{taps of the phase} w[c, tap] · dy[a − α, b − β],

        dy zero outside (OH, OW): a stride-1 convolution of dy with the phase's taps. dy is
        laid on a grid of Wq columns (zeros past OW) with A = max α zero rows above it and
        B = max β zero values before it, so that a tap's values for a phase's Hq·Wq positions
        are one run from (A − α)·Wq + B − β (a column b − β < 0 reads the previous row's last
        columns, which OW + B ≤ Wq keeps zero); the runs go into col (C, FH·FW, m·Hq·Wq),
        the taps of a phase side by side, one product per channel (all phases at once), and
        each phase's rows and columns that fall in x are written to dx[:, :, h0::SH,
        w0::SW]."""
        N = len(dy)
        C, H, W, T, Wq, Hq, Q = self.C, self.H, self.W, self.T, self.Wq, self.Hq, self.phase
        OH, OW, it = self.OH, self.OW, np.dtype(dtype).itemsize
        order = sorted(range(T), key=lambda t: self.tap_phase[t])      # taps by phase
        A = max(s // Wq for s in self.tap_shift)
        B = max(s % Wq for s in self.tap_shift)
        grid = B + (A + Hq) * Wq                        # one (image, channel)'s dy on the grid
        starts = [(A - s // Wq) * Wq + B - s % Wq for s in (self.tap_shift[t] for t in order)]
        phases = [[k for k, t in enumerate(order) if self.tap_phase[t] == p]
                  for p in range(self.SH * self.SW)]
        w_rows = np.ascontiguousarray(np.asarray(w_taps, dtype=dtype)[:, order]).reshape(C, 1, T)
        bounds = blocks_of(N, C * T * Q * it)
        largest = max((e - s for s, e in zip(bounds, bounds[1:])), default=0)
        dx = np.empty((N, C, H, W), dtype=dtype)
        run = _void(Q * it)
        P = self.SH * self.SW
        # All phases in one product per channel, each phase's row of weights zero at the
        # other phases' taps: C calls of BLAS a block instead of C a phase (stride 2, 3×3,
        # x (100, 64, 14, 14): backward 10.4 → 9.7 ms). The zeros would make 0·∞ = NaN of
        # an ∞ in dy (or w) where a phase never reads it: then one product a phase.
        w_phases = None
        if np.isfinite(w_rows).all() and np.isfinite(dy).all():
            w_phases = np.zeros((C, P, T), dtype=dtype)
            for p, taps in enumerate(phases):
                w_phases[:, p, taps] = w_rows[:, 0, taps]

        def images(lo, hi):
            g = np.empty(largest * C * grid, dtype=dtype)
            col = np.empty(C * T * largest * Q, dtype=dtype)
            out = np.empty((self.SH * self.SW, C * largest * Q), dtype=dtype)
            for k in range(lo, hi):
                s, e = bounds[k], bounds[k + 1]
                m = e - s
                g[:m * C * grid] = 0
                rows = np.ndarray((m, C, OH, OW), dtype, g, (B + A * Wq) * it,
                                  (C * grid * it, grid * it, Wq * it, it))
                rows[...] = dy[s:e]
                c = col[:C * T * m * Q].reshape(C, T, m, Q)
                runs = c.view(run)[..., 0]                              # (C, T, m)
                for t, start in enumerate(starts):
                    np.copyto(runs[:, t], np.ndarray((C, m), run, g, start * it,
                                                     (grid * it, C * grid * it)))
                c = c.reshape(C, T, m * Q)
                if w_phases is not None:
                    every = out.reshape(-1)[:P * C * m * Q].reshape(C, P, m * Q)
                    np.matmul(w_phases, c, out=every)            # (C, P, T) · (C, T, m·Q)
                for p, taps in enumerate(phases):
                    r, q = divmod(p, self.SW)
                    cut = self.phase_slices(r, q)
                    if cut is None:
                        continue
                    if w_phases is not None:
                        o = every[:, p]
                    else:
                        o = out[p, :C * m * Q].reshape(C, 1, m * Q)
                        if taps:
                            t0, t1 = taps[0], taps[-1] + 1
                            np.matmul(w_rows[:, :, t0:t1], c[:, t0:t1], out=o)
                        else:
                            o[...] = 0
                    hs, ws, a, b = cut
                    dx[s:e, :, hs, ws] = o.reshape(C, m, Hq, Wq)[:, :, a, b].transpose(1, 0, 2, 3)

        if N:
            _one_thread(images, len(bounds) - 1)
        return dx


class Conv2d(Function):
    """2-D convolution (cross-correlation, as in PyTorch and the textbook) of a batch of images.

    Forward: y[n, f, oh, ow] = Σ_{c,i,j} w[f, c, i, j] · xp[n, c, oh·SH + i, ow·SW + j] + b[f],
    computed as y[n] = w.reshape(FN, K) · col[n] + b with col = im2col(x) (N, K, P).

    Backward, with dy = dL/dy reshaped to (N, FN, P):
      dL/dw = Σ_n dy[n] · col[n]ᵀ                 reshaped to (FN, C, FH, FW)
      dL/db = Σ_{n,p} dy[n, :, p]
      dL/dx = col2im(w.reshape(FN, K)ᵀ · dy[n] for each n)

    Shapes: x (N, C, H, W), w (FN, C, FH, FW), b (FN,) → y (N, FN, OH, OW),
    OH = 1 + (H + 2·PH − FH) // SH, OW = 1 + (W + 2·PW − FW) // SW. Zero padding.
    The map is linear in each input: no kinks.

    Options, as in PyTorch: ``dilation`` (DH, DW) spaces the kernel taps, so xp[n, c, oh·SH +
    i·DH, ow·SW + j·DW] replaces xp[n, c, oh·SH + i, ow·SW + j] above and FH becomes DH·(FH − 1)
    + 1 in OH; ``groups`` G splits the C input channels and the FN filters into G groups, filter
    f seeing only the C/G channels of its group (w is (FN, C/G, FH, FW)); ``padding='valid'`` is
    0 and ``padding='same'`` (stride 1 only) pads D·(F − 1) in all, half before and the rest
    after, so y has x's height and width. Any of these (other than 'valid', or 'same' with an
    odd kernel, which pad evenly) runs the general path of the module docstring: the same
    maths with col (N, G, K/G, P) and one product per group; the default settings keep the
    fast path below untouched. Depthwise convolutions, other large enough groups
    and 1×1 convolutions of a channels-first x take paths of their own (``special``, see the
    module docstring).

    The bias rides in the matrix product as the weight of an extra row of ones appended to col,
    so forward is a single product (no separate pass to add b) and one product in backward
    gives dL/dw and dL/db together. Saved: col (with its row of ones) when w or b needs a
    gradient, w when x needs one. No col2im is run when x needs no gradient (the input layer).

    dL/dx has a second, faster formulation, used at stride 1 when FN ≤ ``dx_conv_ratio``·C (2)
    and PH ≤ FH − 1, PW ≤ FW − 1: it is the convolution of dy, zero-padded by FH − 1 − PH rows
    and FW − 1 − PW columns, with the filters turned by 180° and their channel axes swapped,
    dx = conv2d(dyp, w[:, :, ::−1, ::−1] as (C, FN, FH, FW)). That is an im2col of dy (a plain
    copy of FN·FH·FW·H·W values per image) and one product, where col2im adds FH·FW strided
    slices of C·OH·OW values each, slow for the small images and few channels of a deep
    network; when FN is much larger than C the copy costs more than the adds and col2im stays.
    Its columns are built a block of images at a time (``block_bytes`` of them, 512 KiB) so
    that the product reads them from the cache.

    The columns of the per-image path are taken from, and given back to, a pool of recycled
    arrays (:class:`_Recycled`) once backward has run and the graph is released: tens of MB
    per layer at batch 100, and fresh memory costs a page fault per 4 KiB.

    From ``channels_last_from`` input channels on, the fast path runs channels last (see the
    module docstring): col (N·P, K) with the fields in (fh, fw, c) order, a block of images at
    a time and never kept (backward unfolds x again), y returned as an (N, C, H, W) view of
    NHWC memory and dL/dx in x's layout; the maths above is the same, transposed. Saved there:
    x when w or b needs a gradient, w when x does.

    When neither w nor b needs a gradient (frozen filters; under ``no_grad`` a Parameter still
    says it requires one, and the op keeps what a backward called by hand would need) the
    columns are not kept: each thread builds them a block of images at a time (``block_bytes``)
    in a buffer of its own and multiplies at once, so the product reads them from the cache
    instead of from memory. The products are the same, image by image, as on the other path.
    """

    # Defaults at class level: settings() lists dilation and groups only when they were given.
    dilation = (1, 1)
    groups = 1
    # The fast path's two size rules (see the docstring); tests change them to force each side.
    block_bytes = 1 << 19
    dx_conv_ratio = 2
    channels_last_from = 16
    nhwc_block_bytes = 1 << 21

    def __init__(self, stride=1, padding=0, dilation=1, groups=1):
        # The same setting objects as a call before (an nn.Conv2d's own tuples, the small ints
        # of a literal call): their checked values, kept under the objects' ids. The entry
        # holds the objects, so while it lives no other object has those ids; an equal value
        # in another object (True for 1, 1.0 for 1, a new tuple) is checked anew, and only
        # ints, strings and tuples (of ints, once checked), which cannot change, are kept.
        # 1.2 µs instead of the 2.2 µs of the checks.
        given = (stride, padding, dilation, groups)
        ids = (id(stride), id(padding), id(dilation), id(groups))
        kept = _checked_settings.get(ids)
        if kept is not None:
            self.stride, self.padding = kept[4], kept[5]
            if kept[6] is not None:
                self.dilation = kept[6]
            if kept[7] is not None:
                self.groups = kept[7]
            return
        self.stride = pair("conv2d", "stride", stride, 1)
        if isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ValueError(f"conv2d: padding must be an int, an (h, w) pair, 'valid' or "
                                 f"'same', got {padding!r}")
            if padding == "same" and self.stride != (1, 1):
                raise ValueError(f"conv2d: padding='same' needs stride 1 (as in PyTorch), got "
                                 f"stride={self.stride}")
            self.padding = (0, 0) if padding == "valid" else "same"
        else:
            self.padding = pair("conv2d", "padding", padding, 0)
        dilation = pair("conv2d", "dilation", dilation, 1)
        if dilation != (1, 1):
            self.dilation = dilation
        groups = _groups("conv2d", groups)
        if groups != 1:
            self.groups = groups
        if all(type(v) in (int, tuple, str) for v in given):   # not a list changed later
            if len(_checked_settings) >= 256:  # settings made anew at every call: start over
                _checked_settings.clear()
            _checked_settings[ids] = given + (self.stride, self.padding,
                                              self.__dict__.get("dilation"),
                                              self.__dict__.get("groups"))

    def forward(self, x, w, b=None):
        if type(x) is np.ndarray and type(w) is np.ndarray and (b is None
                                                                or type(b) is np.ndarray):
            # The checks and the sizes depend on the shapes, dtypes and settings alone: they
            # are worked out once per combination (:class:`_Plan`) and looked up after that.
            key = (x.shape, x.strides, x.dtype, w.shape, w.dtype,
                   None if b is None else (b.shape, b.dtype), self.stride, self.padding,
                   self.dilation, self.groups, self.channels_last_from, self.nhwc_block_bytes)
            plan = _plans.get(key)
            if plan is None:
                plan = self._plan(x, w, b)
                _plans.put(key, plan)
        else:
            x, w = np.asarray(x), np.asarray(w)
            plan = self._plan(x, w, b)
        self.general = plan.general
        if plan.general:
            if plan.special is not None:
                return self._forward_special(x, w, b, plan)
            return self._forward_general(x, w, b, plan.pads)
        self.pad = plan.pad
        needs = getattr(self, "needs_input_grad", (True,) * (2 if b is None else 3))
        self.w_shape = w.shape
        if needs[0]:
            self.w = w
            self.x_shape = x.shape
        self.nhwc = plan.nhwc
        if plan.nhwc:
            return self._forward_nhwc(x, w, b, needs, plan)
        N, C, _, _ = x.shape
        FN, _, FH, FW = w.shape
        OH, OW = plan.out
        view = _scratch.windows(x, self.pad, (FH, FW), self.stride, (OH, OW))
        if b is None:
            w_mat = w.reshape(FN, C * FH * FW)
        else:
            w_mat = _weight_rows.get(w, b, plan.dtype, channels_first=True)  # (FN, K + 1)
        y = np.empty((N, FN, OH * OW), dtype=plan.dtype)
        if any(needs[1:]):
            self.col = self._forward_keep(view, w_mat, y, b is not None)
        else:
            self._forward_blocks(view, w_mat, y, b is not None)
        return y.reshape(N, FN, OH, OW)

    def _plan(self, x, w, b) -> _Plan:
        """The checks of x, w and b against each other and the settings, and what the forward
        pass works out from their shapes and dtypes alone (see :class:`_Plan`)."""
        if x.ndim != 4:
            _check_x("conv2d", x)
        if w.ndim != 4:
            raise ValueError(f"conv2d: weight must be 4-D (FN, C, FH, FW), got "
                             f"w.shape={w.shape}")
        FN, C, FH, FW = w.shape
        G = self.groups
        if not (C and FH and FW):
            _check_kernel("conv2d", "weight (FN, C, FH, FW)", w.shape)
        if G != 1:
            if x.shape[1] % G or FN % G:
                raise ValueError(f"conv2d: groups={G} must divide the input channels "
                                 f"(x.shape={x.shape}) and the filters FN={FN} (weight "
                                 f"(FN, C/groups, FH, FW)={w.shape})")
            if x.shape[1] != C * G:
                raise ValueError(f"conv2d: input has {x.shape[1]} channels but weight "
                                 f"(FN, C/groups, FH, FW)={w.shape} with groups={G} expects "
                                 f"{C * G}; x.shape={x.shape}")
        elif x.shape[1] != C:
            raise ValueError(f"conv2d: input has {x.shape[1]} channels but weight "
                             f"(FN, C, FH, FW)={w.shape} expects {C}; x.shape={x.shape}")
        if b is not None and np.shape(b) != (FN,):
            raise ValueError(f"conv2d: bias must have shape (FN,)=({FN},) for weight "
                             f"(FN, C, FH, FW)={w.shape}; got b.shape={np.shape(b)}")
        pads = _conv_pads(self.padding, (FH, FW), self.dilation)
        special = self._special(x, w.shape, pads)
        if special is not None:
            plan = _Plan(True, pads)
            plan.special = special
            plan.out = dilated_output_size("conv2d", x.shape, (FH, FW), self.stride, pads,
                                           self.dilation)
            plan.dtype = np.result_type(x, w) if b is None else np.result_type(x, w, b)
            plan.x_nhwc = channels_last(x)
            return plan
        if G != 1 or self.dilation != (1, 1) or pads[0] != pads[1] or pads[2] != pads[3]:
            return _Plan(True, pads)
        pad = pads[0], pads[2]
        OH, OW = output_size("conv2d", x.shape, (FH, FW), self.stride, pad)
        dtype = np.result_type(x, w) if b is None else np.result_type(x, w, b)
        plan = _Plan(False, pads, pad, (OH, OW), dtype, C >= self.channels_last_from)
        if plan.nhwc:
            N, _, H, W = x.shape
            rows = FH * FW * C + (b is not None)
            P = OH * OW
            plan.x_nhwc = channels_last(x)
            plan.bounds, largest = self._nhwc_blocks(N, rows * P, dtype)
            plan.block = (largest, H, W, C, pad[0], pad[1], FH, FW, self.stride, rows, dtype)
            plan.work = _work(N * P * (rows + FN), 2 * N * P * rows * FN)
        return plan

    @staticmethod
    def _forward_keep(view, w_mat, y, bias: bool) -> np.ndarray:
        """y[n] = w_mat · col[n] for every image, col (N, rows, P) built whole and returned:
        dL/dw needs it in backward."""
        N, C, FH, FW, OH, OW = view.shape
        K = C * FH * FW
        col = _recycled.empty((N, w_mat.shape[1], OH * OW), y.dtype)

        def images(lo, hi):                             # images lo..hi−1, on one thread
            _unfold_into(col[lo:hi, :K], view[lo:hi])
            if bias:
                col[lo:hi, K] = 1
            np.matmul(w_mat, col[lo:hi], out=y[lo:hi])  # (FN, rows) · (n, rows, P) → (n, FN, P)

        if N == 1:                      # one image: on this thread, as parallel_for runs it
            blas_ready()
            images(0, 1)
        else:
            parallel_for(N, images, work=_work(y.size + col.size, 2 * y.size * w_mat.shape[1]),
                         blas=True)
        return col

    def _forward_blocks(self, view, w_mat, y, bias: bool) -> None:
        """The same products when no gradient needs the columns (inference, frozen filters):
        each thread builds them a block of images at a time (``block_bytes``) in a buffer of
        its own, which the product then reads from the cache, and nothing is kept."""
        N, C, FH, FW, OH, OW = view.shape
        K, P = C * FH * FW, OH * OW
        rows = w_mat.shape[1]
        step = self._block(rows * P, y.dtype)

        def images(lo, hi):
            col = np.empty((min(step, hi - lo), rows, P), dtype=y.dtype)
            if bias:
                col[:, K] = 1
            for s in range(lo, hi, step):
                e = min(hi, s + step)
                _unfold_into(col[:e - s, :K], view[s:e])
                np.matmul(w_mat, col[:e - s], out=y[s:e])

        if N == 1:
            blas_ready()
            images(0, 1)
        else:
            parallel_for(N, images, work=_work(N * (rows + w_mat.shape[0]) * P,
                                               2 * y.size * rows), blas=True)

    def _block(self, per_image: int, dtype) -> int:
        """Images per block: as many as keep one block's columns within ``block_bytes``."""
        return max(1, self.block_bytes // (per_image * np.dtype(dtype).itemsize))

    def _dx_by_convolution(self) -> bool:
        """The size rule for dL/dx: True to compute it as a convolution of dy (see backward)."""
        FN, C, FH, FW = self.w_shape
        PH, PW = self.pad
        return (self.stride == (1, 1) and PH <= FH - 1 and PW <= FW - 1
                and FN <= self.dx_conv_ratio * C)

    def backward(self, dy):
        if self.general:
            return self._backward_general(dy)
        if self.nhwc:
            return self._backward_nhwc(dy)
        needs = self.needs_input_grad
        N, FN, OH, OW = dy.shape
        dy3 = dy.reshape(N, FN, OH * OW)
        dx = dw = db = None
        K = math.prod(self.w_shape[1:])
        if any(needs[1:]):
            # (N, FN, P) · (N, P, rows) → (N, FN, rows), summed over the batch: the last
            # column (from the row of ones) is dL/db.
            col = self.col
            rows = col.shape[1]
            dtype = np.result_type(dy, col)
            per_image = np.empty((N, FN, rows), dtype=dtype)

            def images(lo, hi):
                np.matmul(dy3[lo:hi], col[lo:hi].transpose(0, 2, 1), out=per_image[lo:hi])

            parallel_for(N, images, work=_work(col.size + dy.size, 2 * col.size * FN), blas=True)
            dwb = per_image.sum(axis=0)
            if needs[1]:
                dw = dwb[:, :K].reshape(self.w_shape)
            if len(needs) == 3 and needs[2]:
                db = np.ascontiguousarray(dwb[:, K])
        if needs[0]:
            dx = self._dx_conv(dy) if self._dx_by_convolution() else self._dx_col2im(dy3, OH, OW)
        return (dx, dw) if len(needs) == 2 else (dx, dw, db)

    def _dx_col2im(self, dy3, OH, OW):
        """dL/dx = col2im(w.reshape(FN, K)ᵀ · dy[n]), the textbook's way."""
        w = self.w
        FN = w.shape[0]
        N = dy3.shape[0]
        dx = np.empty(self.x_shape, dtype=np.result_type(dy3, w))

        def images(lo, hi):
            dcol = np.matmul(w.reshape(FN, -1).T, dy3[lo:hi])  # (K, FN) · (n, FN, P)
            _col2im(dcol, dx[lo:hi].shape, w.shape[2:], self.stride, self.pad,
                    (OH, OW), dx=dx[lo:hi])

        parallel_for(N, images, work=_work(2 * w[0].size * N * OH * OW,
                                           2 * w.size * N * OH * OW), blas=True)
        return dx

    def _dx_conv(self, dy):
        """dL/dx as the convolution of dy, padded by FH − 1 − PH rows and FW − 1 − PW columns,
        with the filters turned by 180° and their two channel axes swapped (stride 1 only):

            dx[n, c, h, v] = Σ_{f,i,j} dyp[n, f, h + i, v + j] · w[f, c, FH − 1 − i, FW − 1 − j]

        im2col of dy (a plain copy) and one product per block, where col2im would add FH·FW
        strided slices."""
        w = self.w
        FN, C, FH, FW = w.shape
        N, _, OH, OW = dy.shape
        H, W = self.x_shape[2:]
        QH, QW = FH - 1 - self.pad[0], FW - 1 - self.pad[1]
        dtype = np.result_type(dy, w)
        KT = FN * FH * FW
        w_t = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3), dtype=dtype)
        w_t = w_t.reshape(C, KT)
        dx = np.empty(self.x_shape, dtype=dtype)
        step = self._block(KT * H * W, dtype)

        def images(lo, hi):
            n = min(step, hi - lo)
            dyp = np.zeros((n, FN, OH + 2 * QH, OW + 2 * QW), dtype=dtype)  # borders stay 0
            view = window_view(dyp, (FH, FW), (1, 1), (H, W))
            col = np.empty((n, KT, H * W), dtype=dtype)
            for s in range(lo, hi, step):
                e = min(hi, s + step)
                dyp[:e - s, :, QH:QH + OH, QW:QW + OW] = dy[s:e]
                _unfold_into(col[:e - s], view[:e - s])
                np.matmul(w_t, col[:e - s], out=dx[s:e].reshape(e - s, C, H * W))

        parallel_for(N, images, work=_work(N * (KT + C) * H * W, 2 * N * KT * C * H * W),
                     blas=True)
        return dx

    def _release(self):
        """After the last backward pass the fast path's columns go back to be used again."""
        col = None if self.__dict__.get("general", True) else self.__dict__.get("col")
        planes = self.__dict__.get("planes")              # the depthwise path's
        super()._release()
        if col is not None:
            _recycled.give(col)
        if planes is not None:
            _recycled.give(planes)

    # ------------------------------------------------------------------ channels-last fast path

    def _nhwc_blocks(self, N: int, per_image: int, dtype) -> tuple[list[int], int]:  # noqa: N803
        """The blocks of images channels last, (bounds, largest): images ``bounds[i]`` to
        ``bounds[i + 1]`` in block i, and the most images in a block. As few blocks as keep
        each block's columns (``per_image`` values an image) within ``nhwc_block_bytes``, at
        least two for a batch of two or more (so that a small batch, inference at batch 8,
        still makes two blocks for two threads), an even number where the batch allows, and of
        sizes that differ by at most one image, so that two threads get the same work. They
        depend on the shapes alone, not on the number of threads, so dL/dw's sum over the
        blocks is the same on any number of threads."""
        by_bytes = max(1, self.nhwc_block_bytes // (per_image * np.dtype(dtype).itemsize))
        n = max(-(-N // by_bytes), min(N, 2))
        if n % 2 and n < N:
            n += 1
        return [N * i // n for i in range(n + 1)], -(-N // n)

    def _forward_nhwc(self, x, w, b, needs, plan):
        """The fast path channels last (see the module docstring): the receptive fields as rows
        of col (n·P, K) in (i, j, c) order, the output as rows (N·P, FN), its memory NHWC.

        The images go in blocks fixed by the shapes (``nhwc_block_bytes`` of columns), each
        padded, unfolded into a buffer of the thread's own and multiplied while its columns
        are in the cache; nothing is kept: dL/dw unfolds the blocks again in backward, which
        costs less than writing all the columns to memory and reading them back. The weight
        rows come from :class:`_WeightRows` (made again only when the filters' bytes change),
        and each block is unfolded by :meth:`_Block.unfold` in its thread's memory
        (:class:`_Scratch`). A single block (batch 1) runs on the calling thread, as
        ``parallel_for`` would run it, without the call."""
        N = x.shape[0]
        FN = w.shape[0]
        OH, OW = plan.out
        P, dtype = OH * OW, plan.dtype
        w_rows = _weight_rows.get(w, b, dtype)                # (rows, FN), read-only
        # dL/dx is returned in x's layout, as ReLU, pooling and BatchNorm return theirs: the
        # op before it (the ReLU of a channels-first input layer) then meets one layout.
        self.x_nhwc = plan.x_nhwc
        if x.dtype != dtype:
            x = x.astype(dtype)
        y = np.empty((N * P, FN), dtype=dtype)
        x_nhwc = x.transpose(0, 2, 3, 1)
        bounds, key = plan.bounds, plan.block
        if len(bounds) == 2:
            blas_ready()
            np.matmul(_scratch.block(key).unfold(x_nhwc, 0, N), w_rows, out=y)
        else:
            def blocks(lo, hi):                               # blocks lo..hi−1, on one thread
                block = _scratch.block(key)
                for i in range(lo, hi):
                    s, e = bounds[i], bounds[i + 1]
                    np.matmul(block.unfold(x_nhwc, s, e), w_rows, out=y[s * P:e * P])

            parallel_for(len(bounds) - 1, blocks, work=plan.work, blas=True)
        if any(needs[1:]):
            self.x, self.with_bias, self.plan = x, b is not None, plan
        return y.reshape(N, OH, OW, FN).transpose(0, 3, 1, 2)

    def _backward_nhwc(self, dy):
        needs = self.needs_input_grad
        N, FN, OH, OW = dy.shape
        P = OH * OW
        dy_rows = np.ascontiguousarray(dy.transpose(0, 2, 3, 1)).reshape(N * P, FN)
        dx = dw = db = None
        FN, C, FH, FW = self.w_shape
        K = FH * FW * C
        if any(needs[1:]):
            # [dL/dw | dL/db] = Σ over the blocks of colᵀ · dy, (rows, n·P) · (n·P, FN), the
            # columns unfolded again block by block, the blocks' sums added in order.
            # The blocks and the block key are the forward pass's (its plan): the same x.
            x = self.x
            rows = K + self.with_bias
            x_nhwc = x.transpose(0, 2, 3, 1)
            bounds, key = self.plan.bounds, self.plan.block
            partial = np.empty((len(bounds) - 1, rows, FN), dtype=np.result_type(dy_rows, x))

            def blocks(lo, hi):
                block = _scratch.block(key)
                for i in range(lo, hi):
                    s, e = bounds[i], bounds[i + 1]
                    col = block.unfold(x_nhwc, s, e)
                    np.matmul(col.T, dy_rows[s * P:e * P], out=partial[i])

            parallel_for(len(partial), blocks, work=self.plan.work, blas=True)
            dwb = partial.sum(axis=0) if len(partial) != 1 else partial[0]
            if needs[1]:
                dw = np.ascontiguousarray(dwb[:K].reshape(FH, FW, C, FN).transpose(3, 2, 0, 1))
            if len(needs) == 3 and needs[2]:
                db = dwb[K].copy()
        if needs[0]:
            dx = self._dx_conv_nhwc(dy_rows, OH, OW) if self._dx_by_convolution() \
                else self._dx_col2im_nhwc(dy_rows, OH, OW)
        return (dx, dw) if len(needs) == 2 else (dx, dw, db)

    def _dx_conv_nhwc(self, dy_rows, OH, OW):  # noqa: N803
        """dL/dx as the convolution of dy with the turned filters (see ``_dx_conv``), channels
        last: dx (N·H·W, C) = col(dyp) (N·H·W, FH·FW·FN) · w_t, a fixed block of images at a
        time."""
        w = self.w
        FN, C, FH, FW = w.shape
        N, _, H, W = self.x_shape
        QH, QW = FH - 1 - self.pad[0], FW - 1 - self.pad[1]
        dtype = np.result_type(dy_rows, w)
        KT = FH * FW * FN
        # w_t[(i, j, f), c] = w[f, c, FH − 1 − i, FW − 1 − j]
        w_t = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(2, 3, 0, 1), dtype=dtype)
        w_t = w_t.reshape(KT, C)
        dy4 = dy_rows.reshape(N, OH, OW, FN)
        nhwc = self.x_nhwc
        dx = np.empty((N * H * W, C) if nhwc else (N, C, H, W), dtype=dtype)
        bounds, n = self._nhwc_blocks(N, KT * H * W, dtype)
        key = (n, OH, OW, FN, QH, QW, FH, FW, (1, 1), KT, dtype)

        def blocks(lo, hi):
            # dy's images padded by (QH, QW) and unfolded as the forward pass unfolds x, in
            # the thread's memory (_Scratch): the padded dy (n, OH + 2·QH, OW + 2·QW, FN) and
            # its columns (n·H·W, KT)
            block = _scratch.block(key)
            rows = None if nhwc else np.empty((n * H * W, C), dtype=dtype)
            for i in range(lo, hi):
                s, e = bounds[i], bounds[i + 1]
                c = block.unfold(dy4, s, e)
                if nhwc:
                    np.matmul(c, w_t, out=dx[s * H * W:e * H * W])
                else:                   # x channels first: the block turned while in cache
                    r = np.matmul(c, w_t, out=rows[:(e - s) * H * W])
                    dx[s:e] = r.reshape(e - s, H, W, C).transpose(0, 3, 1, 2)

        parallel_for(len(bounds) - 1, blocks,
                     work=_work(N * H * W * (KT + C), 2 * N * H * W * KT * C), blas=True)
        return dx.reshape(N, H, W, C).transpose(0, 3, 1, 2) if nhwc else dx

    def _dx_col2im_nhwc(self, dy_rows, OH, OW, w_rows=None):  # noqa: N803
        """dL/dx = col2im(dy · w_rowsᵀ), channels last: each block's (n·P, K) gradient of its
        columns added back onto the windows it came from, FH·FW strided slices. (``w_rows``,
        when given, is that transposition of w, kept: conv_transpose2d's forward pass.)"""
        w = self.w
        FN, C, FH, FW = w.shape
        N, _, H, W = self.x_shape
        (PH, PW), (SH, SW) = self.pad, self.stride
        P, K = OH * OW, FH * FW * C
        dtype = np.result_type(dy_rows, w)
        if w_rows is None:
            w_rows = np.ascontiguousarray(w.transpose(2, 3, 1, 0), dtype=dtype).reshape(K, FN)
        nhwc = self.x_nhwc
        dx = np.empty((N, H, W, C) if nhwc else (N, C, H, W), dtype=dtype)
        bounds, largest = self._nhwc_blocks(N, K * P, dtype)

        def blocks(lo, hi):
            dxp = np.empty((largest, H + 2 * PH, W + 2 * PW, C), dtype=dtype)
            for i in range(lo, hi):
                s, e = bounds[i], bounds[i + 1]
                dcol = np.matmul(dy_rows[s * P:e * P], w_rows.T)   # (n·P, FN) · (FN, K)
                dcol6 = dcol.reshape(e - s, OH, OW, FH, FW, C)
                d = dxp[:e - s]
                d.fill(0)
                for i in range(FH):
                    for j in range(FW):
                        d[:, i:i + SH * (OH - 1) + 1:SH, j:j + SW * (OW - 1) + 1:SW] += \
                            dcol6[:, :, :, i, j]
                if nhwc:
                    dx[s:e] = d[:, PH:PH + H, PW:PW + W]
                else:
                    dx[s:e] = d[:, PH:PH + H, PW:PW + W].transpose(0, 3, 1, 2)

        parallel_for(len(bounds) - 1, blocks, work=_work(N * P * (K + FN), 2 * N * P * K * FN),
                     blas=True)
        return dx.transpose(0, 3, 1, 2) if nhwc else dx

    def backward_graph(self, dy):
        from minigrad.ops.grad_ops import conv2d_backward_graph

        return conv2d_backward_graph(self, dy)

    # ---------------------------------------------------- dilation, groups, asymmetric padding

    def _forward_general(self, x, w, b, pads):
        N, C, H, W = x.shape
        FN, Cg, FH, FW = w.shape
        G = self.groups
        OH, OW = dilated_output_size("conv2d", x.shape, (FH, FW), self.stride, pads,
                                     self.dilation)
        view = dilated_window_view(pad4(x, pads), (FH, FW), self.stride, self.dilation,
                                   (OH, OW))
        col = view.reshape(N, G, Cg * FH * FW, OH * OW)          # (N, G, K/G, P): a copy
        w_groups = w.reshape(G, FN // G, Cg * FH * FW)           # (G, FN/G, K/G)
        y = np.matmul(w_groups, col).reshape(N, FN, OH, OW)
        if b is not None:
            y = y.astype(np.result_type(y, b), copy=False)
            y += np.reshape(b, (1, FN, 1, 1))
        needs = getattr(self, "needs_input_grad", (True,) * (2 if b is None else 3))
        self.w_shape, self.x_shape, self.pads = w.shape, x.shape, pads
        if needs[1]:
            self.col = col
        if needs[0]:
            self.w = w
        return y

    def _backward_general(self, dy):
        if self.special == "depthwise":
            return self._backward_depthwise(dy)
        if self.special == "pointwise":
            return self._backward_pointwise(dy)
        if self.special == "grouped":
            return self._backward_grouped(dy)
        needs = self.needs_input_grad
        N, FN, OH, OW = dy.shape
        _, Cg, FH, FW = self.w_shape
        G = self.groups
        dy_groups = dy.reshape(N, G, FN // G, OH * OW)
        dx = dw = db = None
        if needs[1]:
            # dL/dw[g] = Σ_n dy[n, g] · col[n, g]ᵀ
            dw = np.matmul(dy_groups, self.col.transpose(0, 1, 3, 2)).sum(axis=0)
            dw = dw.reshape(self.w_shape)
        if len(needs) == 3 and needs[2]:
            db = dy.sum(axis=(0, 2, 3))
        if needs[0]:
            # dL/dcol[n, g] = w[g]ᵀ · dy[n, g], added back onto the windows it came from.
            w_groups = self.w.reshape(G, FN // G, Cg * FH * FW)
            dcol = np.matmul(w_groups.transpose(0, 2, 1), dy_groups)
            N, C, H, W = self.x_shape
            PT, PB, PL, PR = self.pads
            dxp = dilated_col2im(dcol.reshape(N, C, FH, FW, OH, OW),
                                 (N, C, H + PT + PB, W + PL + PR), self.stride, self.dilation)
            dx = crop4(dxp, self.pads, H, W)
        return (dx, dw) if len(needs) == 2 else (dx, dw, db)

    # --------------------------------------------------------- depthwise, grouped, 1×1 paths

    # The special paths' blocks of images: as many images as keep a block's arrays within
    # ``special_block_bytes``, so that a block's passes read and write the cache. Like the
    # channels-last blocks they depend on the shapes alone, and dL/dw's partial sums over
    # them are added in order: the same bits on any number of threads.
    special_block_bytes = 2048 << 10
    special = None
    # A group's columns, N·OH·OW·(C/G)·FH·FW values, from which the groups run as convolutions
    # of their own. A group's op costs about 25 µs more than its share of the general path's
    # product; the general path's one copy of all the columns about 1 ns a value more (3×3,
    # 64 → 64 channels in 4 groups, x (64, 64, 16, 16), forward: 16.8 → 8.3 ms). Batch 1 at
    # 16×16 with 8 channels a group (18 K values) took 2.2× as long as its own op, 32 channels
    # a group (74 K) 0.9×.
    grouped_from = 1 << 16

    def _special(self, x, w_shape, pads) -> str | None:
        """The path for these settings beside the general one: ``'depthwise'`` for one filter
        per channel (groups = C = FN, w (C, 1, FH, FW)) at any stride and dilation, and padding
        within the dilated kernel's span (PT ≤ (FH − 1)·DH and so on);
        ``'grouped'`` for other groups whose columns are at least ``grouped_from`` values a
        group; ``'pointwise'`` for a 1×1 kernel at stride 1 without padding, dilation or
        groups, in either layout of x (one path for both, so that both give the same bits);
        None otherwise. (x's channels were checked against w and groups before.)"""
        FN, Cg, FH, FW = w_shape
        if self.groups != 1:
            (DH, DW), (PT, PB, PL, PR) = self.dilation, pads
            if (Cg == 1 and FN == self.groups
                    and max(PT, PB) <= (FH - 1) * DH and max(PL, PR) <= (FW - 1) * DW):
                return "depthwise"
            OH, OW = dilated_output_size("conv2d", x.shape, (FH, FW), self.stride, pads,
                                         self.dilation)
            if len(x) and len(x) * OH * OW * Cg * FH * FW >= self.grouped_from:
                return "grouped"
            return None
        if ((FH, FW) == (1, 1) and self.stride == (1, 1) and self.dilation == (1, 1)
                and not any(pads)):
            return "pointwise"
        return None

    def _special_bounds(self, N: int, per_image: int) -> list[int]:  # noqa: N803
        """Images ``bounds[i]`` to ``bounds[i + 1]`` in block i: as few blocks, of sizes that
        differ by at most one image, as keep ``per_image`` bytes an image within
        ``special_block_bytes``."""
        n = max(1, -(-N // max(1, self.special_block_bytes // max(1, per_image))))
        return [N * i // n for i in range(n + 1)]

    def _forward_special(self, x, w, b, plan):
        """The forward pass of the path ``plan.special`` names (see :meth:`_special`)."""
        self.special, self.x_nhwc = plan.special, plan.x_nhwc
        self.x_shape, self.w_shape, self.pads, self.out = x.shape, w.shape, plan.pads, plan.out
        self.dtype = plan.dtype
        needs = getattr(self, "needs_input_grad", (True,) * (2 if b is None else 3))
        if x.dtype != plan.dtype:
            x = x.astype(plan.dtype)                   # keeps x's layout
        if needs[0]:
            self.w = w
        if plan.special == "pointwise":
            return self._forward_pointwise(x, w, b, plan.dtype, needs)
        if plan.special == "grouped":
            return self._forward_grouped(x, w, b, plan.dtype, needs)
        return self._forward_depthwise(x, w, b, plan.dtype, needs)

    def _forward_grouped(self, x, w, b, dtype, needs):
        """A grouped convolution as G convolutions of one group each (C/G channels, FN/G
        filters), each a Conv2d op on the path its own shapes take (the fast path, channels
        last from ``channels_last_from`` channels a group), their outputs side by side in
        the first one's layout. The ops are kept for backward."""
        G = self.groups
        C, FN = x.shape[1], w.shape[0]
        Cg, FNg = C // G, FN // G
        ops, y = [], None
        for g in range(G):
            op = Conv2d(stride=self.stride, padding=self.padding, dilation=self.dilation)
            op.needs_input_grad = needs
            inputs = (x[:, g * Cg:(g + 1) * Cg], w[g * FNg:(g + 1) * FNg])
            if b is not None:
                inputs += (b[g * FNg:(g + 1) * FNg],)
            yg = op.forward(*inputs)
            if y is None:
                y = _empty_like_layout(yg, (len(x), FN) + yg.shape[2:], dtype)
            y[:, g * FNg:(g + 1) * FNg] = yg
            ops.append(op)
        self.group_ops = ops
        return y

    def _backward_grouped(self, dy):
        """Each group's op's backward pass on its slice of dy; dL/dx, dL/dw and dL/db their
        results side by side (dL/dx in x's layout)."""
        needs = self.needs_input_grad
        N, C, H, W = self.x_shape
        FN = self.w_shape[0]
        G = self.groups
        Cg, FNg = C // G, FN // G
        dtype = np.result_type(dy.dtype, self.dtype)
        grads = [None] * len(needs)
        for g, op in enumerate(self.group_ops):
            parts = op.backward(dy[:, g * FNg:(g + 1) * FNg])
            op._release()
            for k, part in enumerate(parts):
                if part is None:
                    continue
                if grads[k] is None:
                    full = (self.x_shape, self.w_shape, (FN,))[k]
                    if k == 0 and self.x_nhwc:                  # dL/dx in x's layout
                        grads[0] = np.empty((N, H, W, C), dtype=dtype).transpose(0, 3, 1, 2)
                    else:
                        grads[k] = np.empty(full, dtype=np.result_type(part))
                rows = slice(g * Cg, (g + 1) * Cg) if k == 0 else slice(g * FNg, (g + 1) * FNg)
                if k == 0:
                    grads[0][:, rows] = part
                else:
                    grads[k][rows] = part
        return tuple(grads)

    def _forward_depthwise(self, x, w, b, dtype, needs):
        """Depthwise convolution, one filter per channel:

            y[n, c, oh, ow] = Σ_{i,j} xp[n, c, oh·SH + i·DH, ow·SW + j·DW] · w[c, 0, i, j] + b[c],

        on flat planes (:class:`_Planes`, split into SH·SW phase planes at a stride): per
        block of m images, each padded plane's FH·FW shifted runs copied into col
        (C, FH·FW, m·OH·Wq) (one ``memcpy`` a run) and one product per channel, w[c]
        (1, FH·FW) · col[c]. im2col's K = C·FH·FW columns would make (C − 1)/C of the
        products ones with zeros. The output is C-contiguous NCHW. At a stride, when w needs
        a gradient, the phase planes of the whole batch are kept (in a pooled array) for
        dL/dw."""
        N, C, H, W = x.shape
        FH, FW = w.shape[2:]
        planes = _planes((C, H, W), tuple(self.pads), (FH, FW), tuple(self.dilation),
                         tuple(self.stride))
        w_taps = np.asarray(w, dtype=dtype).reshape(C, FH * FW)
        kept = None
        if needs[1] and planes.strided:   # the phase planes, kept for dL/dw (pooled)
            kept = _recycled.empty((N * C * planes.plane + planes.margin,), dtype)
            self.planes = kept
        elif needs[1]:
            self.x = x
        y = planes.convolve(x, w_taps, b, dtype, self._special_bounds, kept)
        return y

    def _backward_depthwise(self, dy):
        """dL/db[c] = Σ dy[n, c]; dL/dw[c, 0, i, j] = Σ_{n,oh,ow} xp[n, c, oh·SH + i·DH,
        ow·SW + j·DW] · dy[n, c, oh, ow], one product per channel and block, col[c] · dy[c]
        (from the phase planes the forward pass kept at a stride), the blocks' sums added
        in order. dL/dx, in x's layout: at stride 1 the depthwise convolution of dy, padded
        by (FH − 1)·DH − PT rows above, (FH − 1)·DH − PB below (likewise the columns), with
        the filters turned by 180° (the path is taken only where those are ≥ 0); at a
        stride, phase by phase
        (:meth:`_Planes.input_grad`), each phase plane of dxp a stride-1 convolution of dy
        with the taps that read that phase."""
        needs = self.needs_input_grad
        N, C, H, W = self.x_shape
        FH, FW = self.w_shape[2:]
        PT, PB, PL, PR = self.pads
        (DH, DW), (OH, OW) = self.dilation, self.out
        dtype = np.result_type(dy.dtype, self.dtype)
        dx = dw = db = None
        if len(needs) == 3 and needs[2]:
            db = dy.sum(axis=(0, 2, 3), dtype=dtype)
        if needs[1]:
            planes = _planes((C, H, W), tuple(self.pads), (FH, FW), tuple(self.dilation),
                         tuple(self.stride))
            x, kept = self.__dict__.get("x"), self.__dict__.get("planes")
            dw = planes.weight_grad(x, kept, dy, dtype, self._special_bounds)
            if not np.isfinite(dw).all():       # an ∞ or NaN in x or dy: windows only
                dw = planes.weight_grad(x, kept, dy, dtype, self._special_bounds, True)
            dw = dw.reshape(self.w_shape)
        if needs[0] and self.stride != (1, 1):
            planes = _planes((C, H, W), tuple(self.pads), (FH, FW), tuple(self.dilation),
                         tuple(self.stride))
            dx = planes.input_grad(dy, np.asarray(self.w).reshape(C, FH * FW), dtype,
                                   self._special_bounds)
            if self.x_nhwc:
                dx = np.ascontiguousarray(dx.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        elif needs[0]:
            w_turned = np.asarray(self.w[:, :, ::-1, ::-1], dtype=dtype).reshape(C, FH * FW)
            turned = ((FH - 1) * DH - PT, (FH - 1) * DH - PB, (FW - 1) * DW - PL,
                      (FW - 1) * DW - PR)
            planes = _planes((C, OH, OW), turned, (FH, FW), tuple(self.dilation))
            dx = planes.convolve(dy, w_turned, None, dtype, self._special_bounds)
            if self.x_nhwc:
                dx = np.ascontiguousarray(dx.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        return (dx, dw) if len(needs) == 2 else (dx, dw, db)

    def _forward_pointwise(self, x, w, b, dtype, needs):
        """A 1×1 convolution at stride 1 is one matrix product per image, y[n] = w (FN, C) ·
        x[n] (C, H·W) (+ b), with no unfold: x's own memory is the columns (a channels-last x
        is copied to C order first, which costs less than the fast path's unfold and keeps
        both layouts' bits the same). The output is NCHW."""
        N, C, H, W = x.shape
        FN = w.shape[0]
        P = H * W
        w_mat = np.asarray(w, dtype=dtype).reshape(FN, C)
        x3 = np.ascontiguousarray(x).reshape(N, C, P)
        y = np.empty((N, FN, P), dtype=dtype)
        b_col = None if b is None else np.asarray(b, dtype=dtype).reshape(FN, 1)
        bounds = self._special_bounds(N, P * (C + FN) * np.dtype(dtype).itemsize)

        def blocks(lo, hi):
            for k in range(lo, hi):
                s, e = bounds[k], bounds[k + 1]
                np.matmul(w_mat, x3[s:e], out=y[s:e])      # (FN, C) · (n, C, P)
                if b_col is not None:
                    np.add(y[s:e], b_col, out=y[s:e])

        if N:
            parallel_for(len(bounds) - 1, blocks, work=_work(N * P * (C + FN), 2 * N * P * C * FN),
                         blas=True)
        if any(needs[1:]):
            self.x = x3
        return y.reshape(N, FN, H, W)

    def _backward_pointwise(self, dy):
        """dL/dw = Σ_n dy[n] · x[n]ᵀ (summed per block, the blocks in order), dL/dx[n] =
        wᵀ · dy[n], dL/db = Σ dy: products per image, dy made C-contiguous if it is not."""
        needs = self.needs_input_grad
        N, C, H, W = self.x_shape
        FN = self.w_shape[0]
        P = H * W
        dtype = np.result_type(dy.dtype, self.dtype)
        bounds = self._special_bounds(N, P * (C + FN) * np.dtype(dtype).itemsize)
        want_w = needs[1]
        dwp = np.zeros((len(bounds) - 1, FN, C), dtype=dtype) if want_w else None
        d = np.ascontiguousarray(dy, dtype=dtype).reshape(N, FN, P)
        x3 = self.__dict__.get("x")
        dx = w_t = None
        if needs[0]:
            w_t = np.asarray(self.w, dtype=dtype).reshape(FN, C).T
            dx = np.empty((N, C, P), dtype=dtype)

        def blocks(lo, hi):
            for k in range(lo, hi):
                s, e = bounds[k], bounds[k + 1]
                if want_w:
                    dwp[k] = np.matmul(d[s:e], x3[s:e].transpose(0, 2, 1)).sum(axis=0)
                if dx is not None:
                    np.matmul(w_t, d[s:e], out=dx[s:e])          # (C, FN) · (n, FN, P)

        if N and (want_w or dx is not None):
            parallel_for(len(bounds) - 1, blocks,
                         work=_work(N * P * (C + FN), 2 * N * P * C * FN), blas=True)
        dw = None if not want_w else dwp.sum(axis=0).reshape(self.w_shape)
        db = None
        if len(needs) == 3 and needs[2]:
            db = d.sum(axis=(0, 2))
        if dx is not None:
            dx = dx.reshape(N, C, H, W)
            if self.x_nhwc:                     # dL/dx in x's layout
                dx = np.ascontiguousarray(dx.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        return (dx, dw) if len(needs) == 2 else (dx, dw, db)


class ConvTranspose2d(Function):
    """2-D transposed convolution: the adjoint (transpose) of :class:`Conv2d` with respect to x.

    Its forward is conv2d's input gradient and its backward is conv2d's forward. With the
    weight in PyTorch's layout w (C_in, C_out/G, FH, FW), the conv2d it transposes maps
    (N, C_out, OH, OW) → (N, C_in, H, W) with weight w, the same stride, padding, dilation
    and groups; conv_transpose2d(x) is that map's transpose applied to x.

    Forward, per group g (channels of x and w split into G groups):
      col[n, g] = w[g].reshape(C_in/G, K)ᵀ · x[n, g].reshape(C_in/G, H·W)   (K = (C_out/G)·FH·FW)
      y = col2im(col) cropped by the padding, + b[c_out]
    i.e. y[n, o, oh, ow] = Σ_{c,h,w,i,j : h·SH + i·DH − PH = oh, w·SW + j·DW − PW = ow}
                           x[n, c, h, w] · w[c, o − g·C_out/G, i, j] + b[o]   (c, o in group g).

    Backward, with dy (N, C_out, OH, OW):
      dL/dx = conv2d(dy, w, stride, padding, dilation, groups): im2col(dy) and one product
      dL/dw[g] = Σ_n x[n, g] · im2col(dy)[n, g]ᵀ              reshaped to (C_in/G, C_out/G, FH, FW)
      dL/db = Σ_{n,oh,ow} dy[n, :, oh, ow]

    Shapes: x (N, C_in, H, W), w (C_in, C_out/G, FH, FW), b (C_out,) → y (N, C_out, OH, OW),
    OH = (H − 1)·SH − 2·PH + DH·(FH − 1) + OPH + 1 (likewise OW); ``output_padding`` (OPH,
    OPW), smaller than the stride or the dilation, adds rows and columns at the bottom and right
    (they pick out which of the input sizes that conv2d maps to (H, W) is meant).
    Linear in each input: no kinks. Saved: x if w needs a gradient, w if x does.
    """

    output_padding = (0, 0)
    groups = 1
    dilation = (1, 1)

    def __init__(self, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
        op = "conv_transpose2d"
        self.stride = pair(op, "stride", stride, 1)
        self.padding = pair(op, "padding", padding, 0)
        output_padding = pair(op, "output_padding", output_padding, 0)
        groups = _groups(op, groups)
        dilation = pair(op, "dilation", dilation, 1)
        for a in (0, 1):
            if output_padding[a] >= max(self.stride[a], dilation[a]):
                raise ValueError(f"{op}: output_padding must be smaller than the stride or the "
                                 f"dilation, got output_padding={output_padding}, "
                                 f"stride={self.stride}, dilation={dilation}")
        if output_padding != (0, 0):
            self.output_padding = output_padding
        if groups != 1:
            self.groups = groups
        if dilation != (1, 1):
            self.dilation = dilation

    def forward(self, x, w, b=None):
        op = "conv_transpose2d"
        x, w = np.asarray(x), np.asarray(w)
        _check_x(op, x)
        if w.ndim != 4:
            raise ValueError(f"{op}: weight must be 4-D (C_in, C_out/groups, FH, FW), got "
                             f"w.shape={w.shape}")
        _check_kernel(op, "weight (C_in, C_out/groups, FH, FW)", w.shape)
        N, C_in, H, W = x.shape
        G = self.groups
        if w.shape[0] != C_in:
            raise ValueError(f"{op}: input has {C_in} channels but weight (C_in, C_out/groups, "
                             f"FH, FW)={w.shape} expects {w.shape[0]}; x.shape={x.shape}")
        if C_in % G:
            raise ValueError(f"{op}: groups={G} must divide the input channels C_in={C_in}; "
                             f"x.shape={x.shape}")
        _, Cg_out, FH, FW = w.shape
        C_out = Cg_out * G
        if b is not None and np.shape(b) != (C_out,):
            raise ValueError(f"{op}: bias must have shape (C_out,)=({C_out},) for weight "
                             f"(C_in, C_out/groups, FH, FW)={w.shape} and groups={G}; got "
                             f"b.shape={np.shape(b)}")
        (SH, SW), (PH, PW), (DH, DW) = self.stride, self.padding, self.dilation
        OPH, OPW = self.output_padding
        OH = (H - 1) * SH - 2 * PH + DH * (FH - 1) + OPH + 1
        OW = (W - 1) * SW - 2 * PW + DW * (FW - 1) + OPW + 1
        if OH < 1 or OW < 1:
            raise ValueError(f"{op}: the output would be ({OH}, {OW}) for x.shape={x.shape}, "
                             f"kernel (FH, FW)=({FH}, {FW}), stride={self.stride}, padding="
                             f"{self.padding}, dilation={self.dilation}: padding too large")
        needs = getattr(self, "needs_input_grad", (True,) * (2 if b is None else 3))
        self.x_shape, self.w_shape = x.shape, w.shape
        if needs[1]:
            self.x = x
        if needs[0]:
            self.w = w
        if G == 1 and (DH, DW) == (1, 1) and N:          # Conv2d's fast path, transposed
            y = self._conv2d_dx(x, w, (N, C_out, OH, OW))
        else:
            y = self._forward_general(x, w, (OH, OW))
        if b is not None:
            y = y.astype(np.result_type(y, b), copy=False)
            y += np.reshape(b, (1, C_out, 1, 1))
        return y

    def _conv2d_dx(self, x, w, y_shape):
        """conv_transpose2d(x) as Conv2d's dL/dx of its channels-last fast path with dy = x:
        per block of images, the product x_rows · w_rows (n·H·W, C_in) · (C_in, C_out·FH·FW)
        and col2im of it into the block's padded output, in the cache."""
        conv = Conv2d(stride=self.stride, padding=self.padding)
        conv.pad, conv.w, conv.w_shape, conv.x_shape = self.padding, w, w.shape, y_shape
        conv.x_nhwc = channels_last(x)
        N, C_in, H, W = x.shape
        dtype = np.result_type(x, w)
        x_rows = np.ascontiguousarray(x.transpose(0, 2, 3, 1), dtype=dtype).reshape(-1, C_in)
        w_rows = _weight_rows.get(w, None, dtype)          # kept while w's bytes stay the same
        return conv._dx_col2im_nhwc(x_rows, H, W, w_rows)

    def _forward_general(self, x, w, out):
        """col = w[g]ᵀ · x[n, g] for every image and group, then col2im, cropped."""
        N, C_in, H, W = x.shape
        _, Cg_out, FH, FW = w.shape
        G = self.groups
        C_out = Cg_out * G
        OH, OW = out
        PH, PW = self.padding
        K = Cg_out * FH * FW
        x_groups = x.reshape(N, G, C_in // G, H * W)
        col = np.matmul(w.reshape(G, C_in // G, K).transpose(0, 2, 1), x_groups)  # (N, G, K, HW)
        pads = (PH, PH, PW, PW)
        yp = dilated_col2im(col.reshape(N, C_out, FH, FW, H, W),
                            (N, C_out, OH + 2 * PH, OW + 2 * PW), self.stride, self.dilation)
        y = crop4(yp, pads, OH, OW)
        return y

    def backward_graph(self, dy):
        from minigrad.ops.grad_ops import conv_transpose2d_backward_graph

        return conv_transpose2d_backward_graph(self, dy)

    # The batch from which backward runs through a Conv2d op: below it the op's own setup
    # costs more than it saves (4×4 filters at stride 2, 64 → 32 channels at 8×8: forward
    # and backward 0.47 → 0.53 ms at batch 1, 0.86 → 0.94 at batch 2, 1.73 → 1.50 at 4).
    conv2d_backward_from = 4

    def backward(self, dy):
        needs = self.needs_input_grad
        if (self.groups == 1 and self.dilation == (1, 1)
                and self.x_shape[0] >= self.conv2d_backward_from):
            return self._backward_conv2d(dy, needs)
        return self._backward_general(dy, needs)

    def _backward_general(self, dy, needs):
        """im2col of dy (conv2d's forward pass on it) and one product per group and image."""
        N, C_in, H, W = self.x_shape
        _, Cg_out, FH, FW = self.w_shape
        G = self.groups
        K = Cg_out * FH * FW
        PH, PW = self.padding
        dx = dw = db = None
        if needs[0] or needs[1]:
            # conv2d's forward on dy: its columns (N, G, K, H·W).
            view = dilated_window_view(pad4(dy, (PH, PH, PW, PW)), (FH, FW), self.stride,
                                       self.dilation, (H, W))
            col = view.reshape(N, G, K, H * W)
            if needs[0]:
                dx = np.matmul(self.w.reshape(G, C_in // G, K), col).reshape(self.x_shape)
            if needs[1]:
                x_groups = self.x.reshape(N, G, C_in // G, H * W)
                dw = np.matmul(x_groups, col.transpose(0, 1, 3, 2)).sum(axis=0)
                dw = dw.reshape(self.w_shape)
        if len(needs) == 3 and needs[2]:
            db = dy.sum(axis=(0, 2, 3))
        return (dx, dw) if len(needs) == 2 else (dx, dw, db)

    def _backward_conv2d(self, dy, needs):
        """dL/dx = conv2d(dy, w) and dL/dw that convolution's weight gradient at dL/dy = x,
        both by one Conv2d op on its fast path (its forward pass, then its backward pass for
        the weight alone)."""
        conv = Conv2d(stride=self.stride, padding=self.padding)
        conv.needs_input_grad = (False, bool(needs[1]))
        dx = dw = db = None
        if needs[0] or needs[1]:
            w = self.__dict__.get("w")
            if w is None:               # dL/dw alone: the forward pass's output is not used
                w = np.zeros(self.w_shape, dtype=np.result_type(dy, self.x))
            y = conv.forward(dy, w)
            if needs[0]:
                dx = y
            if needs[1]:
                dw = conv.backward(self.x)[1]
            conv._release()
        if len(needs) == 3 and needs[2]:
            db = dy.sum(axis=(0, 2, 3))
        return (dx, dw) if len(needs) == 2 else (dx, dw, db)
