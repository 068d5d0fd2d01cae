"""What the figure-drawing functions share: a pyplot-free figure, saving it, images to show."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from minigrad.viz._files import _atomic_write


def new_figure(width: float, height: float, layout: str | None = "constrained") -> Any:
    """A ``matplotlib.figure.Figure`` on its own Agg canvas: pyplot's state is left alone.

    Grids of images pass ``layout=None`` and place their cells with :func:`image_grid`:
    constrained layout costs a lot with dozens of axes and gains nothing there.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout=layout)
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Any, path: str | os.PathLike | None, dpi: int) -> None:
    """Save ``figure`` to ``path`` (format from the suffix, PNG without one), atomically."""
    if path is not None:
        suffix = Path(path).suffix.lstrip(".").lower() or "png"
        _atomic_write(path, lambda f: figure.savefig(f, format=suffix, dpi=dpi))


def as_array(value: Any, what: str) -> np.ndarray:
    """The NumPy array of a Tensor, Parameter or array-like."""
    from minigrad.tensor import Tensor

    array = value.data if isinstance(value, Tensor) else np.asarray(value)
    if array.dtype.kind not in "fiub":
        raise TypeError(f"{what}: expected numbers, got an array of dtype {array.dtype}")
    return array


def as_images(x: np.ndarray, what: str) -> np.ndarray:
    """Images to draw, (N, H, W) grey or (N, H, W, 3) colour, from (N, C, H, W) with C of 1 or
    3, (N, H, W), or flattened (N, D) with D a square (784 -> 28×28)."""
    if x.ndim == 4 and x.shape[1] in (1, 3):
        return x[:, 0] if x.shape[1] == 1 else x.transpose(0, 2, 3, 1)
    if x.ndim == 3:
        return x
    if x.ndim == 2:
        side = int(round(np.sqrt(x.shape[1])))
        if side * side == x.shape[1]:
            return x.reshape(len(x), side, side)
    raise ValueError(f"{what}: cannot draw images of shape {x.shape}; expected (N, 1, H, W), "
                     f"(N, 3, H, W), (N, H, W) or (N, D) with D a square such as 784")


def hide_ticks(ax: Any) -> None:
    """An image axis: no ticks, no frame labels."""
    ax.set_xticks([])
    ax.set_yticks([])


def grid_shape(count: int, ncols: int) -> tuple[int, int]:
    """(rows, columns) of a grid of ``count`` cells at most ``ncols`` wide."""
    cols = max(1, min(count, ncols))
    return -(-count // cols), cols


def image_grid(figure: Any, rows: int, cols: int, height: float, title: float) -> Any:
    """A ``GridSpec`` of rows × cols image cells filling ``figure`` (or a subfigure) of
    ``height`` inches below ``title`` inches left for its title."""
    top = 1.0 - (title + 0.03) / height
    return figure.add_gridspec(rows, cols, left=0.01, right=0.99, bottom=0.03 / height,
                               top=top, wspace=0.12, hspace=0.12)
