"""Pictures: the computation graph on the tape, and learning curves.

``draw_graph`` turns the tape behind one or more output tensors into a ``graphviz.Digraph``:
tensors (name, shape, dtype) and ops (class and settings), coloured by role, optionally with
values, gradient norms, modules as clusters and profiled op times. ``render_graph`` writes it as
SVG or PNG through Graphviz's ``dot``; ``save_dot`` writes the DOT text, which needs no ``dot``.
``record_grads`` records the gradient flowing along every edge during a backward pass.

``plot_history`` draws the curves a training loop records. It builds its figure with
``matplotlib.figure.Figure`` and the Agg canvas, so it neither touches pyplot's global state nor
changes the backend a notebook or script has chosen.
"""

from __future__ import annotations

import html
import os
import sys
import threading
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from minigrad._files import atomic_write
from minigrad.function import topological_order

__all__ = ["DotNotFoundError", "GradRecord", "draw_graph", "plot_history", "record_grads",
           "render_graph", "save_dot", "save_graph"]


# ---------------------------------------------------------------------------- files
def _atomic_write(path: str | os.PathLike, write: Any) -> Path:
    """``minigrad._files.atomic_write``, creating the folder first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, write)


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


# ---------------------------------------------------------------------------- gradient record
class GradRecord:
    """Norms of the gradients that flowed along each edge of the graph during backward.

    Use it as a context manager around ``backward()`` and pass it to ``draw_graph`` as
    ``show_grads=record``: every edge is then coloured by the gradient that actually flowed along
    it, including edges between intermediate tensors, whose gradients backward does not keep.
    Only norms (and whether any value was NaN/inf) are kept, per op instance, with weak
    references: the record does not keep graphs alive. It records the backward passes run by
    the thread that opened it.

    >>> import minigrad
    >>> x = minigrad.Tensor([3.0, 4.0], requires_grad=True)
    >>> y = (x * 2).sum()
    >>> with record_grads() as record:
    ...     y.backward()
    >>> record.output_grad(y.creator)
    (1.0, False)
    """

    def __init__(self) -> None:
        self._records: Any = weakref.WeakKeyDictionary()
        self._active = False
        self._thread = 0  # the thread whose backward passes are recorded

    def __enter__(self) -> GradRecord:
        from minigrad import function

        if self._active:
            raise RuntimeError("record_grads: this record is already active")
        self._active = True
        self._thread = threading.get_ident()
        function._observers.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        from minigrad import function

        function.remove_observer(self)
        self._active = False

    def forward(self, fn: Any, inputs: Any, output: Any, seconds: float) -> None:
        pass

    def backward(self, fn: Any, dy: Any, grads: Any, seconds: float) -> None:
        if threading.get_ident() != self._thread:  # another thread's backward pass
            return
        try:
            self._records[fn] = (_norm(dy), tuple(None if g is None else _norm(g) for g in grads))
        except TypeError:  # an op without weak references: not recorded
            pass

    def output_grad(self, fn: Any) -> tuple[float, bool] | None:
        """(‖dL/d(output)‖, has NaN/inf) of op ``fn``, or None if its backward was not seen."""
        record = self._records.get(fn)
        return None if record is None else record[0]

    def input_grad(self, fn: Any, i: int) -> tuple[float, bool] | None:
        """(‖gradient ``fn`` sent to input i‖, has NaN/inf), or None (no gradient, or unseen)."""
        record = self._records.get(fn)
        return None if record is None else record[1][i]

    def __contains__(self, fn: Any) -> bool:
        return fn in self._records


def record_grads() -> GradRecord:
    """A :class:`GradRecord` to use around ``backward()`` (``with record_grads() as rec:``)."""
    return GradRecord()


def _norm(array: Any) -> tuple[float, bool]:
    """(Euclidean norm computed in float64, whether any value is NaN or infinite)."""
    a = np.asarray(array)
    if a.dtype.kind not in "fc":
        a = a.astype(np.float64)
    bad = not bool(np.isfinite(a).all())
    if bad:
        finite = a[np.isfinite(a)]
        value = float(np.linalg.norm(finite.astype(np.float64, copy=False))) if finite.size else 0.0
    else:
        value = float(np.linalg.norm(a.ravel().astype(np.float64, copy=False)))
    return value, bad


# ---------------------------------------------------------------------------- graph: model
class _TensorNode:
    __slots__ = ("obj", "id", "role", "producer", "consumers", "hidden")

    def __init__(self, obj: Any, node_id: str) -> None:
        self.obj = obj
        self.id = node_id
        self.role = "intermediate"
        self.producer: _OpNode | None = None
        self.consumers: list[tuple[_OpNode, int]] = []
        self.hidden = False


class _OpNode:
    __slots__ = ("fn", "id", "output", "group")

    def __init__(self, fn: Any, node_id: str) -> None:
        self.fn = fn
        self.id = node_id
        self.output: _TensorNode | None = None
        self.group: _Group | None = None


class _Group:
    """A module: a cluster (group_modules) or a single node (collapse)."""

    __slots__ = ("module", "id", "parent", "graph")

    def __init__(self, module: Any, node_id: str, parent: _Group | None) -> None:
        self.module = module
        self.id = node_id
        self.parent = parent
        self.graph: Any = None

    @property
    def title(self) -> str:
        name = getattr(self.module, "name", "") or ""
        kind = type(self.module).__name__
        return f"{name} · {kind}" if name else kind


def _is_parameter(t: Any) -> bool:
    nn = sys.modules.get("minigrad.nn")
    cls = getattr(nn, "Parameter", None) if nn is not None else None
    return cls is not None and isinstance(t, cls)


def _forward_order(outputs: Sequence[Any]) -> list[Any]:
    """Ops behind ``outputs``, each after the ops that made its inputs."""
    return topological_order(out.creator for out in outputs if out.creator is not None)


def _build(outputs: Sequence[Any]) -> tuple[dict[int, _TensorNode], list[_OpNode]]:
    """Number the tensors and ops (t0, t1, ..., op0, op1, ...) in forward order."""
    from minigrad.tensor import Tensor

    order = _forward_order(outputs)
    made_by: dict[int, Any] = {}  # id(op) -> its output tensor
    for out in outputs:
        if out.creator is not None:
            made_by.setdefault(id(out.creator), out)
    for fn in order:
        for x in fn.inputs:
            if isinstance(x, Tensor) and x.creator is not None:
                made_by.setdefault(id(x.creator), x)

    tensors: dict[int, _TensorNode] = {}

    def tensor_node(obj: Any) -> _TensorNode:
        node = tensors.get(id(obj))
        if node is None:
            node = tensors[id(obj)] = _TensorNode(obj, f"t{len(tensors)}")
        return node

    ops: list[_OpNode] = []
    for fn in order:
        op = _OpNode(fn, f"op{len(ops)}")
        ops.append(op)
        for i, x in enumerate(fn.inputs):
            tensor_node(x).consumers.append((op, i))
        out = made_by.get(id(fn))
        if out is None:
            out = fn.output
        assert out is not None, f"{type(fn).__name__}: its output tensor is gone"
        op.output = tensor_node(out)
        op.output.producer = op
    output_ids = {id(tensor_node(out).obj) for out in outputs}
    for node in tensors.values():
        obj = node.obj
        if id(obj) in output_ids:
            node.role = "output"
        elif not isinstance(obj, Tensor):
            node.role = "constant" if np.ndim(obj) == 0 else "data"
        elif _is_parameter(obj):
            node.role = "parameter"
        elif node.producer is None:
            node.role = "input"
    return tensors, ops


# ---------------------------------------------------------------------------- graph: style
_FONT = "Helvetica"
_RED = "#d7191c"
_ROLE_FILL = {
    "parameter": "#fdd49e",
    "input": "#c6dbef",
    "data": "#eeeeee",
    "constant": "#eeeeee",
    "intermediate": "#ffffff",
    "output": "#c7e9c0",
}
_ROLE_TEXT = {
    "parameter": "parameter",
    "input": "input tensor",
    "data": "array (not a tensor: labels, constants)",
    "constant": "array (not a tensor: labels, constants)",
    "intermediate": "intermediate tensor",
    "output": "output",
}
_OP_FILL = "#e7e1ef"
_GROUP_FILL = "#bcbddc"
_CLUSTER_FILLS = ("#f7f7f7", "#ececec")
# Gradient norms on a log scale: faint and thin when vanishing, blue in a healthy range,
# purple then orange and thick when exploding.
_GRAD_LOG_RANGE = (-8.0, 4.0)
# Stops at 1e-8, 1e-5, 1e-2, 1e1, 10^2.5 and 1e4.
_GRAD_COLORS = ((0.0, "#d9d9d9"), (0.25, "#9ecae1"), (0.5, "#4292c6"), (0.75, "#08519c"),
                (0.875, "#6a51a3"), (1.0, "#ff7f00"))
_NO_GRAD = "#bdbdbd"
# Op cost: pale yellow (cheap) to dark orange (the most expensive op of the graph).
_HEAT_COLORS = ((0.0, "#ffffe5"), (0.35, "#fee391"), (0.65, "#fe9929"), (1.0, "#cc4c02"))
_RANKDIRS = ("TB", "LR", "BT", "RL")


def _interpolate(stops: tuple[tuple[float, str], ...], p: float) -> str:
    p = min(max(p, 0.0), 1.0)
    for (p0, c0), (p1, c1) in zip(stops, stops[1:]):
        if p <= p1:
            t = 0.0 if p1 == p0 else (p - p0) / (p1 - p0)
            rgb = [round(int(c0[k:k + 2], 16) * (1 - t) + int(c1[k:k + 2], 16) * t)
                   for k in (1, 3, 5)]
            return "#" + "".join(f"{v:02x}" for v in rgb)
    return stops[-1][1]


def _grad_position(norm: float) -> float:
    lo, hi = _GRAD_LOG_RANGE
    return (np.log10(norm) - lo) / (hi - lo) if norm > 0 else 0.0


def _grad_color(norm: float) -> str:
    return _interpolate(_GRAD_COLORS, _grad_position(norm))


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _num(v: float) -> str:
    return f"{v:.3g}"


def _format_setting(value: Any, depth: int = 0) -> str:
    """A short, deterministic text for an op setting (arrays summarised, never printed)."""
    from minigrad.tensor import Tensor

    if isinstance(value, Tensor):
        value = value.data
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return _format_setting(value.item(), depth)
        return f"array{value.shape} {value.dtype}"
    if isinstance(value, np.generic):
        return _format_setting(value.item(), depth)
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, slice):
        parts = ["" if v is None else _format_setting(v) for v in
                 (value.start, value.stop, value.step)]
        return ":".join(parts[:2]) + (f":{parts[2]}" if value.step is not None else "")
    if value is Ellipsis:
        return "..."
    if isinstance(value, (tuple, list)):
        if depth > 1 or len(value) > 6:
            return f"{type(value).__name__} of {len(value)}"
        items = [_format_setting(v, depth + 1) for v in value]
        if isinstance(value, list):
            return "[" + ", ".join(items) + "]"
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    if isinstance(value, dict):
        return f"dict of {len(value)}"
    name = getattr(value, "__name__", None)
    return name if isinstance(name, str) else type(value).__name__


def _op_title(fn: Any) -> str:
    settings = {k: v for k, v in fn.settings().items() if not k.startswith("_")}
    args = [f"{k}={_format_setting(v)}" for k, v in settings.items()]
    head = f"<B>{_esc(type(fn).__name__)}</B>"
    if not args:
        return head
    lines, current = [], ""
    for arg in args:  # wrap long settings after a comma
        if current and len(current) + len(arg) > 40:
            lines.append(current + ",")
            current = arg
        else:
            current = f"{current}, {arg}" if current else arg
    lines.append(current)
    return head + "(" + "<BR/>".join(_esc(line) for line in lines) + ")"


def _shape_text(array: Any) -> str:
    shape = np.shape(array)
    dtype = getattr(array, "dtype", None) or np.asarray(array).dtype
    return f"{shape if shape else 'scalar'} {dtype}"


def _value_lines(array: np.ndarray) -> list[str]:
    """min/mean/max of the finite values (the value itself for one element)."""
    if array.dtype.kind not in "fciub":
        return []
    values = array.astype(np.float64, copy=False) if array.dtype.kind != "c" else np.abs(array)
    if array.dtype.kind == "f":
        values = values[np.isfinite(values)]
    if values.size == 0:
        return []
    if array.size == 1:
        return [f"value {_num(float(values.reshape(-1)[0]))}"]
    return [f"min {_num(values.min())} · mean {_num(values.mean())} · max {_num(values.max())}"]


def _nonfinite_text(array: Any) -> str | None:
    a = np.asarray(array)
    if a.dtype.kind not in "fc":
        return None
    finite = np.isfinite(a)
    if finite.all():
        return None
    nan = int(np.count_nonzero(np.isnan(a)))
    inf = int(a.size - np.count_nonzero(finite)) - nan
    parts = ([f"{nan} NaN"] if nan else []) + ([f"{inf} inf"] if inf else [])
    return " · ".join(parts)


def _font(text: str, color: str | None = None, size: int | None = None) -> str:
    attrs = (f' COLOR="{color}"' if color else "") + (f' POINT-SIZE="{size}"' if size else "")
    return f"<FONT{attrs}>{text}</FONT>" if attrs else text


def _html(lines: list[str]) -> str:
    return "<" + "<BR/>".join(lines) + ">"


# ---------------------------------------------------------------------------- graph: drawing
def draw_graph(*outputs: Any, show_values: bool = False, show_grads: Any = False,
               group_modules: bool = False, collapse: bool = False, rankdir: str = "TB",
               max_nodes: int = 500, profile: Any = None, legend: bool = True) -> Any:
    """Draw the tape behind ``outputs`` as a ``graphviz.Digraph``.

    Tensors are boxes: parameters (orange, with their dotted module name such as
    ``conv1.weight``), input tensors (blue), array inputs such as labels and constants (grey,
    dashed), intermediates (white) and outputs (green). Ops are ellipses with their class and
    settings (``Conv2d(stride=1, padding=0)``). Edges follow the data from inputs to outputs.
    Any NaN or infinity, in a value or a gradient, is drawn in red. Nodes are numbered in
    traversal order (``t0``, ``op0``, ...), so the DOT text of a graph is always the same.

    Args:
        *outputs: one or more Tensors (typically the loss).
        show_values: add min/mean/max of every tensor (the value of one-element tensors).
        show_grads: after ``backward()``, add gradient norms and colour and thicken the edges
            by them on a log scale (see the legend). ``True`` uses the ``.grad`` of leaves and
            of tensors that retain it; a :class:`GradRecord` (``record_grads()`` around the
            backward) gives the gradient along every edge.
        group_modules: draw each nn module as a labelled cluster around its ops, parameters and
            outputs, nested as the modules are.
        collapse: draw one node per top-level module (``conv1``, ``relu1``, ...) instead of its
            ops and parameters; ops outside modules are drawn as usual. For big models.
            Takes precedence over ``group_modules``.
        rankdir: "TB" (top to bottom), "LR" (left to right), "BT" or "RL".
        max_nodes: refuse to draw more nodes than this.
        profile: a ``minigrad.profile`` that recorded this graph's forward (and backward): op
            nodes are filled by their time on a heat scale and labelled with it.
        legend: add a legend node explaining the colours.

    Returns:
        A ``graphviz.Digraph``: displays inline in Jupyter; ``render_graph(g, "g.svg")`` or
        ``save_dot(g, "g.dot")`` writes it.

    Raises:
        TypeError: an output is not a Tensor, or ``profile``/``show_grads`` has the wrong type.
        ValueError: bad ``rankdir``, or more than ``max_nodes`` nodes.

    >>> import minigrad
    >>> x = minigrad.Tensor([1.0, 2.0], requires_grad=True, name="x")
    >>> g = draw_graph((x * x).sum(), legend=False)
    >>> [line.strip() for line in g.source.splitlines() if "->" in line]
    ['t0 -> op0', 't0 -> op0', 'op0 -> t1', 't1 -> op1', 'op1 -> t2']
    """
    import graphviz

    from minigrad.tensor import Tensor

    if len(outputs) == 1 and isinstance(outputs[0], (list, tuple)):
        outputs = tuple(outputs[0])
    if not outputs:
        raise ValueError("draw_graph: give at least one output tensor")
    for i, out in enumerate(outputs):
        if not isinstance(out, Tensor):
            raise TypeError(f"draw_graph: outputs must be Tensors, got {type(out).__name__} "
                            f"at position {i}")
    if rankdir not in _RANKDIRS:
        raise ValueError(f"draw_graph: rankdir must be one of {_RANKDIRS}, got {rankdir!r}")
    if not isinstance(max_nodes, int) or max_nodes < 1:
        raise ValueError(f"draw_graph: max_nodes must be a positive int, got {max_nodes!r}")
    record = show_grads if isinstance(show_grads, GradRecord) else None
    if not isinstance(show_grads, (bool, GradRecord)):
        raise TypeError(f"draw_graph: show_grads must be a bool or a GradRecord, got "
                        f"{type(show_grads).__name__}")
    if profile is not None and not callable(getattr(profile, "op_ms", None)):
        raise TypeError(f"draw_graph: profile must be a minigrad.profile, got "
                        f"{type(profile).__name__}")

    tensors, ops = _build(outputs)
    groups = _assign_groups(tensors, ops, collapse, group_modules)
    drawn_tensors = [t for t in tensors.values() if not t.hidden]
    count = len(drawn_tensors) + (len([op for op in ops if op.group is None]) if collapse
                                  else len(ops))
    if collapse:
        count += len(groups)
    if count > max_nodes:
        hint = "a larger max_nodes" if collapse else "collapse=True (one node per module) or a " \
                                                     "larger max_nodes"
        raise ValueError(f"draw_graph: the graph has {count} nodes ({len(tensors)} tensors, "
                         f"{len(ops)} ops), more than max_nodes={max_nodes}; pass {hint}")

    graph = graphviz.Digraph("minigrad")
    graph.attr(rankdir=rankdir, fontname=_FONT, nodesep="0.3", ranksep="0.35",
               bgcolor="white")
    graph.attr("node", fontname=_FONT, fontsize="11", margin="0.1,0.04")
    graph.attr("edge", fontname=_FONT, fontsize="9", arrowsize="0.7")

    # Op cost for the heat scale: per drawn op node, or per collapsed module.
    cost: dict[str, tuple[float, float]] = {}
    if profile is not None:
        for op in ops:
            ms = profile.op_ms(op.fn)
            if ms is None:
                continue
            key = op.group.id if (collapse and op.group is not None) else op.id
            fwd, bwd = cost.get(key, (0.0, 0.0))
            cost[key] = (fwd + ms[0], bwd + ms[1])
    max_cost = max((f + b for f, b in cost.values()), default=0.0)

    def container(group: _Group | None) -> Any:
        return graph if group is None or collapse else group.graph

    if not collapse:
        for group in groups:
            depth = 0
            parent = group.parent
            while parent is not None:
                depth, parent = depth + 1, parent.parent
            sub = graphviz.Digraph(f"cluster_{group.id}")
            sub.attr(label=f"<<B>{_esc(group.title)}</B>>", style="rounded,filled",
                     fillcolor=_CLUSTER_FILLS[depth % 2], color="#969696", fontname=_FONT,
                     fontsize="11", labeljust="l")
            group.graph = sub

    flags = {"nograd": False}
    grad_norms: dict[str, tuple[float, bool] | None] = {}

    def tensor_grad(node: _TensorNode) -> tuple[float, bool] | None:
        """‖dL/d(tensor)‖: its .grad, or the record of its producer's backward."""
        if node.id not in grad_norms:
            obj, norm = node.obj, None
            if isinstance(obj, Tensor) and obj.grad is not None:
                norm = _norm(obj.grad)
            elif record is not None and node.producer is not None:
                norm = record.output_grad(node.producer.fn)
            grad_norms[node.id] = norm
        return grad_norms[node.id]

    # Tensor nodes.
    for node in drawn_tensors:
        obj = node.obj
        array = obj.data if isinstance(obj, Tensor) else np.asarray(obj)
        name = getattr(obj, "name", None) if isinstance(obj, Tensor) else None
        lines = []
        if name:
            lines.append(f"<B>{_esc(name)}</B>")
        elif node.role in ("input", "output"):
            lines.append(f"<B>{node.role}</B>")
        elif node.role == "data":
            lines.append("<B>array</B>")
        if node.role == "constant":
            lines.append(_esc(f"{_format_setting(array)} ({array.dtype})"))
        else:
            lines.append(_esc(_shape_text(array)))
            if show_values:
                lines += [_esc(line) for line in _value_lines(array)]
        bad = _nonfinite_text(array)
        if bad:
            lines.append(_font(_esc(bad), _RED))
        grad = tensor_grad(node) if show_grads is not False else None
        if grad is not None:
            value, grad_bad = grad
            if not grad_bad:
                lines.append(_esc(f"|grad| {_num(value)}"))
            else:
                held = obj.grad if isinstance(obj, Tensor) and obj.grad is not None else None
                counts = _nonfinite_text(held) if held is not None else "NaN/inf"
                lines.append(_font(_esc(f"grad: {counts}"), _RED))
        bad = bad or (grad is not None and grad[1])
        style = "filled,dashed" if node.role in ("data", "constant") else "filled"
        attrs = {"shape": "box", "style": style, "fillcolor": _ROLE_FILL[node.role]}
        if node.role == "output":
            attrs["penwidth"] = "2"
        if bad:
            attrs.update(color=_RED, penwidth="3")
        container(_tensor_group(node, collapse)).node(node.id, _html(lines), **attrs)

    # Op nodes, or module nodes when collapsed.
    def heat_attrs(key: str) -> tuple[dict[str, str], list[str]]:
        if profile is None:
            return {}, []
        if key not in cost:
            return {}, [_font("not profiled", size=9)]
        fwd, bwd = cost[key]
        p = (fwd + bwd) / max_cost if max_cost > 0 else 0.0
        attrs = {"fillcolor": _interpolate(_HEAT_COLORS, p)}
        if p > 0.8:
            attrs["fontcolor"] = "white"
        return attrs, [_font(_esc(f"fwd {fwd:.2f} ms · bwd {bwd:.2f} ms"), size=9)]

    for op in ops:
        if collapse and op.group is not None:
            continue
        attrs = {"shape": "ellipse", "style": "filled", "fillcolor": _OP_FILL}
        extra, lines = heat_attrs(op.id)
        attrs.update(extra)
        container(op.group).node(op.id, _html([_op_title(op.fn)] + lines), **attrs)
    if collapse:
        for group in groups:
            members = [op for op in ops if op.group is group]
            kinds: dict[str, int] = {}
            for op in members:
                kinds[type(op.fn).__name__] = kinds.get(type(op.fn).__name__, 0) + 1
            summary = ", ".join(k if n == 1 else f"{k} ×{n}" for k, n in kinds.items())
            n_params = sum(t.obj.size for t in tensors.values()
                           if t.hidden and t.role == "parameter"
                           and any(c.group is group for c, _ in t.consumers))
            lines = [f"<B>{_esc(group.title)}</B>", _esc(summary)]
            if n_params:
                lines.append(_esc(f"{n_params:,} parameters"))
            attrs = {"shape": "box3d", "style": "filled", "fillcolor": _GROUP_FILL}
            extra, heat_lines = heat_attrs(group.id)
            attrs.update(extra)
            graph.node(group.id, _html(lines + heat_lines), **attrs)

    for group in reversed(groups):  # children before parents: subgraph() copies the body
        if group.graph is not None:
            (group.parent.graph if group.parent is not None else graph).subgraph(group.graph)

    # Edges.
    def endpoint(op: _OpNode) -> str:
        return op.group.id if (collapse and op.group is not None) else op.id

    def edge_attrs(grad: tuple[float, bool] | None, carries_grad: bool) -> dict[str, str]:
        if show_grads is False:
            return {}
        if not carries_grad:
            flags["nograd"] = True
            return {"color": _NO_GRAD, "style": "dashed"}
        if grad is None:
            return {}
        value, bad = grad
        if bad:
            return {"color": _RED, "penwidth": "3.5", "label": "  NaN/inf", "fontcolor": _RED}
        p = _grad_position(value)
        attrs = {"color": _grad_color(value), "penwidth": f"{0.6 + 3.4 * p:.2f}",
                 "label": f"  {_num(value)}", "fontcolor": "#525252"}
        if value == 0:
            attrs["style"] = "dotted"
        return attrs

    def requires(obj: Any) -> bool:
        return isinstance(obj, Tensor) and obj.requires_grad

    seen_edges: set[tuple[str, str]] = set()
    for op in ops:
        for i, x in enumerate(op.fn.inputs):
            node = tensors[id(x)]
            head = endpoint(op)
            if node.hidden or (collapse and (node.id, head) in seen_edges):
                continue
            seen_edges.add((node.id, head))
            grad = None
            if show_grads is not False:
                grad = (record.input_grad(op.fn, i) if record is not None and op.fn in record
                        else tensor_grad(node))
            graph.edge(node.id, head, **edge_attrs(grad, requires(node.obj)))
        node = op.output
        if not node.hidden:
            grad = tensor_grad(node) if show_grads is not False else None
            graph.edge(endpoint(op), node.id, **edge_attrs(grad, requires(node.obj)))

    if legend:
        roles = [r for r in _ROLE_FILL if any(t.role == r for t in drawn_tensors)]
        graph.node("legend", _legend(roles, ops, collapse, show_grads is not False, flags,
                                     max_cost if profile is not None else None),
                   shape="plaintext", margin="0")
    return graph


