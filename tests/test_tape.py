"""The tape: recording, the reverse walk, accumulation, release and the checks on users' ops."""

import contextlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minigrad import Function, Tensor, function, no_grad
from minigrad.testing import gradcheck

# ------------------------------------------------------------------ accumulation


def test_a_tensor_used_twice_accumulates():
    x = Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    (x * x + x).sum().backward()
    np.testing.assert_array_equal(x.grad, 2 * x.data + 1)


def test_a_0d_tensor_used_twice_keeps_an_array_gradient():
    """0-d arrays add up to a NumPy scalar; accumulated gradients stay arrays (an optimiser
    updates its running values in place)."""
    import minigrad

    x = Tensor(np.array(-7.0), requires_grad=True)
    (x * x + x).backward()
    assert type(x.grad) is np.ndarray and x.grad.shape == () and x.grad == -13.0
    (g,) = minigrad.grad(x * x + x, [x])
    assert type(g.data) is np.ndarray and g.data == -13.0


def test_diamond_graph():
    r"""x → a → (b, c) → d: both paths reach a, then x.

          x
          |  a = 2x
          a
         / \   b = a + 1,  c = 3a
        b   c
         \ /   d = b · c
          d
    dd/dx = (c + 3b) · 2 = (6x + 3(2x + 1)) · 2
    """
    x = Tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
    a = x * 2
    d = (a + 1) * (a * 3)
    d.sum().backward()
    np.testing.assert_allclose(x.grad, (6 * x.data + 3 * (2 * x.data + 1)) * 2)
    assert gradcheck(lambda t: (t * 2 + 1) * (t * 2 * 3), x.data)


def test_shared_subgraph_runs_each_op_once():
    calls = []

    class Counted(Function):
        def forward(self, x):
            return x * 1.0

        def backward(self, dy):
            calls.append(dy.copy())
            return dy

    x = Tensor(np.ones(2), requires_grad=True)
    h = Counted()(x)
    (h * 2 + h * 3 + h).sum().backward()
    assert len(calls) == 1
    np.testing.assert_array_equal(calls[0], [6.0, 6.0])
    np.testing.assert_array_equal(x.grad, [6.0, 6.0])


@pytest.mark.parametrize("build", [
    # b feeds the last op directly and through a longer path: both must reach b first.
    lambda x: (lambda b: b * b.exp())(x * 2),
    lambda x: (lambda b: b + b.exp().tanh().sigmoid())(x * 2),
    lambda x: (lambda b: (b.tanh() * 3).exp() * b)(x - 1),
    lambda x: (lambda a: (lambda b: a * b + b.exp() * a.tanh())(a.sigmoid()))(x * x),
], ids=["direct-and-one-op", "direct-and-three-ops", "short-path-second", "two-shared"])
def test_an_output_used_along_paths_of_different_lengths(build):
    assert gradcheck(lambda t: build(t), np.array([0.3, -0.7, 1.1]))


_UNARY = {"exp": lambda a: (a * 0.5).exp(), "tanh": Tensor.tanh, "sigmoid": Tensor.sigmoid}
_BINARY = {"add": lambda a, b: a + b, "mul": lambda a, b: a * b, "sub": lambda a, b: a - b}


@given(st.lists(st.tuples(st.sampled_from(sorted(_UNARY) + sorted(_BINARY)),
                          st.integers(0, 50), st.integers(0, 50)), min_size=1, max_size=12))
def test_random_graphs_pass_gradcheck(program):
    """Each step applies an op to earlier nodes picked at random: arbitrary DAGs with reuse."""

    def build(x):
        nodes = [x]
        for name, i, j in program:
            a, b = nodes[i % len(nodes)], nodes[j % len(nodes)]
            nodes.append(_UNARY[name](a) if name in _UNARY else _BINARY[name](a, b).tanh())
        return nodes[-1]

    assert gradcheck(build, np.array([0.2, -0.4]))


def test_two_backward_calls_accumulate_into_leaves():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, 3 + 2 * x.data)


