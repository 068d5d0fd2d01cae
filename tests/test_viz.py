"""Tests of minigrad.viz: learning curves and graph drawing."""

from __future__ import annotations

import os

import numpy as np
import pytest

from minigrad import viz


# ---------------------------------------------------------------------------- plot_history
def test_plot_history_axes_and_curves():
    history = {"train_loss": [2.3, 1.2, 0.7, 0.5], "test_loss": [2.1, 1.4, 0.9, 0.8],
               "train_acc": [0.3, 0.6, 0.8, 0.9], "test_acc": [0.2, 0.5, 0.7, 0.85],
               "epoch": [1, 2, 3, 4]}
    fig = viz.plot_history(history)
    loss_ax, acc_ax = fig.axes
    assert loss_ax.get_ylabel() == "loss" and acc_ax.get_ylabel() == "accuracy"
    assert sorted(line.get_label() for line in loss_ax.get_lines()) == ["test_loss", "train_loss"]
    assert sorted(line.get_label() for line in acc_ax.get_lines()) == ["test_acc", "train_acc"]
    line = next(line for line in acc_ax.get_lines() if line.get_label() == "test_acc")
    np.testing.assert_array_equal(line.get_xdata(), [1, 2, 3, 4])
    np.testing.assert_array_equal(line.get_ydata(), [0.2, 0.5, 0.7, 0.85])
    assert loss_ax.get_xlabel() == "epoch"


def test_plot_history_per_step_loss_with_per_epoch_accuracy():
    history = {"train_loss": list(np.linspace(2, 0.1, 12)), "step": list(range(0, 120, 10)),
               "test_acc": [0.5, 0.7, 0.9], "epoch": [1, 2, 3]}
    fig = viz.plot_history(history)
    loss_ax, acc_ax = fig.axes
    assert loss_ax.get_xlabel() == "step" and acc_ax.get_xlabel() == "epoch"
    np.testing.assert_array_equal(loss_ax.get_lines()[0].get_xdata(), range(0, 120, 10))


def test_plot_history_missing_keys_give_one_axis():
    fig = viz.plot_history({"loss": [1.0, 0.5]})
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss"]
    fig = viz.plot_history({"test_accuracy": [0.1, 0.5, 0.7], "lr": [0.1, 0.1, 0.01]})
    assert [ax.get_ylabel() for ax in fig.axes] == ["accuracy"]
    np.testing.assert_array_equal(fig.axes[0].get_lines()[0].get_xdata(), [1, 2, 3])


def test_plot_history_draws_the_learning_rate_in_a_panel_of_its_own():
    history = {"train_loss": [2.3, 1.2, 0.7], "test_acc": [0.2, 0.5, 0.7],
               "lr": [1e-3, 5e-4, 1e-4], "epoch": [1, 2, 3]}
    assert [ax.get_ylabel() for ax in viz.plot_history(history).axes] == ["loss", "accuracy"]
    fig = viz.plot_history(history, lr_key="lr")
    loss_ax, acc_ax, lr_ax = fig.axes
    assert lr_ax.get_ylabel() == "learning rate" and lr_ax.get_xlabel() == "epoch"
    (line,) = lr_ax.get_lines()
    np.testing.assert_array_equal(line.get_xdata(), [1, 2, 3])
    np.testing.assert_array_equal(line.get_ydata(), [1e-3, 5e-4, 1e-4])
    assert lr_ax.get_ylim()[0] == 0
    assert lr_ax.get_position().width < acc_ax.get_position().width
    with pytest.raises(ValueError, match=r"lr_key='learning_rate' is not in history"):
        viz.plot_history(history, lr_key="learning_rate")


@pytest.mark.parametrize("history, message", [
    ({}, "nothing to draw"),
    ({"epoch": [1, 2], "lr": [0.1, 0.1]}, "nothing to draw"),
    ({"train_loss": []}, "'train_loss'] is empty"),
    ({"train_loss": [1.0, 0.5, 0.2], "epoch": [1, 2]}, "matches no x key"),
    ({"train_loss": [1.0, 0.5, 0.2], "test_loss": [1.0, 0.4]}, "different lengths"),
    ({"train_loss": [[1.0, 0.5]]}, "flat list"),
    ({"train_loss": ["a", "b"]}, "list of numbers"),
])
def test_plot_history_errors(history, message):
    with pytest.raises(ValueError, match=message):
        viz.plot_history(history)