def _tensor_group(node: _TensorNode, collapse: bool) -> _Group | None:
    """The cluster a tensor is drawn in: its producer's, or its consumers' for parameters."""
    if collapse:
        return None
    if node.producer is not None:
        return node.producer.group
    if node.role in ("parameter", "constant", "data") and node.consumers:
        groups = [op.group for op, _ in node.consumers]
        name = getattr(node.obj, "name", None) or ""
        owner = name.rsplit(".", 1)[0] if "." in name else None
        if owner is not None:
            for group in groups:  # the module whose dotted name owns the parameter
                while group is not None:
                    if getattr(group.module, "name", None) == owner:
                        return group
                    group = group.parent
        first = groups[0]
        return first if all(g is first for g in groups) else None
    return None


def _assign_groups(tensors: dict[int, _TensorNode], ops: list[_OpNode], collapse: bool,
                   group_modules: bool) -> list[_Group]:
    """Create the module groups (in order of first use) and mark the hidden tensors."""
    groups: dict[int, _Group] = {}
    order: list[_Group] = []

    def group_of(module: Any, parent: _Group | None) -> _Group:
        group = groups.get(id(module))
        if group is None:
            group = groups[id(module)] = _Group(module, f"m{len(order)}", parent)
            order.append(group)
        return group

    if not (collapse or group_modules):
        return order
    for op in ops:
        scope = getattr(op.fn, "scope", ()) or ()
        if collapse:
            top = next((m for m in scope if getattr(m, "name", "")), None)
            op.group = group_of(top, None) if top is not None else None
        else:
            parent = None
            for module in scope:
                parent = group_of(module, parent)
            op.group = parent
    if collapse:
        for node in tensors.values():
            if node.role not in ("parameter", "intermediate", "constant"):
                continue
            ends = [op.group for op, _ in node.consumers]
            if node.producer is not None:
                ends.append(node.producer.group)
            node.hidden = bool(ends) and ends[0] is not None and all(g is ends[0] for g in ends)
    return order


