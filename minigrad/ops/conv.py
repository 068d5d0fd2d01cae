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
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from minigrad.function import Function
from minigrad.parallel import parallel_for


def pair(op: str, name: str, value, minimum: int) -> tuple[int, int]:
    """``value`` (an int or an (h, w) pair of ints) as an (h, w) tuple, each ≥ ``minimum``.

    >>> pair("conv2d", "stride", 2, 1)
    (2, 2)
    >>> pair("conv2d", "padding", (1, 0), 0)
    (1, 0)
    """
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
    return as_strided(xp, (N, C, FH, FW, OH, OW), (sN, sC, sH, sW, sH * SH, sW * SW),
                      writeable=False)


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

    The bias rides in the matrix product as the weight of an extra row of ones appended to col,
    so forward is a single product (no separate pass to add b) and one product in backward
    gives dL/dw and dL/db together. Saved: col (with its row of ones) when w or b needs a
    gradient, w when x needs one. No col2im is run when x needs no gradient (the input layer).
    """

    def __init__(self, stride=1, padding=0):
        self.stride = pair("conv2d", "stride", stride, 1)
        self.padding = pair("conv2d", "padding", padding, 0)

    def forward(self, x, w, b=None):
        x, w = np.asarray(x), np.asarray(w)
        _check_x("conv2d", x)
        if w.ndim != 4:
            raise ValueError(f"conv2d: weight must be 4-D (FN, C, FH, FW), got "
                             f"w.shape={w.shape}")
        FN, C, FH, FW = w.shape
        if x.shape[1] != C:
            raise ValueError(f"conv2d: input has {x.shape[1]} channels but weight "
                             f"(FN, C, FH, FW)={w.shape} expects {C}; x.shape={x.shape}")
        if b is not None and np.shape(b) != (FN,):
            raise ValueError(f"conv2d: bias must have shape (FN,)=({FN},) for weight "
                             f"(FN, C, FH, FW)={w.shape}; got b.shape={np.shape(b)}")
        OH, OW = output_size("conv2d", x.shape, (FH, FW), self.stride, self.padding)
        N = x.shape[0]
        K, P = C * FH * FW, OH * OW
        dtype = np.result_type(x, w) if b is None else np.result_type(x, w, b)
        rows = K if b is None else K + 1
        col = np.empty((N, rows, P), dtype=dtype)
        view = window_view(pad(x, self.padding), (FH, FW), self.stride, (OH, OW))
        w_mat = w.reshape(FN, K)
        if b is not None:
            w_mat = np.concatenate([w_mat, np.reshape(b, (FN, 1))], axis=1, dtype=dtype)
        y = np.empty((N, FN, P), dtype=dtype)

        def images(lo, hi):                             # images lo..hi−1, on one thread
            np.copyto(col[lo:hi, :K].reshape(hi - lo, C, FH, FW, OH, OW), view[lo:hi])
            if b is not None:
                col[lo:hi, K] = 1
            np.matmul(w_mat, col[lo:hi], out=y[lo:hi])  # (FN, rows) · (n, rows, P) → (n, FN, P)

        parallel_for(N, images, work=N * (rows + FN) * P, blas=True)

        needs = getattr(self, "needs_input_grad", (True,) * (2 if b is None else 3))
        self.w_shape = w.shape
        if any(needs[1:]):
            self.col = col
        if needs[0]:
            self.w = w
            self.x_shape = x.shape
        return y.reshape(N, FN, OH, OW)

    def backward(self, dy):
        needs = self.needs_input_grad
        N, FN, OH, OW = dy.shape
        dy = dy.reshape(N, FN, OH * OW)
        dx = dw = db = None
        if any(needs[1:]):
            # (N, FN, P) · (N, P, rows) → (N, FN, rows), summed over the batch: the last
            # column (from the row of ones) is dL/db.
            col = self.col
            per_image = np.empty((N, FN, col.shape[1]), dtype=np.result_type(dy, col))

            def images(lo, hi):
                np.matmul(dy[lo:hi], col[lo:hi].transpose(0, 2, 1), out=per_image[lo:hi])

            parallel_for(N, images, work=col.size + dy.size, blas=True)
            dwb = per_image.sum(axis=0)
            K = math.prod(self.w_shape[1:])
            if needs[1]:
                dw = dwb[:, :K].reshape(self.w_shape)
            if len(needs) == 3 and needs[2]:
                db = np.ascontiguousarray(dwb[:, K])
        if needs[0]:
            w = self.w
            dx = np.empty(self.x_shape, dtype=np.result_type(dy, w))

            def images(lo, hi):
                dcol = np.matmul(w.reshape(FN, -1).T, dy[lo:hi])  # (K, FN) · (n, FN, P)
                _col2im(dcol, dx[lo:hi].shape, w.shape[2:], self.stride, self.padding,
                        (OH, OW), dx=dx[lo:hi])

            parallel_for(N, images, work=2 * w[0].size * N * OH * OW, blas=True)
        return (dx, dw) if len(needs) == 2 else (dx, dw, db)

    def backward_graph(self, dy):
        from minigrad.ops.grad_ops import conv2d_backward_graph

        return conv2d_backward_graph(self, dy)