@pytest.mark.parametrize("b_shape", [(3,), (1, 3), (2, 1), (1, 1), ()])
def test_a_broadcast_bias_gets_a_gradient_of_its_own_shape(b_shape):
    rng = np.random.default_rng(0)
    x, w = Tensor(rng.standard_normal((2, 4))), Tensor(rng.standard_normal((4, 3)))
    b = Tensor(rng.standard_normal(b_shape), requires_grad=True)
    dy = rng.standard_normal((2, 3))
    (x @ w + b).backward(dy)
    assert b.grad.shape == b_shape
    np.testing.assert_allclose(b.grad, dy.sum(axis=tuple(
        i for i in range(2) if len(b_shape) < 2 - i or b_shape[i - 2 + len(b_shape)] == 1)
    ).reshape(b_shape))


@pytest.mark.parametrize("expression", [
    lambda a, b: a.reshape(-1) + b.reshape(-1),
    lambda a, b: a.T + b.T,
    lambda a, b: a + b,
    lambda a, b: a - b,
])
def test_leaf_gradients_never_share_memory(expression):
    """Optimizers may update .grad in place: no two leaves (or the seed) may share a buffer."""
    a = Tensor(np.ones((2, 2)), requires_grad=True)
    b = Tensor(np.ones((2, 2)), requires_grad=True)
    y = expression(a, b)
    seed = np.full(y.shape, 2.0)
    y.backward(seed)
    assert not np.shares_memory(a.grad, b.grad)
    assert not np.shares_memory(a.grad, seed) and not np.shares_memory(b.grad, seed)
    a.grad *= 0
    np.testing.assert_array_equal(seed, 2.0)
    assert np.abs(b.grad).sum() == 8.0


def test_a_retained_gradient_is_its_own_array():
    x = Tensor(np.ones(3), requires_grad=True)
    h = (x * 2).retain_grad()
    seed = np.ones(3)
    (h + x).backward(seed)
    assert not np.shares_memory(h.grad, seed) and not np.shares_memory(h.grad, x.grad)


def test_gradients_keep_the_leaf_dtype():
    class Upcast(Function):
        def forward(self, x):
            return x * 2

        def backward(self, dy):
            return (dy * 2).astype(np.float64)

    x = Tensor(np.ones(3, np.float32), requires_grad=True)
    Upcast()(x).sum().backward()
    assert x.grad.dtype == np.float32


# ------------------------------------------------------------------ what is recorded


def test_no_grad_records_nothing():
    x = Tensor(np.ones(3), requires_grad=True)
    with no_grad():
        y = (x * 2).exp().sum()
    assert y.creator is None and not y.requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


def test_ops_on_tensors_without_grad_record_nothing():
    y = Tensor(np.ones(3)) * 2 + np.ones(3)
    assert y.creator is None and not y.requires_grad


def test_the_op_knows_its_inputs_output_and_needs():
    x = Tensor(np.ones(3), requires_grad=True)
    c = Tensor(np.ones(3))
    y = x * c
    fn = y.creator
    assert fn.inputs == (x, c) and fn.output is y
    assert fn.needs_input_grad == (True, False)
    assert fn.scope == ()


def test_scope_records_the_running_modules():
    outer, inner = object(), object()
    function._module_scope.extend([outer, inner])
    try:
        y = Tensor(np.ones(2), requires_grad=True) * 2
    finally:
        del function._module_scope[-2:]
    assert y.creator.scope == (outer, inner)
    assert (Tensor(np.ones(2), requires_grad=True) * 2).creator.scope == ()


def test_observers_see_each_forward_and_backward_once():
    class Recorder:
        def __init__(self):
            self.events = []

        def forward(self, fn, inputs, output, seconds):
            self.events.append(("forward", type(fn).__name__, output.shape))
            assert seconds >= 0

        def backward(self, fn, dy, grads, seconds):
            self.events.append(("backward", type(fn).__name__, len(grads)))

    recorder = Recorder()
    function._observers.append(recorder)
    try:
        x = Tensor(np.ones((2, 3)), requires_grad=True)
        (x * 2).sum().backward()
    finally:
        function._observers.remove(recorder)
    assert recorder.events == [("forward", "Mul", (2, 3)), ("forward", "Sum", ()),
                               ("backward", "Sum", 1), ("backward", "Mul", 2)]


def test_leaves_keep_grad_and_intermediates_only_when_retained():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 3
    kept = (h + 1).retain_grad()
    y = (kept * kept).sum()
    y.backward()
    assert h.grad is None and y.grad is None
    np.testing.assert_array_equal(kept.grad, 2 * kept.data)
    np.testing.assert_array_equal(x.grad, 2 * kept.data * 3)