def _legend(roles: list[str], ops: list[_OpNode], collapse: bool, grads: bool,
            flags: dict[str, bool], max_cost: float | None) -> str:
    def swatch(fill: str, text: str, style: str = "") -> str:
        return (f'<TR><TD BGCOLOR="{fill}" WIDTH="18"{style}> </TD>'
                f'<TD ALIGN="LEFT">{_esc(text)}</TD></TR>')

    rows = ['<TR><TD COLSPAN="2"><B>legend</B></TD></TR>']
    if "data" in roles and "constant" in roles:
        roles = [r for r in roles if r != "constant"]
    rows += [swatch(_ROLE_FILL[r], _ROLE_TEXT[r]) for r in roles]
    if any(op.group is None for op in ops) or not collapse:
        rows.append(swatch(_OP_FILL, "op (class and settings)"))
    if collapse:
        rows.append(swatch(_GROUP_FILL, "module (its ops and parameters)"))
    if grads:
        rows.append('<TR><TD COLSPAN="2"><B>gradient norm</B> (edges: colour, width)</TD></TR>')
        lo, hi = _GRAD_LOG_RANGE
        for exponent in np.linspace(lo, hi, 5):
            value = float(10.0 ** exponent)
            note = {0: " vanishing", 4: " exploding"}.get(int(round((exponent - lo) / 3)), "")
            rows.append(swatch(_grad_color(value), f"{value:.0e}{note}"))
        if flags["nograd"]:
            rows.append(swatch(_NO_GRAD, "no gradient flows (dashed)"))
    rows.append(swatch(_RED, "NaN or inf (value or gradient)"))
    if max_cost is not None:
        rows.append('<TR><TD COLSPAN="2"><B>op time</B> (forward + backward)</TD></TR>')
        for p in (0.0, 0.25, 0.5, 0.75, 1.0):
            rows.append(swatch(_interpolate(_HEAT_COLORS, p), f"{p * max_cost:.2f} ms"))
    return ('<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" CELLPADDING="3">'
            + "".join(rows) + "</TABLE>>")