def test_plot_history_does_not_touch_pyplot():
    import matplotlib
    import matplotlib.pyplot as plt

    backend = matplotlib.get_backend()
    before = plt.get_fignums()
    viz.plot_history({"loss": [1.0, 0.5]})
    assert plt.get_fignums() == before
    assert matplotlib.get_backend() == backend


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".svg", b"<?xml")])
def test_plot_history_saves_atomically(tmp_path, suffix, magic):
    path = tmp_path / "sub" / f"curves{suffix}"
    viz.plot_history({"train_loss": [1.0, 0.5], "test_acc": [0.5, 0.9]}, path=path)
    assert path.read_bytes().startswith(magic)
    assert os.listdir(path.parent) == [path.name]  # no temporary file left behind


def test_plot_history_failed_save_keeps_previous_file(tmp_path):
    path = tmp_path / "curves.notaformat"
    path.write_bytes(b"previous")
    with pytest.raises(ValueError):
        viz.plot_history({"loss": [1.0, 0.5]}, path=path)
    assert path.read_bytes() == b"previous"
    assert os.listdir(tmp_path) == [path.name]


# ---------------------------------------------------------------------------- graph helpers
import re  # noqa: E402
import shutil  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402

import minigrad  # noqa: E402
from minigrad import function  # noqa: E402
from minigrad.function import Function  # noqa: E402

SNAPSHOTS = Path(__file__).parent / "snapshots"
# Set MINIGRAD_UPDATE_SNAPSHOTS=1 to rewrite the stored DOT files after an intended change.
UPDATE = os.environ.get("MINIGRAD_UPDATE_SNAPSHOTS") == "1"
HAS_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAS_DOT, reason="Graphviz 'dot' is not installed")
NODE = re.compile(r"^\s*(\w+) \[label=<(.*)>(.*)\]$")
EDGE = re.compile(r"^\s*(\w+) -> (\w+)(?: \[(.*)\])?$")


class FakeModule:
    """Stands for an nn.Module: the tape only needs the object and its ``name``."""

    def __init__(self, name):
        self.name = name


class Linear(FakeModule):
    pass


class Net(FakeModule):
    pass


@contextmanager
def running(*modules):
    """Record ops as if ``modules`` (outermost first) were running their forward."""
    saved = list(function._module_scope)
    function._module_scope[:] = list(modules)
    try:
        yield
    finally:
        function._module_scope[:] = saved


def nodes(graph):
    """node id -> (label, attributes) from the DOT text."""
    out = {}
    for line in graph.source.splitlines():
        m = NODE.match(line)
        if m:
            out[m.group(1)] = (m.group(2), m.group(3))
    return out


def edges(graph):
    """[(tail, head, attributes)] from the DOT text, in order."""
    return [(m.group(1), m.group(2), m.group(3) or "")
            for m in map(EDGE.match, graph.source.splitlines()) if m]


def clusters(graph):
    """node id -> tuple of the cluster labels around it, outermost first."""
    where, stack = {}, []
    for line in graph.source.splitlines():
        s = line.strip()
        if s.startswith("subgraph cluster_"):
            stack.append(None)
        elif stack and stack[-1] is None and "label=<<B>" in s:
            stack[-1] = re.search(r"label=<<B>(.*?)</B>>", s).group(1)
        elif s == "}" and stack:
            stack.pop()
        else:
            m = NODE.match(line)
            if m:
                where[m.group(1)] = tuple(stack)
    return where


def node_with(graph, text):
    matches = [k for k, (label, _) in nodes(graph).items() if text in label]
    assert len(matches) == 1, f"{text!r} is in nodes {matches}"
    return matches[0]


def mlp(seed=0):
    """x -> fc1 (matmul, add, relu) -> fc2 (matmul) -> mean squared error against labels."""
    nn = pytest.importorskip("minigrad.nn")
    rng = np.random.default_rng(seed)
    x = minigrad.Tensor(rng.normal(size=(4, 3)), name="x")
    w1 = nn.Parameter(rng.normal(size=(3, 5)), name="fc1.weight", dtype=np.float64)
    b1 = nn.Parameter(np.full(5, 0.1), name="fc1.bias", dtype=np.float64)
    w2 = nn.Parameter(rng.normal(size=(5, 2)), name="fc2.weight", dtype=np.float64)
    t = np.arange(8.0).reshape(4, 2)
    net, fc1, fc2 = Net(""), Linear("fc1"), Linear("fc2")
    with running(net, fc1):
        h = (x @ w1 + b1).relu()
    with running(net, fc2):
        y = h @ w2
    with running(net):
        loss = ((y - t) ** 2).mean()
    return loss, dict(x=x, w1=w1, b1=b1, w2=w2, h=h, y=y, t=t)