def test_backward_on_a_leaf_sets_its_gradient():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    g = np.array([3.0, 4.0])
    x.backward(g)
    x.backward(g)
    np.testing.assert_array_equal(x.grad, [6.0, 8.0])
    assert not np.shares_memory(x.grad, g)


# ------------------------------------------------------------------ backward's errors


def test_non_scalar_backward_needs_a_gradient():
    y = Tensor(np.ones((2, 3)), requires_grad=True) * 2
    with pytest.raises(RuntimeError, match=r"one-element.*\(2, 3\)"):
        y.backward()


def test_one_element_non_scalar_backward_is_seeded_with_one():
    x = Tensor(np.array([[2.0]]), requires_grad=True)
    (x * x).backward()
    np.testing.assert_array_equal(x.grad, [[4.0]])


def test_backward_without_requires_grad_is_an_error():
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor(np.ones(1)).backward()


def test_backward_grad_of_the_wrong_shape_is_an_error():
    y = Tensor(np.ones((2, 3)), requires_grad=True) * 2
    with pytest.raises(ValueError, match=r"\(3,\).*\(2, 3\)"):
        y.backward(np.ones(3))


# ------------------------------------------------------------------ retain_graph and release


def test_retain_graph_allows_a_second_backward_that_accumulates():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x * x).exp().sum()
    y.backward(retain_graph=True)
    first = x.grad.copy()
    y.backward()
    np.testing.assert_allclose(x.grad, 2 * first)
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_a_second_backward_without_retain_graph_is_an_error():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match=r"second time.*retain_graph=True"):
        y.backward()


def test_backward_releases_saved_values_and_keeps_settings():
    x = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    m = x * x
    s = m.sum(axis=1, keepdims=True)
    mul, total = m.creator, s.creator
    assert "x" in vars(mul) and "y" in vars(mul) and "x_shape" in vars(total)
    s.backward(np.ones((2, 1)))
    assert mul.released and total.released
    assert vars(mul) == {}
    assert vars(total) == {"axis": 1, "keepdims": True}
    assert total.settings() == {"axis": 1, "keepdims": True}
    assert mul.inputs == (x, x)  # the structure stays for drawing


def test_settings_are_what_init_set_before_and_after_the_call():
    """An op not called yet lists every attribute set so far as its settings; once called,
    the same ones (not the values forward saved), with and without a graph, and a second
    call is refused either way."""
    import copy

    from minigrad.ops.reduction import Sum

    for grad in (True, False):
        op = Sum(axis=1, keepdims=True)
        assert op.settings() == {"axis": 1, "keepdims": True}
        with no_grad() if not grad else contextlib.nullcontext():
            op(Tensor(np.ones((2, 3)), requires_grad=True))
        assert op.settings() == {"axis": 1, "keepdims": True}
        assert set(vars(op)) > {"axis", "keepdims"}       # forward saved values beside them
        with pytest.raises(RuntimeError, match="Sum: a Function instance is called once"):
            op(Tensor(np.ones((2, 3))))
        fresh = copy.copy(Sum(axis=0))                     # made without __init__: usable
        assert fresh(Tensor(np.ones((2, 3)))).shape == (3,)


def test_retain_graph_keeps_saved_values():
    x = Tensor(np.ones(3), requires_grad=True)
    y = x * x
    y.sum().backward(retain_graph=True)
    assert not y.creator.released and "x" in vars(y.creator)


def test_a_long_chain_does_not_recurse():
    x = Tensor(np.array(0.5), requires_grad=True)
    u = x
    for _ in range(100_000):
        u = u + 1.0
    u.backward()
    assert x.grad == 1.0


# ------------------------------------------------------------------ checks on users' ops


class TwoGradients(Function):
    def forward(self, x):
        return x * 2

    def backward(self, dy):
        return dy * 2, dy


class WrongShape(Function):
    def forward(self, x, b):
        return x + b

    def backward(self, dy):
        return dy, dy  # b was broadcast: its gradient needs summing back to b's shape


class NotAnArray(Function):
    def forward(self, x):
        return x * 2

    def backward(self, dy):
        return [list(dy * 2)]


class OneGradientForTwo(Function):
    def forward(self, x, y):
        return x * y

    def backward(self, dy):
        return dy


