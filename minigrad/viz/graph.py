"""Drawing the tape: ``draw_graph`` turns the ops behind some output tensors into a
``graphviz.Digraph``.

It works in four steps, each a function below:

1. ``_collect_nodes``: walk the tape back from the outputs; number tensors and ops in forward
   order and give each tensor its role (parameter, input, intermediate, output, array).
2. ``_group_by_module``: put each op in the module it ran in (the scope recorded on the tape),
   for clusters (``group_modules``) or one node per module (``collapse``).
3. ``labels.Look``: the text and colours of every node and edge (values, gradient norms,
   profiled times, NaN/inf in red).
4. ``_emit_dot``: write it all as DOT: clusters, tensor nodes, op nodes, edges, legend.

Files are written by :mod:`minigrad.viz.render`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from minigrad.function import topological_order
from minigrad.viz.gradients import GradRecord
from minigrad.viz.labels import Look

__all__ = ["draw_graph"]

_RANKDIRS = ("TB", "LR", "BT", "RL")
_GRAPH_FONT = "Helvetica"


# ---------------------------------------------------------------------------- draw_graph
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
    outputs = _check_arguments(outputs, show_grads, rankdir, max_nodes, profile)
    tensors, ops = _collect_nodes(outputs)                            # 1. what is drawn
    groups = _group_by_module(tensors, ops, collapse, group_modules)  # 2. in which module
    _check_size(tensors, ops, groups, collapse, max_nodes)
    look = Look(ops, show_values=show_values, show_grads=show_grads,  # 3. how it looks
                profile=profile, collapse=collapse)
    return _emit_dot(tensors, ops, groups, look, rankdir=rankdir, legend=legend)  # 4. DOT


def _check_arguments(outputs: tuple[Any, ...], show_grads: Any, rankdir: str, max_nodes: Any,
                     profile: Any) -> tuple[Any, ...]:
    """The output tensors (a single list is unpacked); a clear error for any bad option."""
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
    if not isinstance(show_grads, (bool, GradRecord)):
        raise TypeError(f"draw_graph: show_grads must be a bool or a GradRecord, got "
                        f"{type(show_grads).__name__}")
    if profile is not None and not callable(getattr(profile, "op_ms", None)):
        raise TypeError(f"draw_graph: profile must be a minigrad.profile, got "
                        f"{type(profile).__name__}")
    return outputs


# ---------------------------------------------------------------------------- 1. collect nodes
class _TensorNode:
    """A tensor (or a plain array such as labels) on the tape: its role and its ops."""

    __slots__ = ("obj", "id", "role", "producer", "consumers", "hidden")

    def __init__(self, obj: Any, node_id: str) -> None:
        self.obj = obj
        self.id = node_id
        self.role = "intermediate"
        self.producer: _OpNode | None = None
        self.consumers: list[tuple[_OpNode, int]] = []
        self.hidden = False


class _OpNode:
    """An op on the tape, its output and the module it ran in."""

    __slots__ = ("fn", "id", "output", "group")

    def __init__(self, fn: Any, node_id: str) -> None:
        self.fn = fn
        self.id = node_id
        self.output: _TensorNode | None = None
        self.group: _Group | None = None


class _Group:
    """A module: a cluster (group_modules) or a single node (collapse)."""

    __slots__ = ("module", "id", "parent")

    def __init__(self, module: Any, node_id: str, parent: _Group | None) -> None:
        self.module = module
        self.id = node_id
        self.parent = parent

    @property
    def depth(self) -> int:
        """How many modules this one is nested in."""
        depth, parent = 0, self.parent
        while parent is not None:
            depth, parent = depth + 1, parent.parent
        return depth

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


def _collect_nodes(outputs: Sequence[Any]) -> tuple[dict[int, _TensorNode], list[_OpNode]]:
    """Step 1: the tensors and ops behind ``outputs``, numbered in forward order.

    Tensors are ``t0, t1, ...`` and ops ``op0, op1, ...``, in the order the ops ran, so the same
    computation always gives the same ids. Each tensor gets its role: output, parameter, input
    (a leaf that is not a parameter), intermediate, or an array that is not a tensor (``data``,
    or ``constant`` for a scalar).
    """
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


# ---------------------------------------------------------------------------- 2. group by module
def _group_by_module(tensors: dict[int, _TensorNode], ops: list[_OpNode], collapse: bool,
                     group_modules: bool) -> list[_Group]:
    """Step 2: put each op in the module it ran in (its scope on the tape).

    With ``group_modules`` every module becomes a group, nested as the modules are; with
    ``collapse`` only the outermost named modules do, and the tensors that never leave one
    module (its parameters and intermediates) are marked hidden. Groups are numbered ``m0, m1,
    ...`` in order of first use.
    """
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


def _check_size(tensors: dict[int, _TensorNode], ops: list[_OpNode], groups: list[_Group],
                collapse: bool, max_nodes: int) -> None:
    """Refuse a picture of more than ``max_nodes`` nodes, suggesting ``collapse=True``."""
    drawn = [t for t in tensors.values() if not t.hidden]
    count = len(drawn) + (len([op for op in ops if op.group is None]) if collapse else len(ops))
    if collapse:
        count += len(groups)
    if count > max_nodes:
        hint = "a larger max_nodes" if collapse else "collapse=True (one node per module) or a " \
                                                     "larger max_nodes"
        raise ValueError(f"draw_graph: the graph has {count} nodes ({len(tensors)} tensors, "
                         f"{len(ops)} ops), more than max_nodes={max_nodes}; pass {hint}")


# ---------------------------------------------------------------------------- 3. label
# The label and look of every node and edge: labels.Look.


# ---------------------------------------------------------------------------- 4. emit DOT
def _emit_dot(tensors: dict[int, _TensorNode], ops: list[_OpNode], groups: list[_Group],
              look: Look, *, rankdir: str, legend: bool) -> Any:
    """Step 4: the ``graphviz.Digraph``: tensors, ops (or modules), clusters, edges, legend."""
    graph = _new_digraph(rankdir)
    collapse = look.collapse
    clusters = {} if collapse else _new_clusters(groups, look)

    def container(group: _Group | None) -> Any:
        return graph if group is None else clusters.get(group, graph)

    drawn = [t for t in tensors.values() if not t.hidden]
    for node in drawn:
        label, attrs = look.tensor(node)
        container(_tensor_group(node, collapse)).node(node.id, label, **attrs)
    for op in ops:
        if not (collapse and op.group is not None):
            label, attrs = look.op(op)
            container(op.group).node(op.id, label, **attrs)
    if collapse:
        for group in groups:
            label, attrs = look.module(group, ops, tensors.values())
            graph.node(group.id, label, **attrs)
    _nest_clusters(graph, groups, clusters)
    _emit_edges(graph, tensors, ops, look)
    if legend:
        graph.node("legend", look.legend(drawn, ops), shape="plaintext", margin="0")
    return graph


def _new_digraph(rankdir: str) -> Any:
    """An empty ``graphviz.Digraph`` with minigrad's fonts and spacing."""
    import graphviz

    graph = graphviz.Digraph("minigrad")
    graph.attr(rankdir=rankdir, fontname=_GRAPH_FONT, nodesep="0.3", ranksep="0.35",
               bgcolor="white")
    graph.attr("node", fontname=_GRAPH_FONT, fontsize="11", margin="0.1,0.04")
    graph.attr("edge", fontname=_GRAPH_FONT, fontsize="9", arrowsize="0.7")
    return graph