# ---------------------------------------------------------------------------- graph: files
class DotNotFoundError(RuntimeError):
    """Graphviz's ``dot`` program, which renders graphs to SVG/PNG, is not installed."""


_INSTALL_DOT = (
    "render_graph: Graphviz's 'dot' program was not found on PATH, so the graph cannot be "
    "rendered to {fmt}. Install Graphviz: 'sudo apt-get install graphviz' (Debian/Ubuntu), "
    "'brew install graphviz' (macOS) or 'conda install -c conda-forge graphviz', then make "
    "sure 'dot -V' works. Without it, minigrad.viz.save_dot(graph, 'graph.dot') still writes "
    "the DOT text, which any Graphviz viewer opens.")


def render_graph(graph: Any, path: str | os.PathLike, format: str | None = None,
                 dpi: int | None = None) -> Path:
    """Render a graph from ``draw_graph`` to an SVG or PNG file with Graphviz's ``dot``.

    Args:
        graph: a ``graphviz.Digraph`` (as ``draw_graph`` returns).
        path: the file to write; written to a temporary file beside it, then renamed.
        format: "svg", "png" or "pdf"; by default taken from the suffix of ``path`` (".svg"
            if it has none of these).
        dpi: resolution of a PNG (Graphviz's default is 96); ignored for SVG and PDF.

    Returns:
        The path written.

    Raises:
        DotNotFoundError: ``dot`` is not installed (the message says how to install it).
    """
    import graphviz

    path = Path(path)
    if format is None:
        suffix = path.suffix.lstrip(".").lower()
        format = suffix if suffix in ("svg", "png", "pdf") else "svg"
    if format not in ("svg", "png", "pdf"):
        raise ValueError(f"render_graph: format must be 'svg', 'png' or 'pdf', got {format!r}")
    if not isinstance(graph, (graphviz.Digraph, graphviz.Graph)):
        raise TypeError(f"render_graph: expected a graphviz graph from draw_graph, got "
                        f"{type(graph).__name__}")
    if dpi is not None and format == "png":
        graph = graph.copy()
        graph.graph_attr["dpi"] = str(int(dpi))
    try:
        data = graph.pipe(format=format)
    except graphviz.ExecutableNotFound as error:
        raise DotNotFoundError(_INSTALL_DOT.format(fmt=format.upper())) from error
    return _atomic_write(path, lambda f: f.write(data))