def check_snapshot(name, text):
    path = SNAPSHOTS / name
    if UPDATE or not path.exists():
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        if not UPDATE:
            pytest.fail(f"snapshot {path} did not exist and was written; run the test again")
    assert text == path.read_text(encoding="utf-8"), (
        f"DOT differs from {path}; if the change is intended, rerun with "
        f"MINIGRAD_UPDATE_SNAPSHOTS=1")


# ---------------------------------------------------------------------------- draw_graph
def test_dot_snapshot_plain_with_values():
    loss, _ = mlp()
    check_snapshot("graph_mlp.dot", viz.draw_graph(loss, show_values=True).source)


def test_dot_snapshot_grouped_with_grads():
    loss, _ = mlp()
    with viz.record_grads() as record:
        loss.backward()
    graph = viz.draw_graph(loss, show_grads=record, group_modules=True, rankdir="LR")
    check_snapshot("graph_mlp_grouped_grads.dot", graph.source)


def test_output_is_deterministic_and_numbered_in_traversal_order():
    first, second = viz.draw_graph(mlp(0)[0]).source, viz.draw_graph(mlp(0)[0]).source
    assert first == second
    ids = list(nodes(viz.draw_graph(mlp(0)[0])))
    tensor_ids = [k for k in ids if k.startswith("t")]
    op_ids = [k for k in ids if k.startswith("op")]
    assert tensor_ids == [f"t{i}" for i in range(13)]   # 5 leaves, 7 op outputs, 1 array
    assert op_ids == [f"op{i}" for i in range(7)]
    assert ids == tensor_ids + op_ids + ["legend"]
    # Forward order: the input x comes first, the loss last.
    labels = nodes(viz.draw_graph(mlp(0)[0]))
    assert "<B>x</B>" in labels["t0"][0] and "<B>output</B>" in labels["t12"][0]
    assert labels["op0"][0].startswith("<B>MatMul</B>")


def test_names_shapes_dtypes_and_op_labels():
    loss, v = mlp()
    graph = viz.draw_graph(loss)
    labels = {k: label for k, (label, _) in nodes(graph).items()}
    assert labels[node_with(graph, "fc1.weight")].endswith("(3, 5) float64")
    assert "(5,) float64" in labels[node_with(graph, "fc1.bias")]
    assert "(4, 3) float64" in labels[node_with(graph, "<B>x</B>")]
    assert "scalar float64" in labels[node_with(graph, "<B>output</B>")]
    assert "<B>array</B><BR/>(4, 2) float64" in labels[node_with(graph, "<B>array</B>")]
    ops = sorted(re.match(r"<B>(\w+)</B>", label).group(1) for k, label in labels.items()
                 if k.startswith("op"))
    assert ops == ["Add", "MatMul", "MatMul", "Mean", "Pow", "ReLU", "Sub"]
    assert "<B>Mean</B>(axis=None, keepdims=False)" in labels[node_with(graph, "Mean")]
    # Edges follow the data: x and fc1.weight into the first MatMul, which makes h's input.
    matmul = next(k for k, label in labels.items() if k.startswith("op") and "MatMul" in label)
    into = [tail for tail, head, _ in edges(graph) if head == matmul]
    assert into == [node_with(graph, "<B>x</B>"), node_with(graph, "fc1.weight")]