def _new_clusters(groups: list[_Group], look: Look) -> dict[_Group, Any]:
    """One empty ``cluster_m<i>`` subgraph per module, titled and shaded by its depth."""
    import graphviz

    clusters = {}
    for group in groups:
        sub = graphviz.Digraph(f"cluster_{group.id}")
        sub.attr(**look.cluster(group, group.depth))
        clusters[group] = sub
    return clusters


def _nest_clusters(graph: Any, groups: list[_Group], clusters: dict[_Group, Any]) -> None:
    """Put each filled cluster into its parent's, innermost first (``subgraph`` copies)."""
    for group in reversed(groups):
        if group in clusters:
            parent = clusters[group.parent] if group.parent is not None else graph
            parent.subgraph(clusters[group])


def _emit_edges(graph: Any, tensors: dict[int, _TensorNode], ops: list[_OpNode],
                look: Look) -> None:
    """Edges from each op's inputs into it and from it to its output (one per module pair
    when collapsed), skipping hidden tensors."""
    collapse = look.collapse
    seen: set[tuple[str, str]] = set()
    for op in ops:
        head = op.group.id if (collapse and op.group is not None) else op.id
        for i, x in enumerate(op.fn.inputs):
            node = tensors[id(x)]
            if node.hidden or (collapse and (node.id, head) in seen):
                continue
            seen.add((node.id, head))
            graph.edge(node.id, head, **look.input_edge(op, i, node))
        node = op.output
        if not node.hidden:
            graph.edge(head, node.id, **look.output_edge(node))