def save_dot(graph_or_outputs: Any, path: str | os.PathLike) -> Path:
    """Write the DOT text of a graph (or of ``draw_graph(*outputs)``) atomically; no ``dot``.

    Args:
        graph_or_outputs: a ``graphviz.Digraph``, or a Tensor or list of Tensors to draw with
            the default options.
        path: the ``.dot`` file to write.

    Returns:
        The path written.
    """
    import graphviz

    if isinstance(graph_or_outputs, (graphviz.Digraph, graphviz.Graph)):
        source = graph_or_outputs.source
    else:
        outputs = graph_or_outputs
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        source = draw_graph(*outputs).source
    return _atomic_write(path, lambda f: f.write(source.encode("utf-8")))


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


def save_graph(graph: Any, path: str | os.PathLike, dpi: int | None = None) -> Path:
    """Render a graph to ``path`` when Graphviz's ``dot`` is installed, else write its DOT text.

    ``render_graph`` when it can; without ``dot`` the DOT text goes to ``path`` with the suffix
    ``.dot`` instead (a ``UserWarning`` says so and how to install Graphviz), so a script that
    draws a graph runs on any machine.

    Args:
        graph: a ``graphviz.Digraph`` (as ``draw_graph`` returns).
        path: the picture to write (``.svg``, ``.png`` or ``.pdf``).
        dpi: resolution of a PNG.

    Returns:
        The path written: ``path``, or ``path`` with the suffix ``.dot``.

    Example:
        >>> import tempfile, warnings
        >>> import minigrad
        >>> y = (minigrad.Tensor([1.0, 2.0], requires_grad=True) * 3).sum()
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     written = save_graph(draw_graph(y), Path(tempfile.mkdtemp()) / "y.svg")
        >>> written.suffix in (".svg", ".dot")
        True
    """
    import warnings

    path = Path(path)
    try:
        written = render_graph(graph, path, dpi=dpi)
    except DotNotFoundError as error:
        written = save_dot(graph, path.with_suffix(".dot"))
        warnings.warn(f"save_graph: wrote the DOT text to {written} instead of {path.name}. "
                      f"{error}", UserWarning, stacklevel=2)
    return written