def test_roles_are_styled_apart_and_explained_by_the_legend():
    nn = pytest.importorskip("minigrad.nn")
    w = nn.Parameter(np.ones((3, 2)), name="fc.weight")
    x = minigrad.Tensor(np.ones((1, 3), np.float32), name="x")
    y = x @ w
    loss = (y * 2.0).sum()
    graph = viz.draw_graph(loss)
    fill = {k: re.search(r'fillcolor="(#\w+)"', attrs).group(1)
            for k, (_, attrs) in nodes(graph).items() if k != "legend"}
    param, data = node_with(graph, "fc.weight"), node_with(graph, "<B>x</B>")
    const, out = node_with(graph, "2 (float32)"), node_with(graph, "<B>output</B>")
    inter = next(k for k, (label, _) in nodes(graph).items() if label == "(1, 2) float32")
    assert len({fill[param], fill[data], fill[inter], fill[out], fill[const]}) == 5
    assert "dashed" in nodes(graph)[const][1]
    legend = nodes(graph)["legend"][0]
    for text in ("parameter", "input tensor", "intermediate tensor", "output", "op (class",
                 "NaN or inf"):
        assert text in legend
    for colour in (fill[param], fill[data], fill[out]):
        assert f'BGCOLOR="{colour}"' in legend
    assert "legend" not in nodes(viz.draw_graph(loss, legend=False))


def test_show_values_gives_min_mean_max_and_scalar_values():
    x = minigrad.Tensor(np.array([1.0, 2.0, 6.0]), requires_grad=True, name="x")
    loss = (x * x).sum()
    labels = {k: label for k, (label, _) in nodes(viz.draw_graph(loss, show_values=True)).items()}
    assert "min 1 · mean 3 · max 6" in labels["t0"]
    assert "min 1 · mean 13.7 · max 36" in labels["t1"]
    assert "value 41" in labels["t2"]
    assert "min" not in "".join(nodes(viz.draw_graph(loss))[k][0] for k in ("t0", "t1", "t2"))


def test_show_grads_from_leaves_and_retained_tensors():
    x = minigrad.Tensor(np.array([3.0, 4.0]), requires_grad=True, name="x")
    y = (x * 2.0).retain_grad()
    loss = (y * y).sum()
    loss.backward()
    graph = viz.draw_graph(loss, show_grads=True)
    labels = nodes(graph)
    assert f"|grad| {np.linalg.norm(x.grad):.3g}" in labels["t0"][0]   # 40
    assert f"|grad| {np.linalg.norm(y.grad):.3g}" in labels["t2"][0]   # 20
    # The edge out of x carries x's gradient: coloured and labelled with its norm.
    attrs = dict(((t, h), a) for t, h, a in edges(graph))
    assert 'label="  40"' in attrs[("t0", "op0")] and "penwidth" in attrs[("t0", "op0")]
    # The constant 2.0 carries no gradient: a dashed grey edge.
    assert "dashed" in attrs[("t1", "op0")]
    assert "|grad|" not in viz.draw_graph(loss).source


def test_record_grads_colours_every_edge_with_the_gradient_along_it():
    x = minigrad.Tensor(np.ones(4), requires_grad=True, name="x")
    y = x * 3.0            # dL/dy = 1/4 each: |.| = 0.5; dL/dx via y = 3/4 each: |.| = 1.5
    loss = y.mean()
    with viz.record_grads() as record:
        loss.backward()
    assert record.input_grad(y.creator, 0) == pytest.approx((1.5, False))
    graph = viz.draw_graph(loss, show_grads=record)
    attrs = dict(((t, h), a) for t, h, a in edges(graph))
    assert 'label="  1.5"' in attrs[("t0", "op0")]
    assert 'label="  0.5"' in attrs[("op0", "t2")] and 'label="  0.5"' in attrs[("t2", "op1")]
    assert "|grad| 0.5" in nodes(graph)["t2"][0]  # intermediate, known from the record
    # A larger gradient gets a thicker edge.
    width = {k: float(re.search(r"penwidth=([\d.]+)", a).group(1)) for k, a in attrs.items()
             if "penwidth" in a}
    assert width[("t0", "op0")] > width[("t2", "op1")]
    assert function._observers == []


def test_vanishing_and_exploding_gradients_differ_at_a_glance():
    small = minigrad.Tensor(np.ones(3), requires_grad=True, name="small")
    large = minigrad.Tensor(np.ones(3), requires_grad=True, name="large")
    loss = (small * 1e-7).sum() + (large * 1e3).sum()
    loss.backward()
    attrs = {t: a for t, h, a in edges(viz.draw_graph(loss, show_grads=True))}
    colour = {k: re.search(r'color="(#\w+)"', attrs[node_with(
        viz.draw_graph(loss), f"<B>{k}</B>")]).group(1) for k in ("small", "large")}
    assert colour["small"] != colour["large"]
    width = {k: float(re.search(r"penwidth=([\d.]+)", attrs[node_with(
        viz.draw_graph(loss), f"<B>{k}</B>")]).group(1)) for k in ("small", "large")}
    assert width["large"] > 2 * width["small"]