@pytest.mark.parametrize("make, pattern", [
    (lambda x, b: TwoGradients()(x), r"TwoGradients.backward returned 2 gradient\(s\) for 1 input"),
    (lambda x, b: WrongShape()(x, b), r"WrongShape.backward.*shape \(2, 3\) for input 1.*\(3,\)"),
    (lambda x, b: NotAnArray()(x), r"NotAnArray.backward returned a list .*input 0.*\(2, 3\)"),
    (lambda x, b: OneGradientForTwo()(x, x),
     r"OneGradientForTwo.backward returned 1 gradient\(s\) for 2 input"),
])
def test_the_engine_checks_users_gradients(make, pattern):
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    b = Tensor(np.ones(3), requires_grad=True)
    y = make(x, b)
    with pytest.raises(RuntimeError, match=pattern):
        y.backward(np.ones((2, 3)))


def test_a_function_instance_is_called_once():
    op = TwoGradients()
    op(Tensor(np.ones(2)))
    with pytest.raises(RuntimeError, match="TwoGradients: a Function instance is called once"):
        op(Tensor(np.ones(2)))


def test_forward_must_return_one_array():
    class Pair(Function):
        def forward(self, x):
            return x, x

    with pytest.raises(TypeError, match="Pair.forward must return one array"):
        Pair()(Tensor(np.ones(2)))


def test_none_gradients_for_non_tensor_inputs():
    class ScaleBy(Function):
        """y = x · k with k a plain array (no gradient)."""

        def forward(self, x, k):
            self.k = k
            return x * k

        def backward(self, dy):
            return dy * self.k, None

    x = Tensor(np.ones(3), requires_grad=True)
    ScaleBy()(x, np.array([1.0, 2.0, 3.0])).sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, 2.0, 3.0])


def test_an_op_without_backward_says_so():
    class ForwardOnly(Function):
        def forward(self, x):
            return x + 1

    y = ForwardOnly()(Tensor(np.ones(2), requires_grad=True))
    with pytest.raises(NotImplementedError, match="ForwardOnly has no backward"):
        y.sum().backward()


# ------------------------------------------------------------------ the path without a graph
# Under no_grad, Function.__call__ skips the tape's bookkeeping (versions, holds, the inputs
# and the output kept for backward) and Module.__call__ skips empty hook tables. The results
# must be the full path's: the same values, the same dtypes, and grad mode still recording.


def _small_convnet(dtype):
    from minigrad import nn

    nn.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, dtype=dtype), nn.BatchNorm2d(4), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 3 * 3, 5, dtype=dtype), nn.Tanh(),
        nn.Linear(5, 3, dtype=dtype))
    model.to(dtype)
    return model


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("training", [False, True])
def test_no_grad_gives_the_values_and_dtype_of_the_recorded_path(dtype, training):
    model = _small_convnet(dtype)
    model.train(training)
    x = np.random.default_rng(1).standard_normal((3, 2, 6, 6)).astype(dtype)
    if training:  # batch statistics: the running ones move with every pass, so keep a copy
        import copy

        twin = copy.deepcopy(model)
    else:
        twin = model
    with no_grad():
        fast = model(Tensor(x))
    full = twin(Tensor(x, requires_grad=True))
    assert full.creator is not None            # the full path recorded the graph
    assert fast.creator is None and not fast.requires_grad
    assert fast.dtype == full.dtype == dtype
    np.testing.assert_array_equal(fast.data, full.data)


@pytest.mark.parametrize("make", [
    lambda x, w: x * w + 1.0,
    lambda x, w: (x - w).exp().sum(axis=0),
    lambda x, w: (x @ w.T).tanh(),
    lambda x, w: x / (w * w + 1.0),
], ids=["mul-add", "sub-exp-sum", "matmul-tanh", "div"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.uint8])
def test_single_ops_agree_on_both_paths(make, dtype):
    """Integer inputs reach the ops that compute in floating point converted, on both paths."""
    rng = np.random.default_rng(2)
    x = (rng.random((3, 4)) * 4).astype(dtype)
    w = (rng.random((3, 4)) * 4).astype(dtype)
    with no_grad():
        fast = make(Tensor(x), Tensor(w))
    full = make(Tensor(x), Tensor(w))          # grad mode, nothing requires grad
    assert fast.dtype == full.dtype
    np.testing.assert_array_equal(fast.data, full.data)
    if dtype in (np.float32, np.float64):       # and recorded
        recorded = make(Tensor(x, requires_grad=True), Tensor(w, requires_grad=True))
        assert recorded.creator is not None and recorded.dtype == dtype
        np.testing.assert_array_equal(recorded.data, full.data)


