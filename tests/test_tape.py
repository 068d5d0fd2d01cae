"""The tape: recording, the reverse walk, accumulation, release and the checks on users' ops."""

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