def test_nan_and_inf_are_drawn_in_red():
    x = minigrad.Tensor(np.array([1.0, 0.0, 4.0]), requires_grad=True, name="x")
    with np.errstate(divide="ignore", invalid="ignore"):
        y = x.sqrt()             # finite, but d sqrt/dx = inf at 0
        loss = y.sum()
        loss.backward()
    graph = viz.draw_graph(loss, show_grads=True)
    label, attrs = nodes(graph)["t0"]
    assert "#d7191c" in attrs and '<FONT COLOR="#d7191c">grad: 1 inf</FONT>' in label
    assert 'color="#d7191c"' in dict(((t, h), a) for t, h, a in edges(graph))[("t0", "op0")]
    z = minigrad.Tensor(np.array([np.nan, 1.0, np.inf]), requires_grad=True, name="z") * 2.0
    label, attrs = nodes(viz.draw_graph(z))["t2"]
    assert "1 NaN · 1 inf" in label and 'color="#d7191c"' in attrs
    label, attrs = nodes(viz.draw_graph(z))["t0"]
    assert "1 NaN · 1 inf" in label and 'color="#d7191c"' in attrs


def test_group_modules_puts_ops_and_tensors_in_their_module_clusters():
    loss, _ = mlp()
    graph = viz.draw_graph(loss, group_modules=True)
    where = clusters(graph)
    labels = {k: label for k, (label, _) in nodes(graph).items()}
    for k, label in labels.items():
        if k.startswith("op"):
            op = re.match(r"<B>(\w+)</B>", label).group(1)
            expected = {"Add": ("Net", "fc1 · Linear"), "ReLU": ("Net", "fc1 · Linear"),
                        "Sub": ("Net",), "Pow": ("Net",), "Mean": ("Net",)}.get(op)
            if expected:
                assert where[k] == expected, (op, where[k])
    matmuls = sorted(where[k] for k, label in labels.items() if "MatMul" in label)
    assert matmuls == [("Net", "fc1 · Linear"), ("Net", "fc2 · Linear")]
    assert where[node_with(graph, "<B>x</B>")] == ()
    assert where[node_with(graph, "<B>output</B>")] == ("Net",)
    assert "cluster" not in viz.draw_graph(loss).source


def test_group_modules_places_parameters_in_their_owning_module():
    nn = pytest.importorskip("minigrad.nn")
    w = nn.Parameter(np.ones((3, 2)), name="block.fc.weight")
    block, fc = FakeModule("block"), FakeModule("block.fc")
    x = minigrad.Tensor(np.ones((1, 3)), name="x")
    with running(block, fc):
        y = x @ w
    with running(block):
        loss = y.sum()
    graph = viz.draw_graph(loss, group_modules=True)
    where = clusters(graph)
    assert where[node_with(graph, "block.fc.weight")] == ("block · FakeModule",
                                                          "block.fc · FakeModule")


def test_collapse_draws_one_node_per_top_level_module():
    loss, v = mlp()
    graph = viz.draw_graph(loss, collapse=True)
    labels = {k: label for k, (label, _) in nodes(graph).items()}
    modules = sorted(k for k in labels if k.startswith("m"))
    assert [labels[k].split("<BR/>")[:2] for k in modules] == [
        ["<B>fc1 · Linear</B>", "MatMul, Add, ReLU"], ["<B>fc2 · Linear</B>", "MatMul"]]
    # Ops outside the modules (the loss) stay; the modules' ops and intermediates go.
    ops = sorted(re.match(r"<B>(\w+)</B>", labels[k]).group(1) for k in labels
                 if k.startswith("op"))
    assert ops == ["Mean", "Pow", "Sub"]
    assert "(4, 5) float64" in "".join(labels.values())  # h: from fc1 into fc2, kept
    assert sum("(4, 5) float64" in label for label in labels.values()) == 1
    # Parameters used inside one module are folded into it (but not the input x).
    assert "fc1.weight" not in graph.source and "<B>x</B>" in graph.source
    h = node_with(graph, "(4, 5) float64")
    pairs = {(t, h_) for t, h_, _ in edges(graph)}
    assert (modules[0], h) in pairs and (h, modules[1]) in pairs
    assert len(nodes(graph)) < len(nodes(viz.draw_graph(loss)))