def test_no_grad_records_no_graph_and_holds_no_array():
    from minigrad.ops.arithmetic import Mul
    from minigrad.tensor import _held

    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    w = Tensor(np.array([3.0, 4.0]), requires_grad=True, name="w")
    op = Mul()
    with no_grad():
        y = op(x, w)
    assert y.creator is None and not y.requires_grad
    assert op.output is None and not op.released
    for name in ("inputs", "_versions", "_hold", "scope", "_output_ref"):
        assert not hasattr(op, name), name
    assert id(w.data) not in _held and w.data.flags.writeable
    w.data[0] = 7.0                               # no graph holds it: writing is fine
    np.testing.assert_array_equal(y.data, [3.0, 8.0])
    # The forward still saved what a backward called by hand needs (as on the full path).
    assert op.needs_input_grad == (True, True)
    np.testing.assert_array_equal(op.backward(np.ones(2))[0], [7.0, 4.0])


def test_grad_mode_records_with_every_check_after_no_grad():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    w = Tensor(np.array([3.0, 4.0]), requires_grad=True, name="w")
    with no_grad():
        (x * w).sum()
    y = (x * w).sum()
    fn = y.creator.inputs[0].creator
    assert fn.needs_input_grad == (True, True) and fn._versions == (0, 0)
    with pytest.raises(ValueError, match="read-only"):
        w.data[0] = 0.0                           # held while y may run backward
    w.data = np.array([5.0, 6.0])                 # a new version: backward is refused
    with pytest.raises(RuntimeError, match=r"Mul's input 1 \('w'.*version 1, Mul saw version 0"):
        y.backward()
    y = (x * w).sum()
    y.backward()
    np.testing.assert_array_equal(x.grad, [5.0, 6.0])
    assert w.data.flags.writeable                 # the hold ended with backward


def test_enable_grad_inside_no_grad_records():
    from minigrad import enable_grad

    x = Tensor(np.array([1.0, -2.0]), requires_grad=True)
    with no_grad():
        with enable_grad():
            y = (x * x).sum()
        z = x * x
    assert y.creator is not None and z.creator is None
    y.backward()
    np.testing.assert_array_equal(x.grad, [2.0, -4.0])


@pytest.mark.parametrize("grad", [True, False], ids=["grad", "no_grad"])
def test_the_dtype_policy_and_the_checks_hold_on_both_paths(grad):
    from minigrad import enable_grad
    from minigrad.ops.arithmetic import Add

    with enable_grad() if grad else no_grad():
        with pytest.raises(TypeError, match=r"Add: input 1 must be numbers.*dtype object"):
            Add()(Tensor(np.ones(2)), np.array([None, 1], dtype=object))
        with pytest.raises(TypeError, match="Add: input 0 is None"):
            Add()(None, Tensor(np.ones(2)))
        op = TwoGradients()
        op(Tensor(np.ones(2)))
        with pytest.raises(RuntimeError, match="a Function instance is called once"):
            op(Tensor(np.ones(2)))


def test_recorded_ops_share_small_tuples_and_the_table_stays_small():
    x = Tensor(np.ones(2), requires_grad=True)
    a, b = x * 2.0, x * 3.0
    assert a.creator.needs_input_grad is b.creator.needs_input_grad
    assert a.creator._versions is b.creator._versions == (0, None)
    for _ in range(5000):                          # a version number per step
        x._writable()
        x * 2.0
    assert len(function._shared) <= 4097
    assert (x * 2.0).creator._versions == (x._version, None)


def test_module_scope_is_left_empty_after_an_error_in_forward():
    from minigrad import nn

    class Broken(nn.Module):
        def forward(self, x):
            raise ValueError("broken forward")

    outer = nn.Sequential(nn.ReLU(), Broken())
    with pytest.raises(ValueError, match="broken forward"):
        outer(Tensor(np.ones(2)))
    assert function._module_scope == []
    y = nn.Sequential(nn.Linear(2, 2))(Tensor(np.ones((1, 2)), requires_grad=True))
    assert [type(m).__name__ for m in y.creator.scope] == ["Sequential", "Linear"]
