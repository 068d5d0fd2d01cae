"""Nothing silently wrong: in-place changes between forward and backward, grad mode and
anomaly/profile state per thread, the dtype policy, leaves' own gradient arrays, and the
gradient of x ** c where the textbook formula gives 0 · ∞."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import minigrad
import minigrad.functional as F
from minigrad import Function, Tensor, function, nn, no_grad, optim
from minigrad.anomaly import AnomalyError, detect_anomaly, is_anomaly_enabled
from minigrad.profiler import profile

# ------------------------------------------------------------------ in-place edits

OPTIMIZERS = sorted((c for c in vars(optim).values()
                     if isinstance(c, type) and issubclass(c, optim.Optimizer)
                     and c is not optim.Optimizer), key=lambda c: c.__name__)


def make_optimizer(cls, params):
    """Each optimiser with its defaults (or lr=0.1 where lr has no default)."""
    try:
        return cls(params)
    except TypeError:
        return cls(params, lr=0.1)


def product(name="w"):
    """x, w and y = Σ x·w: Mul saved both arrays for its backward."""
    x = Tensor([1.0, 2.0], requires_grad=True, name="x")
    w = Tensor([3.0, 4.0], requires_grad=True, name=name)
    return x, w, (x * w).sum()


def test_writing_into_a_saved_leaf_array_is_refused_at_the_write():
    x, w, y = product()
    with pytest.raises(ValueError, match="read-only"):
        w.data[...] = 0
    y.backward()
    np.testing.assert_array_equal(x.grad, [3.0, 4.0])  # the values the forward pass used


def test_data_assignment_between_forward_and_backward_is_refused_at_backward():
    x, w, y = product()
    w.data = np.zeros(2, np.float32)
    with pytest.raises(RuntimeError, match=r"Mul's input 1 \('w', shape \(2,\), dtype float32\)"
                                           r".*version 1, Mul saw version 0"):
        y.backward()
    assert x.grad is None and w.grad is None


@pytest.mark.parametrize("cls", OPTIMIZERS, ids=lambda c: c.__name__)
def test_an_optimizer_step_between_forward_and_backward_is_refused(cls):
    x, w, y = product()
    w.grad = np.ones(2, np.float32)
    before = w.data.copy()
    opt = make_optimizer(cls, [w])
    version = w._version
    opt.step()  # the graph holds w's array: the step may still write into it
    assert w._version > version and not np.array_equal(w.data, before)
    with pytest.raises(RuntimeError, match=rf"Mul's input 1 \('w'.*version {w._version}, "
                                           rf"Mul saw version {version}"):
        y.backward()


@pytest.mark.parametrize("cls", OPTIMIZERS, ids=lambda c: c.__name__)
def test_training_in_the_usual_order_and_gradient_accumulation_are_not_refused(cls):
    model = nn.Linear(3, 2)
    opt = make_optimizer(cls, model.parameters())
    x = Tensor(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32))
    for _ in range(2):
        opt.zero_grad()
        for _ in range(2):  # two micro-batches accumulate before one step
            (model(x) * model(x)).sum().backward()
        opt.step()
    model.weight.data[...] = 0  # no graph holds it any more


def test_the_hold_ends_with_backward_or_with_the_graph():
    x, w, y = product()
    y.backward(retain_graph=True)
    with pytest.raises(ValueError, match="read-only"):
        w.data[0] = 0  # a second backward may still run
    y2 = w * 2
    del y
    with pytest.raises(ValueError, match="read-only"):
        w.data[0] = 0  # y2's graph still holds it
    del y2
    w.data[0] = 0
    assert w.data.flags.writeable and x.data.flags.writeable


def test_an_array_given_by_the_user_is_held_and_a_read_only_one_stays_read_only():
    a = np.array([1.0, 2.0])
    frozen = np.array([3.0, 4.0])
    frozen.flags.writeable = False
    y = (Tensor(a, requires_grad=True) * Tensor(frozen)).sum()
    with pytest.raises(ValueError, match="read-only"):
        a[0] = 5.0  # the tensor's data is this very array
    y.backward()
    assert a.flags.writeable and not frozen.flags.writeable


def test_a_new_forward_after_a_change_is_not_refused():
    x, w, y = product()
    y.backward()
    w.data = w.data * 2
    x.grad = None
    (x * w).sum().backward()
    np.testing.assert_array_equal(x.grad, w.data)


def test_ops_do_not_count_as_changes():
    x, w, y = product()
    assert (x._version, w._version) == (0, 0)
    w.data = w.data + 1
    assert w._version == 1 and Tensor(w)._version == 0


def test_data_assignment_keeps_the_dtype_policy():
    w = Tensor([1.0], requires_grad=True)
    with pytest.raises(TypeError, match="Tensor.data: .*floating-point.*int64"):
        w.data = np.array([1])
    with pytest.raises(TypeError, match="Tensor.data: data must be numbers, got None"):
        w.data = None


# ------------------------------------------------------------------ threads


def run_in_thread(target):
    """Run ``target`` in a new thread; re-raise what it raised; return what it returned."""
    result = {}

    def body():
        try:
            result["value"] = target()
        except BaseException as e:  # noqa: BLE001  (handed to the main thread)
            result["error"] = e

    t = threading.Thread(target=body)
    t.start()
    return t, result


def finish(t, result):
    t.join(10)
    assert not t.is_alive(), "the thread did not finish"
    if "error" in result:
        raise result["error"]
    return result.get("value")


def test_no_grad_in_one_thread_does_not_stop_recording_in_another():
    entered, recorded = threading.Event(), threading.Event()

    def other():
        with no_grad():
            entered.set()
            assert recorded.wait(10)
            return minigrad.is_grad_enabled()

    t, result = run_in_thread(other)
    assert entered.wait(10)
    w1 = Tensor([1.0, 2.0], requires_grad=True)
    (w1 * w1).sum().backward()
    recorded.set()
    assert finish(t, result) is False
    np.testing.assert_array_equal(w1.grad, [2.0, 4.0])


def test_a_new_thread_starts_with_grad_on():
    with no_grad():
        t, result = run_in_thread(minigrad.is_grad_enabled)
        assert finish(t, result) is True
        assert not minigrad.is_grad_enabled()


def test_interleaved_no_grad_blocks_in_two_threads_restore_both():
    # main enters, the other thread enters, main leaves, the other leaves.
    events = [threading.Event() for _ in range(3)]

    def other():
        assert events[0].wait(10)
        with no_grad():
            events[1].set()
            assert events[2].wait(10)
        return minigrad.is_grad_enabled()

    t, result = run_in_thread(other)
    with no_grad():
        events[0].set()
        assert events[1].wait(10)
    assert minigrad.is_grad_enabled()
    events[2].set()
    assert finish(t, result) is True
    assert minigrad.is_grad_enabled()


@pytest.mark.parametrize("switch", [no_grad, minigrad.enable_grad])
def test_blocks_closed_out_of_order_in_one_thread_restore_the_mode(switch):
    first, second = no_grad(), switch()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    second.__exit__(None, None, None)
    assert minigrad.is_grad_enabled()


def test_one_no_grad_object_shared_by_threads():
    shared = no_grad()
    inside, leave = threading.Event(), threading.Event()

    def other():
        with shared:
            inside.set()
            assert leave.wait(10)
        return minigrad.is_grad_enabled()

    t, result = run_in_thread(other)
    assert inside.wait(10)
    with shared:
        leave.set()
        assert finish(t, result) is True
    assert minigrad.is_grad_enabled()


def test_anomaly_mode_belongs_to_the_thread_that_opened_it():
    inside, done = threading.Event(), threading.Event()

    def other():
        with detect_anomaly():
            inside.set()
            assert done.wait(10)
            with pytest.raises(AnomalyError, match="Log produced"), \
                    np.errstate(divide="ignore"):
                Tensor(np.array([0.0]), requires_grad=True).log()
        return True

    t, result = run_in_thread(other)
    assert inside.wait(10)
    assert not is_anomaly_enabled()
    with np.errstate(divide="ignore"):
        y = Tensor(np.array([0.0]), requires_grad=True).log()  # not checked here
    assert np.isneginf(y.data[0])
    done.set()
    assert finish(t, result) is True
    assert function._observers == []


def test_a_profile_counts_only_its_own_threads_ops():
    inside, done = threading.Event(), threading.Event()

    def other():
        with profile() as prof:
            inside.set()
            assert done.wait(10)
            Tensor([1.0], requires_grad=True).exp()
        return prof

    t, result = run_in_thread(other)
    assert inside.wait(10)
    x = Tensor([1.0], requires_grad=True)
    (x * x).sum().backward()
    done.set()
    prof = finish(t, result)
    assert [s.name for s in prof.stats()] == ["Exp"]


def test_a_grad_record_sees_only_its_own_threads_backward():
    inside, done = threading.Event(), threading.Event()
    x = Tensor([1.0], requires_grad=True)
    y = x * 2

    def other():
        with minigrad.viz.record_grads() as record:
            inside.set()
            assert done.wait(10)
        return record

    t, result = run_in_thread(other)
    assert inside.wait(10)
    y.backward()
    done.set()
    record = finish(t, result)
    assert record.output_grad(y.creator) is None


def test_module_scope_is_per_thread():
    inside, recorded = threading.Event(), threading.Event()

    class Waiting(nn.Module):
        def forward(self, x):
            inside.set()
            assert recorded.wait(10)
            return x * 2

    t, result = run_in_thread(lambda: Waiting()(Tensor([1.0], requires_grad=True)))
    assert inside.wait(10)
    y = Tensor([1.0], requires_grad=True) * 3
    recorded.set()
    out = finish(t, result)
    assert y.creator.scope == ()
    assert [type(m).__name__ for m in out.creator.scope] == ["Waiting"]


# ------------------------------------------------------------------ dtypes

SMALL_INTS = [np.uint8, np.int8, np.uint16, np.int16, np.bool_]


@pytest.mark.parametrize("dtype", SMALL_INTS + [np.uint32, np.int32, np.uint64, np.int64])
@pytest.mark.parametrize("name, reference", [
    ("sigmoid", lambda x: 1 / (1 + np.exp(-x))),
    ("tanh", np.tanh),
    ("exp", np.exp),
    ("neg", np.negative),
    ("sub", lambda x: x[::-1] - x),
    ("add", lambda x: x + x),
    ("div", lambda x: x / 2),
    ("mean", np.mean),
])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_integers_and_bools_are_computed_in_float(name, reference, dtype):
    values = np.array([0, 1, 3, 100], np.float64) if dtype is not np.bool_ else \
        np.array([0.0, 1.0, 1.0, 0.0])
    x = values.astype(dtype)
    run = {"sigmoid": F.sigmoid, "tanh": F.tanh, "exp": lambda t: Tensor(t).exp(),
           "neg": lambda t: -Tensor(t), "sub": lambda t: Tensor(t[::-1]) - Tensor(t),
           "add": lambda t: Tensor(t) + Tensor(t), "div": lambda t: Tensor(t) / 2,
           "mean": lambda t: Tensor(t).mean()}[name]
    y = run(x)
    assert y.dtype.kind == "f"
    expected_dtype = np.float32 if dtype in SMALL_INTS else np.float64
    assert y.dtype == expected_dtype
    with np.errstate(over="ignore"):  # exp(100) is inf in float32, as it should be
        expected = reference(values.astype(expected_dtype))
    np.testing.assert_allclose(y.data, expected, rtol=1e-6)


NOT_NUMBERS = [
    None,
    "1.0",
    ["a", "b"],
    np.array([b"x"]),
    np.array([1.0, None], dtype=object),
    np.array(["2020-01-01"], dtype="datetime64[D]"),
    np.array([1], dtype="timedelta64[s]"),
]


@pytest.mark.parametrize("value", NOT_NUMBERS, ids=repr)
def test_tensor_refuses_what_is_not_numbers(value):
    with pytest.raises(TypeError, match=r"Tensor: data must be numbers"):
        Tensor(value)


@pytest.mark.parametrize("value", NOT_NUMBERS, ids=repr)
def test_parameter_refuses_what_is_not_numbers(value):
    with pytest.raises(TypeError, match=r"Parameter: data must be numbers"):
        nn.Parameter(value)


@pytest.mark.parametrize("op, name", [
    (lambda t, v: t + v, "add"), (lambda t, v: v - t, "sub"), (lambda t, v: t * v, "mul"),
    (lambda t, v: t / v, "div"), (lambda t, v: t ** v, "pow"),
])
@pytest.mark.parametrize("value", [None, "2", b"2", object()], ids=repr)
def test_operators_refuse_what_is_not_numbers(op, name, value):
    with pytest.raises(TypeError, match=rf"{name}: the other operand must be numbers"):
        op(Tensor([1.0, 2.0]), value)


@pytest.mark.parametrize("value", NOT_NUMBERS[3:], ids=repr)
@pytest.mark.parametrize("call, op", [
    (F.relu, "ReLU"), (F.sigmoid, "Sigmoid"),
    (lambda a: Tensor([1.0]) * a, "Mul"),
    (lambda a: F.softmax_cross_entropy(np.zeros((1, 2)), a), "SoftmaxCrossEntropy"),
])
def test_ops_refuse_arrays_that_are_not_numbers(call, op, value):
    with pytest.raises(TypeError, match=rf"{op}: input \d must be numbers .*dtype"):
        call(value)


def test_a_none_input_is_named():
    with pytest.raises(TypeError, match="Add: input 1 is None"):
        minigrad.ops.Add()(Tensor([1.0]), None)


def test_complex_outputs_need_an_explicit_gradient():
    z = Tensor(np.array([1 + 2j]), requires_grad=True)
    y = (z * z).sum()
    with pytest.raises(TypeError, match=r"backward: .*real output.*complex128"):
        y.backward()
    y.backward(np.ones((), np.complex128))
    np.testing.assert_allclose(z.grad, 2 * z.data)


def test_float_inputs_reach_forward_unconverted():
    x = Tensor(np.ones(3, np.float32), requires_grad=True)
    y = x * x
    assert y.creator.x is x.data and y.dtype == np.float32


# ------------------------------------------------------------------ leaves' own gradients


class Twice(Function):
    """z = x + y, whose backward hands the same array to both inputs."""

    def forward(self, x, y):
        return x + y

    def backward(self, dz):
        g = dz * 1.0
        return g, g


@pytest.mark.parametrize("build", [
    lambda a, b: Twice()(a, b).sum(),
    lambda a, b: Twice()(a, b),  # the op's gradient is the array backward() was given
])
def test_leaves_never_share_a_gradient_array(build):
    a = Tensor(np.zeros(3), requires_grad=True)
    b = Tensor(np.zeros(3), requires_grad=True)
    y = build(a, b)
    y.backward(np.ones(y.shape))
    assert not np.shares_memory(a.grad, b.grad)
    a.grad *= 0  # clipping one (in place) leaves the other alone
    np.testing.assert_array_equal(b.grad, np.ones(3))


# ------------------------------------------------------------------ x ** c at the edges

POINTS = [(0.0, 0.0), (0.0, 2.0), (0.0, 0.5), (2.0, 0.0), (0.0, -1.0), (3.0, 2.5)]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("tensor_exponent", [True, False])
@pytest.mark.parametrize("x0, c0", POINTS)
def test_pow_gradients_match_torch_where_the_formula_is_0_times_inf(x0, c0, tensor_exponent):
    torch = pytest.importorskip("torch")
    x = Tensor(np.array([x0]), requires_grad=True)
    c = Tensor(np.array([c0]), requires_grad=True) if tensor_exponent else c0
    (x ** c).sum().backward()
    tx = torch.tensor([x0], dtype=torch.float64, requires_grad=True)
    tc = torch.tensor([c0], dtype=torch.float64, requires_grad=True) if tensor_exponent else c0
    (tx ** tc).sum().backward()
    np.testing.assert_allclose(x.grad, tx.grad.numpy())
    if tensor_exponent:
        np.testing.assert_allclose(c.grad, tc.grad.numpy())


@pytest.mark.parametrize("x0, c0", [(0.0, 0.0), (0.0, 3.0)])
def test_pow_gradients_are_finite_where_torch_takes_the_limit(x0, c0):
    x = Tensor(np.array([x0, 2.0]), requires_grad=True)
    c = Tensor(np.array([c0, c0]), requires_grad=True)
    (x ** c).sum().backward()
    assert np.isfinite(x.grad).all() and np.isfinite(c.grad).all()
    np.testing.assert_allclose(c.grad[1], 2.0 ** c0 * np.log(2.0))  # away from the edge