def test_max_nodes_error_suggests_collapse():
    x = minigrad.Tensor(np.ones(2), requires_grad=True)
    y = x
    for _ in range(300):
        y = y * 1.0
    with pytest.raises(ValueError, match=r"has 901 nodes .*max_nodes=500.*collapse=True"):
        viz.draw_graph(y)
    assert len(nodes(viz.draw_graph(y, max_nodes=1000, legend=False))) == 901


def test_long_chains_need_no_recursion():
    x = minigrad.Tensor(np.ones(1), requires_grad=True, name="x")
    y = x
    for _ in range(5000):
        y = y.relu()
    graph = viz.draw_graph(y, max_nodes=20000, legend=False)
    assert len(nodes(graph)) == 10001


@pytest.mark.parametrize("rankdir", ["TB", "LR"])
def test_rankdir(rankdir):
    loss, _ = mlp()
    assert f"rankdir={rankdir}" in viz.draw_graph(loss, rankdir=rankdir).source


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(rankdir="XY"), ValueError, "rankdir must be one of"),
    (dict(max_nodes=0), ValueError, "max_nodes must be a positive int"),
    (dict(show_grads="yes"), TypeError, "show_grads must be a bool or a GradRecord"),
    (dict(profile=object()), TypeError, "profile must be a minigrad.profile"),
])
def test_bad_arguments(kwargs, error, message):
    loss, _ = mlp()
    with pytest.raises(error, match=message):
        viz.draw_graph(loss, **kwargs)


def test_outputs_must_be_tensors():
    with pytest.raises(TypeError, match="outputs must be Tensors, got ndarray at position 1"):
        viz.draw_graph(mlp()[0], np.ones(2))
    with pytest.raises(ValueError, match="at least one output"):
        viz.draw_graph()


def test_ops_are_numbered_in_a_forward_order_of_the_data():
    # b feeds both c = exp(b) and a = b · c: Exp must come before the second Mul.
    x = minigrad.Tensor(np.ones(2), requires_grad=True, name="x")
    b = x * 2.0
    a = b * b.exp()
    labels = nodes(viz.draw_graph(a, legend=False))
    ops = [re.match(r"<B>(\w+)</B>", labels[f"op{i}"][0]).group(1) for i in range(3)]
    assert ops == ["Mul", "Exp", "Mul"]
    made = {h: t for t, h, _ in edges(viz.draw_graph(a)) if t.startswith("op")}
    assert made == {"t2": "op0", "t3": "op1", "t4": "op2"}


def test_several_outputs_share_their_graph():
    x = minigrad.Tensor(np.ones(3), requires_grad=True, name="x")
    h = x * 2.0
    a, b = h.sum(), h.mean()
    graph = viz.draw_graph(a, b)
    assert sum("<B>output</B>" in label for label, _ in nodes(graph).values()) == 2
    assert sum(label.startswith("<B>Mul</B>") for label, _ in nodes(graph).values()) == 1
    assert graph.source == viz.draw_graph([a, b]).source


def test_drawable_after_backward_freed_the_graph():
    loss, v = mlp()
    before = viz.draw_graph(loss, show_values=True).source
    loss.backward()
    assert v["y"].creator.released
    assert viz.draw_graph(loss, show_values=True).source == before


class Scaled(Function):
    """y = x · k with an array setting (shown summarised, never printed)."""

    def __init__(self, k, index):
        self.k = k
        self.index = index
        self._cache = "private"

    def forward(self, x):
        return x * self.k[0, 0]

    def backward(self, dy):
        return dy * self.k[0, 0]


