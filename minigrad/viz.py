"""Pictures of training: learning curves.

``plot_history`` draws the curves a training loop records. It builds its figure with
``matplotlib.figure.Figure`` and the Agg canvas, so it neither touches pyplot's global state nor
changes the backend a notebook or script has chosen.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_history"]


# ---------------------------------------------------------------------------- files
def _atomic_write(path: str | os.PathLike, write: Any) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it over ``path``.

    A failure leaves any previous file at ``path`` untouched and removes the temporary file.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


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
                 title: str | None = None) -> Any:
    """Draw learning curves: the losses on the left, the accuracies on the right.

    Accepted keys (any may be missing; at least one curve must be present):

    - ``*loss`` (``loss``, ``train_loss``, ``test_loss``, ``val_loss``, ...): drawn on the loss
      axis;
    - ``*acc`` / ``*accuracy`` (``train_acc``, ``test_acc``, ...): drawn on the accuracy axis;
    - ``epoch`` and ``step``: the x values. A curve with as many points as ``epoch`` is drawn
      against it, one with as many points as ``step`` against ``step``; so a per-step training
      loss and per-epoch accuracies can share one history. Without ``epoch`` or ``step`` a curve
      is drawn against 1, 2, ..., n, and the curves of one axis must then have one length.

    Other keys (a learning rate, timings) are ignored. NaN values leave gaps.

    Args:
        history: dict of lists of numbers, as a training loop appends them.
        path: if given, the figure is also saved there (the format follows the suffix: .png,
            .svg, .pdf), written to a temporary file and renamed, so a reader never sees half a
            file.
        title: a title above both axes.

    Returns:
        The ``matplotlib.figure.Figure`` (Jupyter displays it inline).

    Raises:
        ValueError: no curve to draw, an empty curve, or a curve whose length matches neither
            ``epoch`` nor ``step`` when one of them is given.

    >>> fig = plot_history({"train_loss": [2.3, 1.1, 0.6], "test_acc": [0.5, 0.8, 0.9]})
    >>> [ax.get_ylabel() for ax in fig.axes]
    ['loss', 'accuracy']
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

    kinds = [kind for kind in ("loss", "accuracy") if curves[kind]]
    figure = Figure(figsize=(5.0 * len(kinds), 3.6), layout="constrained")
    FigureCanvasAgg(figure)
    for i, kind in enumerate(kinds):
        ax = figure.add_subplot(1, len(kinds), i + 1)
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
        if kind == "accuracy":
            finite = [v[np.isfinite(v)] for _, v in curves[kind]]
            top = max([1.0] + [float(v.max()) for v in finite if v.size])
            ax.set_ylim(0.0, top * 1.02)
        ax.grid(True, alpha=0.3)
        ax.legend()
    if title:
        figure.suptitle(title)
    if path is not None:
        suffix = Path(path).suffix.lstrip(".").lower() or "png"
        _atomic_write(path, lambda tmp: figure.savefig(tmp, format=suffix, dpi=100))
    return figure
