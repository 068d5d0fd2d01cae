"""2-D max and average pooling, by strided views of the input (no im2col).

Notation: x (N, C, H, W); a KH×KW window moved by a stride (SH, SW) over x padded by (PH, PW);
y (N, C, OH, OW) with OH = 1 + (H + 2·PH − KH) // SH (likewise OW).

Both ops loop over the KH·KW offsets (i, j) of the window, never over output pixels: for a
fixed offset, the elements ``xp[:, :, oh·SH + i, ow·SW + j]`` of every window form one strided
view (N, C, OH, OW) of the padded input, so each step is one vectorised NumPy operation on the
whole batch. When the windows tile the input (stride = kernel, no padding) these views are the
slices ``x6[:, :, :, i, :, j]`` of x reshaped to (N, C, OH, KH, OW, KW), and each input element
belongs to at most one window, so backward writes each offset's gradient in place instead of
adding it.
"""

from __future__ import annotations

import numpy as np

from minigrad.function import Function
from minigrad.ops.conv import output_size, pad, pair


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


def _offset_slices(kernel, stride, out):
    """For each window offset (i, j) in row-major order, the index of its view of xp."""
    (KH, KW), (SH, SW), (OH, OW) = kernel, stride, out
    for i in range(KH):
        rows = slice(i, i + SH * (OH - 1) + 1, SH)
        for j in range(KW):
            yield (Ellipsis, rows, slice(j, j + SW * (OW - 1) + 1, SW))


def _grad_buffer(x_shape, dtype, kernel, stride, padding, out):
    """(dxp, overlap): a buffer for dL/d(padded x), and whether windows overlap.

    Without overlap each element gets the gradient of at most one window, so backward may
    write each offset's share in place; the buffer then starts as zeros only when some
    elements lie in no window (padding, or H not a multiple of KH when the windows tile).
    """
    N, C, H, W = x_shape
    (PH, PW), (SH, SW), (KH, KW), (OH, OW) = padding, stride, kernel, out
    overlap = SH < KH or SW < KW
    covers_all = (padding == (0, 0) and (SH, SW) == (KH, KW)
                  and OH * KH == H and OW * KW == W)
    shape = (N, C, H + 2 * PH, W + 2 * PW)
    return (np.empty(shape, dtype) if covers_all else np.zeros(shape, dtype)), overlap


def _unpad(dxp, padding):
    """dL/dx from dL/d(padded x): the padding's share is dropped."""
    PH, PW = padding
    if PH == 0 and PW == 0:
        return dxp
    return np.ascontiguousarray(dxp[:, :, PH:dxp.shape[2] - PH, PW:dxp.shape[3] - PW])


def _lowest(dtype):
    """A value no element can beat: −∞ for floats, the smallest integer for integers."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return -np.inf
    if dtype.kind in "iu":
        return np.iinfo(dtype).min
    return False


class MaxPool2d(Function):
    """2-D max pooling: the largest element of each KH×KW window.

    Forward: y[n, c, oh, ow] = max_{i,j} xp[n, c, oh·SH + i, ow·SW + j], xp = x padded with −∞
    (padded cells never win).

    Backward: dL/dx[n, c, h, w] = Σ over the windows whose winner is x[n, c, h, w] of
    dL/dy of that window (a sum only where windows overlap, stride < kernel).

    Shapes: x (N, C, H, W) → y (N, C, OH, OW), OH = 1 + (H + 2·PH − KH) // SH.
    Ties: the gradient of a window goes to its FIRST maximal element in row-major order of the
    window (smallest i, then smallest j), as PyTorch does; the other tied elements get 0.

    Saved: x (a reference, not a copy) and y. Forward only takes maxima; backward finds each
    window's first winner by comparing the offset views with y in order and handing dL/dy to
    the first match (then zeroing it so later ties get nothing).
    """

    def __init__(self, kernel_size, stride=None, padding=0):
        self.kernel_size, self.stride, self.padding = _settings(
            "max_pool2d", kernel_size, stride, padding)

    def forward(self, x):
        x = np.asarray(x)
        out = _check_input("max_pool2d", x, self.kernel_size, self.stride, self.padding)
        xp = pad(x, self.padding, _lowest(x.dtype))
        views = _offset_slices(self.kernel_size, self.stride, out)
        y = xp[next(views)].copy()
        for index in views:
            np.maximum(y, xp[index], out=y)
        self.x, self.y, self.out = x, y, out
        return y

    def backward(self, dy):
        x, y = self.x, self.y
        kernel, stride, padding = self.kernel_size, self.stride, self.padding
        xp = pad(x, padding, _lowest(x.dtype))
        dxp, overlap = _grad_buffer(x.shape, dy.dtype, kernel, stride, padding, self.out)
        remaining = dy.copy()           # dL/dy of the windows whose winner is not found yet
        for index in _offset_slices(kernel, stride, self.out):
            won = xp[index] == y
            # Masks are applied by multiplication: np.where / copyto(where=) branch on every
            # element and are several times slower on such irregular masks.
            if overlap:
                share = remaining * won
                dxp[index] += share
            else:
                share = np.multiply(remaining, won, out=dxp[index])
            remaining -= share          # exact: r − r = 0 for the winner, r − 0 = r elsewhere
        return _unpad(dxp, padding)


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
        xp = pad(x, self.padding)
        views = _offset_slices(self.kernel_size, self.stride, out)
        y = xp[next(views)].copy()
        for index in views:
            y += xp[index]
        KH, KW = self.kernel_size
        y *= y.dtype.type(1 / (KH * KW))
        self.x_shape, self.out = x.shape, out
        return y

    def backward(self, dy):
        kernel, stride, padding = self.kernel_size, self.stride, self.padding
        KH, KW = kernel
        dyk = dy * dy.dtype.type(1 / (KH * KW))
        dxp, overlap = _grad_buffer(self.x_shape, dy.dtype, kernel, stride, padding, self.out)
        for index in _offset_slices(kernel, stride, self.out):
            if overlap:
                dxp[index] += dyk
            else:
                dxp[index] = dyk
        return _unpad(dxp, padding)
