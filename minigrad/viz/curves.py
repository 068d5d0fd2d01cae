"""Learning curves: ``plot_history`` draws what a training loop records, ``plot_lr_schedule``
a learning-rate schedule before training.

Both build their figure with ``matplotlib.figure.Figure`` and the Agg canvas, so they neither
touch pyplot's global state nor change the backend a notebook or script has chosen.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from minigrad.viz._files import _atomic_write

__all__ = ["plot_history", "plot_lr_schedule"]


# ---------------------------------------------------------------------------- learning curves
_X_KEYS = ("epoch", "step")


def _curve_kind(key: str) -> str | None:
    if key.endswith("loss"):
        return "loss"
    if key.endswith("acc") or key.endswith("accuracy"):
        return "accuracy"
    return None


def _as_curve(key: str, values: Any) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"plot_history: history[{key!r}] must be a list of numbers, got "
                         f"{type(values).__name__}") from None
    if array.ndim != 1:
        raise ValueError(f"plot_history: history[{key!r}] must be a flat list of numbers, got "
                         f"an array of shape {array.shape}")
    return array


def plot_history(history: Mapping[str, Sequence[float]], path: str | os.PathLike | None = None,
                 title: str | None = None, lr_key: str | None = None) -> Any:
    """Draw learning curves: the losses on the left, the accuracies on the right, and with
    ``lr_key`` the learning rate in a third panel.

    Accepted keys (any may be missing; at least one curve must be present):

    - ``*loss`` (``loss``, ``train_loss``, ``test_loss``, ``val_loss``, ...): drawn on the loss
      axis;
    - ``*acc`` / ``*accuracy`` (``train_acc``, ``test_acc``, ...): drawn on the accuracy axis;
    - ``epoch`` and ``step``: the x values. A curve with as many points as ``epoch`` is drawn
      against it, one with as many points as ``step`` against ``step``; so a per-step training
      loss and per-epoch accuracies can share one history. Without ``epoch`` or ``step`` a curve
      is drawn against 1, 2, ..., n, and the curves of one axis must then have one length.

    Other keys (timings, a learning rate not named by ``lr_key``) are ignored. NaN values
    leave gaps.

    Args:
        history: dict of lists of numbers, as a training loop appends them.
        path: if given, the figure is also saved there (the format follows the suffix: .png,
            .svg, .pdf), written to a temporary file and renamed, so a reader never sees half a
            file.
        title: a title above both axes.
        lr_key: the key of a learning-rate curve (``"lr"``, one value per epoch or per step)
            to draw in a panel of its own, from 0 up; by default none is drawn.

    Returns:
        The ``matplotlib.figure.Figure`` (Jupyter displays it inline).

    Raises:
        ValueError: no curve to draw, an empty curve, a curve whose length matches neither
            ``epoch`` nor ``step`` when one of them is given, or ``lr_key`` not in history.

    >>> fig = plot_history({"train_loss": [2.3, 1.1, 0.6], "test_acc": [0.5, 0.8, 0.9]})
    >>> [ax.get_ylabel() for ax in fig.axes]
    ['loss', 'accuracy']
    >>> fig = plot_history({"test_acc": [0.5, 0.8], "lr": [1e-3, 1e-4]}, lr_key="lr")
    >>> [ax.get_ylabel() for ax in fig.axes]
    ['accuracy', 'learning rate']
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    if not isinstance(history, Mapping):
        raise TypeError(f"plot_history: history must be a dict of lists, got "
                        f"{type(history).__name__}")
    xs = {k: _as_curve(k, history[k]) for k in _X_KEYS if k in history}
    curves: dict[str, list[tuple[str, np.ndarray]]] = {"loss": [], "accuracy": []}
    for key, values in history.items():
        kind = _curve_kind(str(key))
        if kind is not None:
            curves[kind].append((str(key), _as_curve(str(key), values)))
    if lr_key is not None:
        if lr_key not in history:
            raise ValueError(f"plot_history: lr_key={lr_key!r} is not in history (keys "
                             f"{sorted(history)})")
        curves["learning rate"] = [(lr_key, _as_curve(lr_key, history[lr_key]))]
    if not curves["loss"] and not curves["accuracy"]:
        raise ValueError(f"plot_history: nothing to draw: history has keys {sorted(history)}, "
                         f"but no curve; name losses '*loss' and accuracies '*acc'")
    for kind_curves in curves.values():
        for key, values in kind_curves:
            if values.size == 0:
                raise ValueError(f"plot_history: history[{key!r}] is empty")

    def x_for(key: str, values: np.ndarray) -> tuple[str, np.ndarray]:
        for name, x in xs.items():
            if len(x) == len(values):
                return name, x
        if xs:
            given = ", ".join(f"{name}: {len(x)}" for name, x in xs.items())
            raise ValueError(f"plot_history: history[{key!r}] has {len(values)} values, which "
                             f"matches no x key ({given}); give it as many values as 'epoch' "
                             f"or 'step'")
        return "step", np.arange(1, len(values) + 1)

    kinds = [kind for kind in curves if curves[kind]]
    widths = [3.6 if kind == "learning rate" else 5.0 for kind in kinds]
    figure = Figure(figsize=(sum(widths), 3.6), layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(1, len(kinds), width_ratios=widths)
    for i, kind in enumerate(kinds):
        ax = figure.add_subplot(grid[0, i])
        lengths = {key: len(values) for key, values in curves[kind]}
        if not xs and len(set(lengths.values())) > 1:
            raise ValueError(f"plot_history: the {kind} curves have different lengths "
                             f"{lengths}; give 'epoch' (and 'step') lists so each curve can be "
                             f"placed")
        x_names = set()
        integer_x = True
        for key, values in curves[kind]:
            x_name, x = x_for(key, values)
            x_names.add(x_name)
            integer_x = integer_x and bool(np.all(np.mod(x, 1) == 0))
            marker = "o" if len(values) <= 30 else None
            ax.plot(x, values, label=key, marker=marker, markersize=3)
        if integer_x:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
        ax.set_xlabel(" / ".join(sorted(x_names)))
        ax.set_ylabel(kind)
        if kind == "learning rate":  # from 0, so that a decay looks like one
            ax.set_ylim(bottom=0)
            ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
        ax.grid(True, alpha=0.3)
        ax.legend()
    if title:
        figure.suptitle(title)
    if path is not None:
        suffix = Path(path).suffix.lstrip(".").lower() or "png"
        _atomic_write(path, lambda f: figure.savefig(f, format=suffix, dpi=100))
    return figure



# ---------------------------------------------------------------------------- lr schedules
def plot_lr_schedule(schedule: Any, steps: int | None = None,
                     path: str | os.PathLike | None = None, title: str | None = None,
                     log: bool = False) -> Any:
    """Draw a learning-rate schedule before training: the lr of each step, one line per group.

    Args:
        schedule: a scheduler from ``minigrad.optim.lr_scheduler`` (previewed for ``steps``
            steps, without changing it or its optimiser; for ``ReduceLROnPlateau`` give
            ``steps`` as the list of metrics), or learning rates already computed: a list of
            numbers or an array of shape (steps,) or (steps, groups).
        steps: how many steps to preview; required for a scheduler.
        path: if given, the figure is also saved there (format from the suffix), atomically.
        title: a title; by default the scheduler's class name.
        log: a logarithmic lr axis.

    Returns:
        The ``matplotlib.figure.Figure``.

    Raises:
        TypeError: a scheduler without ``steps``.
        ValueError: rates that are empty, not finite or of more than two dimensions.

    >>> from minigrad import nn, optim
    >>> opt = optim.SGD([nn.Parameter([1.0])], lr=0.1)
    >>> sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=20)
    >>> fig = plot_lr_schedule(sched, 21)
    >>> fig.axes[0].get_ylabel(), len(fig.axes[0].lines[0].get_ydata())
    ('learning rate', 21)
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if hasattr(schedule, "preview") and hasattr(schedule, "optimizer"):
        if steps is None:
            raise TypeError(f"plot_lr_schedule: give steps (how many to preview) for a "
                            f"{type(schedule).__name__}")
        lrs = np.asarray(schedule.preview(steps), dtype=np.float64)
        title = type(schedule).__name__ if title is None else title
    else:
        try:
            lrs = np.asarray(schedule, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"plot_lr_schedule: expected a scheduler or a list of learning "
                            f"rates, got {type(schedule).__name__}") from None
    if lrs.ndim not in (1, 2) or lrs.size == 0 or not np.isfinite(lrs).all():
        raise ValueError(f"plot_lr_schedule: learning rates must be a non-empty finite array "
                         f"of shape (steps,) or (steps, groups), got shape {lrs.shape}")
    if lrs.ndim == 1:
        lrs = lrs[:, None]
    figure = Figure(figsize=(5.0, 3.2), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot(1, 1, 1)
    x = np.arange(len(lrs))
    for g in range(lrs.shape[1]):
        label = f"group {g}" if lrs.shape[1] > 1 else None
        ax.plot(x, lrs[:, g], label=label, drawstyle="steps-post" if len(x) <= 60 else None)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.grid(True, alpha=0.3)
    if lrs.shape[1] > 1:
        ax.legend()
    if title:
        ax.set_title(title)
    if path is not None:
        suffix = Path(path).suffix.lstrip(".").lower() or "png"
        _atomic_write(path, lambda f: figure.savefig(f, format=suffix, dpi=100))
    return figure

