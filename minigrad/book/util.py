"""im2col and col2im the book's way (``common/util.py``): rows are windows, columns are taps.

The book unfolds the windows of a batch of images into a 2-D matrix with one row per output
pixel and one column per (channel, kernel row, kernel column):

    col[(n·OH + oh)·OW + ow, (c·FH + i)·FW + j] = xp[n, c, oh·S + i, ow·S + j]

where xp is x zero-padded by ``pad`` on every side, OH = (H + 2·pad − FH) // S + 1 and
likewise OW. A convolution is then one product ``col @ W.reshape(FN, -1).T`` (chapter 7.4.3).
``minigrad.functional.im2col`` holds the same numbers in the transposed, batched layout
(N, C·FH·FW, OH·OW); ``col2im`` is the adjoint of ``im2col``: ⟨im2col(x), y⟩ = ⟨x, col2im(y)⟩.
"""

from __future__ import annotations

import numpy as np

__all__ = ["im2col", "col2im"]


def _out_size(op: str, shape: tuple, filter_h: int, filter_w: int, stride: int,
              pad: int) -> tuple[int, int]:
    if len(shape) != 4:
        raise ValueError(f"{op}: expected (N, C, H, W), got shape {tuple(shape)}")
    if int(stride) < 1 or int(pad) < 0 or int(filter_h) < 1 or int(filter_w) < 1:
        raise ValueError(f"{op}: need filter ≥ 1, stride ≥ 1 and pad ≥ 0; got "
                         f"filter=({filter_h}, {filter_w}), stride={stride}, pad={pad}")
    N, C, H, W = shape
    out_h = (H + 2 * pad - filter_h) // stride + 1
    out_w = (W + 2 * pad - filter_w) // stride + 1
    if out_h < 1 or out_w < 1:
        raise ValueError(f"{op}: a ({filter_h}, {filter_w}) filter does not fit the padded "
                         f"input ({H + 2 * pad}, {W + 2 * pad}); shape={tuple(shape)}, "
                         f"pad={pad}")
    return out_h, out_w


def im2col(input_data: np.ndarray, filter_h: int, filter_w: int, stride: int = 1,
           pad: int = 0) -> np.ndarray:
    """Unfold the filter windows of a batch of images into rows (book 7.4.3, ``common/util.py``).

    Args:
        input_data: images (N, C, H, W).
        filter_h, filter_w: the window's height and width.
        stride, pad: ints, the same for rows and columns as in the book.

    Returns:
        col (N·OH·OW, C·FH·FW), of the input's dtype.

    >>> x = np.arange(9.0).reshape(1, 1, 3, 3)
    >>> im2col(x, 2, 2)
    array([[0., 1., 3., 4.],
           [1., 2., 4., 5.],
           [3., 4., 6., 7.],
           [4., 5., 7., 8.]])
    """
    input_data = np.asarray(input_data)
    out_h, out_w = _out_size("im2col", input_data.shape, filter_h, filter_w, stride, pad)
    N, C, H, W = input_data.shape
    img = np.pad(input_data, [(0, 0), (0, 0), (pad, pad), (pad, pad)], "constant")
    col = np.zeros((N, C, filter_h, filter_w, out_h, out_w), input_data.dtype)
    # One slice per tap (y, x) of the filter: FH·FW strided copies instead of a loop over
    # the output pixels.
    for y in range(filter_h):
        y_max = y + stride * out_h
        for x in range(filter_w):
            x_max = x + stride * out_w
            col[:, :, y, x, :, :] = img[:, :, y:y_max:stride, x:x_max:stride]
    return col.transpose(0, 4, 5, 1, 2, 3).reshape(N * out_h * out_w, -1)


def col2im(col: np.ndarray, input_shape: tuple, filter_h: int, filter_w: int,
           stride: int = 1, pad: int = 0) -> np.ndarray:
    """Fold rows back onto their windows, adding where windows overlap (the adjoint of im2col).

    Args:
        col: (N·OH·OW, C·FH·FW), laid out as :func:`im2col` gives it.
        input_shape: (N, C, H, W) of the images.
        filter_h, filter_w, stride, pad: as given to :func:`im2col`.

    Returns:
        (N, C, H, W) of col's dtype; the padding is cut off.

    >>> col2im(np.ones((4, 4)), (1, 1, 3, 3), 2, 2)[0, 0]   # windows covering each pixel
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    """
    input_shape = tuple(int(n) for n in input_shape)
    out_h, out_w = _out_size("col2im", input_shape, filter_h, filter_w, stride, pad)
    N, C, H, W = input_shape
    col = np.asarray(col)
    expected = (N * out_h * out_w, C * filter_h * filter_w)
    if col.shape != expected:
        raise ValueError(f"col2im: col must have shape (N·OH·OW, C·FH·FW)={expected} for "
                         f"input_shape={input_shape}, filter=({filter_h}, {filter_w}), "
                         f"stride={stride}, pad={pad}; got col.shape={col.shape}")
    col = col.reshape(N, out_h, out_w, C, filter_h, filter_w).transpose(0, 3, 4, 5, 1, 2)
    # stride − 1 spare rows and columns: the slices below may end past the padded image.
    img = np.zeros((N, C, H + 2 * pad + stride - 1, W + 2 * pad + stride - 1), col.dtype)
    for y in range(filter_h):
        y_max = y + stride * out_h
        for x in range(filter_w):
            x_max = x + stride * out_w
            img[:, :, y:y_max:stride, x:x_max:stride] += col[:, :, y, x, :, :]
    return img[:, :, pad:H + pad, pad:W + pad]
