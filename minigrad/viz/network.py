"""Looking at a trained network: its filters, its feature maps, the images it gets wrong.

- ``show_filters``: the convolution filters (FN, C, FH, FW) as a grid of small images
  (the book's figure 7-24, before and after training);
- ``show_feature_maps``: what each convolution, pooling and activation layer outputs for one
  image (figure 7-26's idea, for every layer);
- ``misclassified`` / ``plot_misclassified``: the test images whose predicted class is wrong,
  with the true and the predicted label (figure 8-6).

Every function returns a ``matplotlib.figure.Figure`` made on its own Agg canvas (pyplot and the
backend are left alone; Jupyter shows the figure inline) and, given ``path``, also saves it
atomically.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from minigrad.viz._figures import (
    as_array,
    as_images,
    grid_shape,
    hide_ticks,
    image_grid,
    new_figure,
    save_figure,
)

__all__ = ["misclassified", "plot_misclassified", "show_feature_maps", "show_filters"]

_CELL = 0.62  # inches per small image


# ---------------------------------------------------------------------------- filters
def _normalise(w: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] by the array's own min and max (a constant array becomes 0.5)."""
    w = w.astype(np.float64)
    lo, hi = float(w.min()), float(w.max())
    return np.full_like(w, 0.5) if hi == lo else (w - lo) / (hi - lo)