def test_settings_are_summarised_and_labels_escaped():
    x = minigrad.Tensor(np.ones(2), requires_grad=True, name='a<b> & "c"')
    y = Scaled(np.full((30, 30), 2.0), (slice(None), slice(1, 3), Ellipsis))(x)
    source = viz.draw_graph(y).source
    assert '<B>a&lt;b&gt; &amp; &quot;c&quot;</B>' in source
    # Long settings wrap after a comma.
    assert "Scaled</B>(k=array(30, 30) float64,<BR/>index=(:, 1:3, ...))" in source
    assert "2.0, 2.0" not in source and "_cache" not in source
    assert "<B>GetItem</B>(index=1:)" in viz.draw_graph(x[1:]).source
    if HAS_DOT:  # dot accepts the escaped label and shows the original text
        svg = viz.draw_graph(y)._repr_mimebundle_()["image/svg+xml"]
        assert "a&lt;b&gt; &amp; &quot;c&quot;" in svg or 'a&lt;b&gt; &amp; "c"' in svg


def test_graph_displays_inline_in_jupyter():
    import graphviz

    graph = viz.draw_graph(mlp()[0])
    assert isinstance(graph, graphviz.Digraph)
    assert callable(graph._repr_mimebundle_)
    if HAS_DOT:
        bundle = graph._repr_mimebundle_()
        assert "fc1.weight" in bundle["image/svg+xml"]


def test_profile_colours_ops_by_time():
    import time

    class Slow(Function):
        def forward(self, x):
            time.sleep(0.02)
            return x.copy()

        def backward(self, dy):
            return dy

    x = minigrad.Tensor(np.ones(3), requires_grad=True, name="x")
    from minigrad.profiler import profile

    with profile() as prof:
        loss = Slow()(x * 2.0).sum()
        loss.backward()
    graph = viz.draw_graph(loss, profile=prof)
    slow, mul = node_with(graph, "<B>Slow</B>"), node_with(graph, "<B>Mul</B>")
    labels = nodes(graph)
    assert 'fillcolor="#cc4c02"' in labels[slow][1]       # the hottest colour
    assert 'fillcolor="#cc4c02"' not in labels[mul][1]
    assert re.search(r"fwd 2\d\.\d\d ms", labels[slow][0])
    assert "op time" in labels["legend"][0]
    other = (x * 3.0).sum()  # not profiled
    assert "not profiled" in viz.draw_graph(other, profile=prof).source


# ---------------------------------------------------------------------------- files
@needs_dot
@pytest.mark.parametrize("fmt, magic", [("svg", b"<?xml"), ("png", b"\x89PNG")])
def test_render_graph_svg_and_png(tmp_path, fmt, magic):
    loss, _ = mlp()
    loss.backward()
    graph = viz.draw_graph(loss, show_grads=True, group_modules=True)
    path = viz.render_graph(graph, tmp_path / f"graph.{fmt}")
    data = path.read_bytes()
    assert data.startswith(magic)
    if fmt == "svg":
        assert b"fc1.weight" in data and b"MatMul" in data
    assert os.listdir(tmp_path) == [f"graph.{fmt}"]
    png = viz.render_graph(graph, tmp_path / "plain", format="png", dpi=40)
    assert png.read_bytes().startswith(b"\x89PNG") and len(png.read_bytes()) < len(data) + 10**6


def test_missing_dot_says_how_to_install_and_save_dot_still_works(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "")
    loss, _ = mlp()
    graph = viz.draw_graph(loss)
    with pytest.raises(viz.DotNotFoundError) as info:
        viz.render_graph(graph, tmp_path / "graph.svg")
    message = str(info.value)
    for text in ("apt-get install graphviz", "brew install graphviz", "conda", "save_dot"):
        assert text in message
    assert isinstance(info.value, RuntimeError)
    assert not (tmp_path / "graph.svg").exists()
    path = viz.save_dot(graph, tmp_path / "graph.dot")
    assert path.read_text() == graph.source
    assert viz.save_dot(loss, tmp_path / "loss.dot").read_text() == viz.draw_graph(loss).source
    assert sorted(os.listdir(tmp_path)) == ["graph.dot", "loss.dot"]


@pytest.mark.parametrize("graphviz", ["with dot", "without dot"])
def test_save_graph_renders_or_falls_back_to_the_dot_text(tmp_path, monkeypatch, graphviz):
    if graphviz == "with dot" and not HAS_DOT:
        pytest.skip("Graphviz's dot is not installed")
    if graphviz == "without dot":
        monkeypatch.setenv("PATH", "")
    graph = viz.draw_graph(mlp()[0])
    if graphviz == "with dot":
        assert viz.save_graph(graph, tmp_path / "cnn.png") == tmp_path / "cnn.png"
        assert (tmp_path / "cnn.png").read_bytes().startswith(b"\x89PNG")
    else:
        with pytest.warns(UserWarning, match=r"wrote the DOT text to .*cnn\.dot instead of "
                                             r"cnn\.png.*apt-get install graphviz"):
            assert viz.save_graph(graph, tmp_path / "cnn.png") == tmp_path / "cnn.dot"
        assert (tmp_path / "cnn.dot").read_text() == graph.source
    assert len(os.listdir(tmp_path)) == 1


