"""How ``draw_graph`` draws each node and edge: colours, label text and the legend.

Tensors are boxes filled by their role, ops ellipses, collapsed modules 3-D boxes; edges are
coloured and thickened by the gradient norm that flowed along them; profiled ops are filled on a
heat scale; anything not finite is red.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np

from minigrad.viz.gradients import GradRecord, _norm

__all__ = ["Look"]


# ---------------------------------------------------------------------------- colours and text
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


# ---------------------------------------------------------------------------- the look
def _requires_grad(obj: Any) -> bool:
    from minigrad.tensor import Tensor

    return isinstance(obj, Tensor) and obj.requires_grad


def _op_costs(ops: list[Any], profile: Any, collapse: bool) -> dict[str, tuple[float, float]]:
    """(forward ms, backward ms) per drawn op node, or per module node when collapsed."""
    cost: dict[str, tuple[float, float]] = {}
    if profile is None:
        return cost
    for op in ops:
        ms = profile.op_ms(op.fn)
        if ms is None:
            continue
        key = op.group.id if (collapse and op.group is not None) else op.id
        fwd, bwd = cost.get(key, (0.0, 0.0))
        cost[key] = (fwd + ms[0], bwd + ms[1])
    return cost


class Look:
    """Step 3 of ``draw_graph``: the label and the attributes of every node and edge.

    Labels are Graphviz HTML-like text (``<B>conv1.weight</B><BR/>(30, 1, 5, 5) float32``);
    attributes are the keyword arguments of ``graphviz.Digraph.node`` and ``edge``, in the order
    they appear in the DOT text.
    """

    def __init__(self, ops: list[Any], *, show_values: bool, show_grads: Any, profile: Any,
                 collapse: bool) -> None:
        self.show_values = show_values
        self.show_grads = show_grads is not False
        self.record = show_grads if isinstance(show_grads, GradRecord) else None
        self.profile = profile
        self.collapse = collapse
        self.cost = _op_costs(ops, profile, collapse)
        self.max_cost = max((f + b for f, b in self.cost.values()), default=0.0)
        self.saw_no_grad_edge = False  # the legend then explains dashed grey edges
        self._grad_norms: dict[str, tuple[float, bool] | None] = {}

    # -- gradients
    def tensor_grad(self, node: Any) -> tuple[float, bool] | None:
        """‖dL/d(tensor)‖ and whether it has NaN/inf: its .grad, or its producer's record."""
        from minigrad.tensor import Tensor

        if node.id not in self._grad_norms:
            obj, norm = node.obj, None
            if isinstance(obj, Tensor) and obj.grad is not None:
                norm = _norm(obj.grad)
            elif self.record is not None and node.producer is not None:
                norm = self.record.output_grad(node.producer.fn)
            self._grad_norms[node.id] = norm
        return self._grad_norms[node.id]

    # -- nodes
    def tensor(self, node: Any) -> tuple[str, dict[str, str]]:
        """A box: name (or role), shape and dtype, values, |grad|; red when not finite."""
        from minigrad.tensor import Tensor

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
            if self.show_values:
                lines += [_esc(line) for line in _value_lines(array)]
        bad = _nonfinite_text(array)
        if bad:
            lines.append(_font(_esc(bad), _RED))
        grad = self.tensor_grad(node) if self.show_grads else None
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
        return _html(lines), attrs

    def op(self, op: Any) -> tuple[str, dict[str, str]]:
        """An ellipse: the op's class and settings, and its time when profiled."""
        attrs = {"shape": "ellipse", "style": "filled", "fillcolor": _OP_FILL}
        extra, lines = self._heat(op.id)
        attrs.update(extra)
        return _html([_op_title(op.fn)] + lines), attrs

    def module(self, group: Any, ops: list[Any], tensors: Any) -> tuple[str, dict[str, str]]:
        """A collapsed module: its name and class, the ops inside and its parameter count."""
        kinds: dict[str, int] = {}
        for op in ops:
            if op.group is group:
                kinds[type(op.fn).__name__] = kinds.get(type(op.fn).__name__, 0) + 1
        summary = ", ".join(k if n == 1 else f"{k} ×{n}" for k, n in kinds.items())
        n_params = sum(t.obj.size for t in tensors
                       if t.hidden and t.role == "parameter"
                       and any(c.group is group for c, _ in t.consumers))
        lines = [f"<B>{_esc(group.title)}</B>", _esc(summary)]
        if n_params:
            lines.append(_esc(f"{n_params:,} parameters"))
        attrs = {"shape": "box3d", "style": "filled", "fillcolor": _GROUP_FILL}
        extra, heat_lines = self._heat(group.id)
        attrs.update(extra)
        return _html(lines + heat_lines), attrs

    def cluster(self, group: Any, depth: int) -> dict[str, str]:
        """The frame around a module's ops: its title; nested frames alternate two greys."""
        return {"label": f"<<B>{_esc(group.title)}</B>>", "style": "rounded,filled",
                "fillcolor": _CLUSTER_FILLS[depth % 2], "color": "#969696", "fontname": _FONT,
                "fontsize": "11", "labeljust": "l"}

    def _heat(self, key: str) -> tuple[dict[str, str], list[str]]:
        """Fill and text lines of a profiled op or module: its place on the heat scale."""
        if self.profile is None:
            return {}, []
        if key not in self.cost:
            return {}, [_font("not profiled", size=9)]
        fwd, bwd = self.cost[key]
        p = (fwd + bwd) / self.max_cost if self.max_cost > 0 else 0.0
        attrs = {"fillcolor": _interpolate(_HEAT_COLORS, p)}
        if p > 0.8:
            attrs["fontcolor"] = "white"
        return attrs, [_font(_esc(f"fwd {fwd:.2f} ms · bwd {bwd:.2f} ms"), size=9)]

    # -- edges
    def input_edge(self, op: Any, i: int, node: Any) -> dict[str, str]:
        """Tensor ``node`` into input ``i`` of ``op``: the gradient ``op`` sent back along it."""
        grad = None
        if self.show_grads:
            record = self.record
            grad = (record.input_grad(op.fn, i) if record is not None and op.fn in record
                    else self.tensor_grad(node))
        return self._edge(grad, _requires_grad(node.obj))

    def output_edge(self, node: Any) -> dict[str, str]:
        """An op into its output ``node``: the gradient of that output."""
        grad = self.tensor_grad(node) if self.show_grads else None
        return self._edge(grad, _requires_grad(node.obj))

    def _edge(self, grad: tuple[float, bool] | None, carries_grad: bool) -> dict[str, str]:
        """Colour and width by the gradient norm on a log scale; dashed if none can flow."""
        if not self.show_grads:
            return {}
        if not carries_grad:
            self.saw_no_grad_edge = True
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

    # -- legend
    def legend(self, tensors: list[Any], ops: list[Any]) -> str:
        """A table of the colours this picture uses (call it after the edges)."""
        roles = [r for r in _ROLE_FILL if any(t.role == r for t in tensors)]
        return _legend(roles, ops, self.collapse, self.show_grads,
                       {"nograd": self.saw_no_grad_edge},
                       self.max_cost if self.profile is not None else None)


def _legend(roles: list[str], ops: list[Any], collapse: bool, grads: bool,
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