def show_filters(weight: Any, *, channel: int | None = None, ncols: int = 8,
                 cmap: str = "gray_r", title: str | None = None,
                 path: str | os.PathLike | None = None, dpi: int = 100) -> Any:
    """Draw convolution filters as a grid of images, each scaled by its own min and max.

    Each filter is normalised on its own (its smallest weight white, its largest black with the
    default ``cmap="gray_r"``, the book's colours), so the pattern it looks for shows however
    small its weights are. Random filters look like noise; trained first-layer filters look
    like edge and blob detectors (the book's figure 7-24).

    Args:
        weight: (FN, C, FH, FW) weights: a Parameter, Tensor or array, or a module with a
            ``weight`` of that shape (``model.conv1``).
        channel: draw only this input channel of every filter. By default a one-channel filter
            is one image, and a filter with C > 1 channels is a row of C images.
        ncols: images per row when each filter is one image.
        cmap: a matplotlib colour map name.
        title: a title above the grid.
        path: if given, the figure is also saved there (format from the suffix), atomically.
        dpi: resolution of a saved PNG.

    Returns:
        The ``matplotlib.figure.Figure``: one axes per image drawn.

    Raises:
        ValueError: ``weight`` is not 4-D, or ``channel`` is out of range.

    >>> import numpy as np
    >>> fig = show_filters(np.random.default_rng(0).normal(size=(30, 1, 5, 5)))
    >>> len(fig.axes)
    30
    """
    if not isinstance(weight, np.ndarray) and hasattr(weight, "weight"):
        weight = weight.weight
    w = as_array(weight, "show_filters")
    if w.ndim != 4:
        raise ValueError(f"show_filters: expected convolution weights (FN, C, FH, FW), got "
                         f"shape {w.shape}")
    FN, C, FH, FW = w.shape
    if channel is not None:
        if not 0 <= channel < C:
            raise ValueError(f"show_filters: channel {channel} is out of range for weights "
                             f"(FN, C, FH, FW)={w.shape}")
        w = w[:, channel:channel + 1]
        C = 1
    if ncols < 1:
        raise ValueError(f"show_filters: ncols must be positive, got {ncols}")
    if C == 1:
        rows, cols = grid_shape(FN, ncols)
        cells = [(i // cols, i % cols, _normalise(w[i, 0])) for i in range(FN)]
    else:  # one row per filter, one column per input channel, normalised over the filter
        rows, cols = FN, C
        cells = []
        for i in range(FN):
            filter_i = _normalise(w[i])
            cells += [(i, c, filter_i[c]) for c in range(C)]
    title_height = 0.35 if title else 0.0
    height = rows * _CELL * FH / FW + title_height + 0.05
    figure = new_figure(cols * _CELL, height, layout=None)
    grid = image_grid(figure, rows, cols, height, title_height)
    for row, col, image in cells:
        ax = figure.add_subplot(grid[row, col])
        ax.imshow(image, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
        hide_ticks(ax)
    if title:
        figure.suptitle(title, y=1.0 - 0.05 / height, va="top")
    save_figure(figure, path, dpi)
    return figure


# ---------------------------------------------------------------------------- predictions
def _batches(model: Any, x: np.ndarray, batch_size: int) -> np.ndarray:
    """The model's outputs for ``x`` in evaluation mode, without a graph; modes restored."""
    from minigrad.tensor import no_grad

    modes = [(m, m.training) for m in model.modules()] if hasattr(model, "modules") else []
    if hasattr(model, "eval"):
        model.eval()
    try:
        with no_grad():
            outs = [np.asarray(model(x[i:i + batch_size]).data)
                    for i in range(0, len(x), batch_size)]
    finally:
        for module, mode in modes:
            object.__setattr__(module, "training", mode)
    return np.concatenate(outs)


def misclassified(model: Any, x: Any, t: Any, batch_size: int = 1000
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The images a classifier gets wrong: their indices and the classes it predicted.

    The model runs in evaluation mode (dropout off) without recording a graph; its training
    mode is restored afterwards.

    Args:
        model: a module (or any callable) mapping images (N, ...) to class scores (N, K).
        x: the images, as the model takes them.
        t: the labels, (N,) integers or (N, K) one-hot.
        batch_size: images per forward pass.

    Returns:
        ``(indices, predicted)``: int arrays, the positions in ``x`` where the highest score is
        not the label, in order, and the predicted class of each.

    Raises:
        ValueError: ``x`` and ``t`` hold different numbers of images, or ``x`` is empty.
    """
    x = as_array(x, "misclassified")
    t = as_array(t, "misclassified")
    if t.ndim == 2:
        t = t.argmax(axis=1)
    if len(x) != len(t) or len(x) == 0:
        raise ValueError(f"misclassified: need as many labels as images, at least one; got "
                         f"x.shape={x.shape}, t.shape={t.shape}")
    predicted = _batches(model, x, batch_size).argmax(axis=1)
    wrong = np.flatnonzero(predicted != t)
    return wrong, predicted[wrong]


def plot_misclassified(model: Any, x: Any, t: Any, *, max_images: int = 20, ncols: int = 10,
                       batch_size: int = 1000, predicted: Any = None, title: str | None = None,
                       path: str | os.PathLike | None = None, dpi: int = 100) -> Any:
    """Draw the images a classifier gets wrong, the book's figure 8-6.

    Each image shows its true label at the top left and the predicted one at the bottom right,
    in red. The images come in dataset order, the first ``max_images`` of them.

    Args:
        model: a module mapping images to class scores (run in evaluation mode, no graph).
        x: images (N, 1, H, W), (N, 3, H, W) or flattened (N, 784).
        t: labels (N,) or one-hot (N, K).
        max_images: at most this many images are drawn.
        ncols: images per row.
        batch_size: images per forward pass.
        predicted: the class the model predicts for each image (N,), when already computed
            (``model.predict(x).argmax(axis=1)``); the model is then not run.
        title: the title; by default "k of N misclassified (accuracy a%)".
        path: if given, the figure is also saved there (format from the suffix), atomically.
        dpi: resolution of a saved PNG.

    Returns:
        The ``matplotlib.figure.Figure``: one axes per image drawn (a single empty axes saying
        so when every image is classified correctly).
    """
    if max_images < 1 or ncols < 1:
        raise ValueError(f"plot_misclassified: max_images and ncols must be positive, got "
                         f"{max_images} and {ncols}")
    images = as_images(as_array(x, "plot_misclassified"), "plot_misclassified")
    labels = as_array(t, "plot_misclassified")
    labels = labels.argmax(axis=1) if labels.ndim == 2 else labels
    if predicted is None:
        wrong, predicted = misclassified(model, x, labels, batch_size)
    else:
        predicted = np.asarray(predicted)
        if predicted.shape != labels.shape:
            raise ValueError(f"plot_misclassified: predicted has shape {predicted.shape}, the "
                             f"labels {labels.shape}")
        wrong = np.flatnonzero(predicted != labels)
        predicted = predicted[wrong]
    shown = min(len(wrong), max_images)
    if title is None:
        title = (f"{len(wrong)} of {len(images)} misclassified "
                 f"(accuracy {100 * (1 - len(wrong) / len(images)):.2f}%)")
    rows, cols = grid_shape(max(shown, 1), ncols)
    height = rows * 0.9 + 0.5
    figure = new_figure(max(cols * 0.9, 4.0), height, layout=None)
    figure.suptitle(f"{title}\ntrue label top left, prediction bottom right", fontsize=10,
                    y=1.0 - 0.04 / height, va="top")
    grid = image_grid(figure, rows, cols, height, 0.45)
    if shown == 0:
        ax = figure.add_subplot(grid[:, :])
        ax.text(0.5, 0.5, "every image is classified correctly", ha="center", va="center")
        ax.set_axis_off()
    for k in range(shown):
        i = wrong[k]
        ax = figure.add_subplot(grid[k // cols, k % cols])
        ax.imshow(images[i], cmap="gray_r", interpolation="nearest")
        hide_ticks(ax)
        ax.text(0.04, 0.96, str(labels[i]), transform=ax.transAxes, ha="left", va="top",
                fontsize=9)
        ax.text(0.96, 0.04, str(predicted[k]), transform=ax.transAxes, ha="right",
                va="bottom", fontsize=9, color="#d7191c", fontweight="bold")
    save_figure(figure, path, dpi)
    return figure


# ---------------------------------------------------------------------------- feature maps
_MAP_LAYERS = ("Conv2d", "MaxPool2d", "AvgPool2d", "ReLU", "Sigmoid", "Tanh")


def _as_one_image(image: Any) -> np.ndarray:
    x = as_array(image, "show_feature_maps")
    if x.ndim == 2:
        x = x[None, None]
    elif x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"show_feature_maps: expected one image (H, W), (C, H, W) or "
                         f"(1, C, H, W), got shape {x.shape}")
    return x


def show_feature_maps(model: Any, image: Any, layers: Sequence[Any] | None = None, *,
                      max_channels: int = 16, ncols: int = 8, cmap: str = "gray_r",
                      path: str | os.PathLike | None = None, dpi: int = 100) -> Any:
    """Draw what each layer of a CNN outputs for one image: one block of channels per layer.

    The model runs once on the image, in evaluation mode and without a graph, while
    :func:`record_activations` records the outputs of ``layers``. Each block shows the first
    ``max_channels`` channels of one layer's output (C, H, W), each channel scaled by its own
    smallest (white) and largest (black) value, so a weak channel shows its pattern too; a
    channel that is constant (a ReLU that never fired) is white.

    Args:
        model: an ``nn.Module``.
        image: one image, (H, W), (C, H, W) or (1, C, H, W).
        layers: modules or their dotted names (``["conv1", "pool1"]``); by default every
            ``Conv2d``, ``MaxPool2d``, ``AvgPool2d``, ``ReLU``, ``Sigmoid`` and ``Tanh`` whose
            output is a stack of maps (N, C, H, W), in the order they ran.
        max_channels: at most this many channels per layer.
        ncols: channels per row.
        cmap: a matplotlib colour map name.
        path: if given, the figure is also saved there (format from the suffix), atomically.
        dpi: resolution of a saved PNG.

    Returns:
        The ``matplotlib.figure.Figure``: one axes for the input image, then one per channel
        drawn.

    Raises:
        ValueError: a named layer is not in the model, did not run, or has no (N, C, H, W)
            output; or the image has the wrong shape.
    """
    from minigrad.viz.activations import record_activations

    if max_channels < 1 or ncols < 1:
        raise ValueError(f"show_feature_maps: max_channels and ncols must be positive, got "
                         f"{max_channels} and {ncols}")
    x = _as_one_image(image)
    chosen = layers
    if chosen is None:
        chosen = [m for _, m in model.named_modules() if type(m).__name__ in _MAP_LAYERS]
    with record_activations(model, chosen) as record:
        _batches(model, x, 1)
    maps = []
    for name in record.names:
        if not record.activations[name]:
            if layers is None:
                continue
            raise ValueError(f"show_feature_maps: layer {name!r} did not run in the forward "
                             f"pass")
        out = record[name]
        if out.ndim != 4:
            if layers is None:
                continue
            raise ValueError(f"show_feature_maps: layer {name!r} outputs shape {out.shape}, "
                             f"not feature maps (N, C, H, W)")
        maps.append((name, record.modules[name], out[0]))
    blocks = [("input", None, x[0])] + maps
    title_height = 0.25
    heights = [grid_shape(min(len(m), max_channels), ncols)[0] * _CELL + title_height
               for _, _, m in blocks]
    cols = max(grid_shape(min(len(m), max_channels), ncols)[1] for _, _, m in blocks)
    figure = new_figure(max(cols * _CELL, 3.0), sum(heights), layout=None)
    subfigures = figure.subfigures(len(blocks), 1, height_ratios=heights)
    for sub, height, (name, module, m) in zip(np.atleast_1d(subfigures), heights, blocks):
        count = min(len(m), max_channels)
        block_cols = grid_shape(count, ncols)[1]
        grid = image_grid(sub, grid_shape(count, ncols)[0], cols, height, title_height)
        C, H, W = m.shape
        kind = "" if module is None else f" · {type(module).__name__}"
        more = f", first {count}" if count < C else ""
        sub.suptitle(f"{name}{kind}: {C}×{H}×{W}{more}", fontsize=9, x=0.01, ha="left",
                     y=1.0 - 0.03 / height, va="top")
        for c in range(count):
            ax = sub.add_subplot(grid[c // block_cols, c % block_cols])
            lo, hi = float(m[c].min()), float(m[c].max())
            ax.imshow(m[c], cmap=cmap, vmin=lo, vmax=hi if hi > lo else lo + 1,
                      interpolation="nearest")
            hide_ticks(ax)
    save_figure(figure, path, dpi)
    return figure