def test_render_graph_rejects_bad_format(tmp_path):
    with pytest.raises(ValueError, match="format must be"):
        viz.render_graph(viz.draw_graph(mlp()[0]), tmp_path / "g", format="jpeg")


# ---------------------------------------------------------------------------- the textbook CNN
@pytest.fixture
def cnn_loss():
    models = pytest.importorskip("minigrad.models")
    nn = pytest.importorskip("minigrad.nn")
    nn.manual_seed(0)
    model = models.SimpleConvNet()
    rng = np.random.default_rng(0)
    x = minigrad.Tensor(rng.random((2, 1, 28, 28), dtype=np.float32), name="images")
    return model.loss(x, np.array([3, 7]))


def test_cnn_graph_shows_layers_parameters_and_shapes(cnn_loss):
    graph = viz.draw_graph(cnn_loss)
    labels = [label for label, _ in nodes(graph).values()]
    text = "".join(labels)
    for name, shape in [("conv1.weight", "(30, 1, 5, 5)"), ("conv1.bias", "(30,)"),
                        ("affine1.weight", "(4320, 100)"), ("affine2.bias", "(10,)")]:
        assert f"<B>{name}</B><BR/>{shape} float32" in text
    assert "<B>Conv2d</B>(stride=(1, 1), padding=(0, 0))" in text
    assert "<B>MaxPool2d</B>(kernel_size=(2, 2), stride=(2, 2)," in text
    assert "(2, 30, 24, 24) float32" in text and "(2, 30, 12, 12) float32" in text
    assert sum(label.startswith("<B>Affine</B>") for label in labels) == 2
    assert "<B>array</B><BR/>(2,) int64" in text


def test_cnn_modules_as_clusters_and_collapsed(cnn_loss):
    graph = viz.draw_graph(cnn_loss, group_modules=True)
    where = clusters(graph)
    assert where[node_with(graph, "<B>Conv2d</B>")] == ("SimpleConvNet", "conv1 · Conv2d")
    assert where[node_with(graph, "conv1.weight")] == ("SimpleConvNet", "conv1 · Conv2d")
    assert where[node_with(graph, "affine2.weight")] == ("SimpleConvNet", "affine2 · Linear")
    assert where[node_with(graph, "<B>SoftmaxCrossEntropy</B>")] == ()
    from minigrad.profiler import profile

    with profile() as prof:
        cnn_loss.backward()
    collapsed = viz.draw_graph(cnn_loss, collapse=True, profile=prof)
    heat = nodes(collapsed)[node_with(collapsed, "pool1 · MaxPool2d")]
    assert re.search(r"fwd 0\.00 ms · bwd \d+\.\d\d ms", heat[0])  # forward ran before
    assert 'fillcolor="#bcbddc"' not in heat[1]                       # filled by its cost
    modules = [label.split("<BR/>")[0] for k, (label, _) in nodes(collapsed).items()
               if re.fullmatch(r"m\d+", k)]
    assert modules == ["<B>conv1 · Conv2d</B>", "<B>relu1 · ReLU</B>", "<B>pool1 · MaxPool2d</B>",
                       "<B>flatten · Flatten</B>", "<B>affine1 · Linear</B>",
                       "<B>relu2 · ReLU</B>", "<B>affine2 · Linear</B>"]
    assert "780 parameters" in nodes(collapsed)[node_with(collapsed, "conv1 · Conv2d")][0]


def test_cnn_gradients_after_backward(cnn_loss):
    with viz.record_grads() as record:
        cnn_loss.backward()
    graph = viz.draw_graph(cnn_loss, show_grads=record)
    unlabelled = [(t, h) for t, h, a in edges(graph)
                  if "label=" not in a and "dashed" not in a]
    assert unlabelled == []  # every edge that carries a gradient shows its norm
    assert function._observers == []
