"""minigrad's worker threads: the split covers every row once, errors surface, and every op
that splits its work computes the same result on 1, 2 or 3 threads."""

from __future__ import annotations

import contextlib
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from split_threads import run_together, threads

import minigrad
import minigrad.functional as F
from minigrad import Tensor, optim, parallel
from minigrad.ops.conv import Conv2d

# --------------------------------------------------------------------------- the thread pool


@contextlib.contextmanager
def hand_over_by(mode: str):
    """Workers that spin for their next slice (allowed here on any number of threads, and
    never sent to sleep by a late slice), or workers that always sleep; a pool of its own is
    made inside the block."""
    saved = parallel._cores, parallel.SPIN_TIME, parallel._Pool._LATE
    if mode == "spin":
        parallel._cores = lambda: 64
        parallel._Pool._LATE = 1e9              # spinning whatever the load
    else:
        parallel.SPIN_TIME = 0
    old = parallel.get_num_threads()
    parallel.set_num_threads(1)
    try:
        yield
    finally:
        parallel.set_num_threads(1)             # no pool made with these settings outlives it
        parallel._cores, parallel.SPIN_TIME, parallel._Pool._LATE = saved
        parallel.set_num_threads(old)


@pytest.fixture(params=["spin", "sleep"])
def hand_over(request):
    with hand_over_by(request.param):
        yield request.param


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2", None])
def test_set_num_threads_rejects_non_positive_integers(bad):
    with pytest.raises(ValueError, match="set_num_threads: n must be a positive integer"):
        minigrad.set_num_threads(bad)


def test_set_and_get_num_threads():
    old = minigrad.get_num_threads()
    try:
        minigrad.set_num_threads(3)
        assert minigrad.get_num_threads() == 3
        minigrad.set_num_threads(np.int64(1))
        assert minigrad.get_num_threads() == 1
    finally:
        minigrad.set_num_threads(old)


@given(total=st.integers(0, 40), n=st.integers(1, 5), mode=st.sampled_from(["spin", "sleep"]))
def test_parallel_for_covers_every_row_once_in_contiguous_slices(total, n, mode):
    seen = []
    lock = threading.Lock()

    def body(lo, hi):
        with lock:
            seen.append((lo, hi, threading.get_ident()))

    with hand_over_by(mode), threads(n):
        parallel.parallel_for(total, body, work=10**9)
    spans = sorted((lo, hi) for lo, hi, _ in seen)
    assert spans[0][0] == 0 and spans[-1][1] == total
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))        # no gap, no overlap
    assert len(spans) == (1 if total < 2 else min(n, total))
    assert len({ident for *_, ident in seen}) == len(spans)          # each on its own thread


def test_parallel_for_runs_small_work_in_one_call_on_the_calling_thread():
    calls = []
    old = parallel.get_num_threads()
    try:
        parallel.set_num_threads(4)
        parallel.parallel_for(100, lambda lo, hi: calls.append((lo, hi, threading.get_ident())),
                              work=parallel.MIN_WORK - 1)
    finally:
        parallel.set_num_threads(old)
    assert calls == [(0, 100, threading.get_ident())]


@pytest.mark.parametrize("failing_slice", [0, 1, 2])
def test_parallel_for_raises_a_slice_error_after_every_slice_finished(failing_slice, hand_over):
    finished = []

    def body(lo, hi):
        if lo == failing_slice:
            raise ValueError(f"slice starting at {lo} failed")
        finished.append(lo)

    with threads(3), pytest.raises(ValueError, match=f"slice starting at {failing_slice}"):
        parallel.parallel_for(3, body, work=3)
    assert sorted(finished) == sorted({0, 1, 2} - {failing_slice})


def test_parallel_for_inside_a_slice_runs_that_slice_whole(hand_over):
    inner = []

    def outer(lo, hi):
        parallel.parallel_for(10, lambda a, b: inner.append((lo, a, b)), work=10)

    with threads(2):
        parallel.parallel_for(2, outer, work=2)
    # On the calling thread and on the worker alike the nested call runs whole (no deadlock).
    assert sorted(inner) == [(0, 0, 10), (1, 0, 10)]


def test_spinning_workers_go_to_sleep_when_idle_and_wake_for_the_next_slice(monkeypatch):
    monkeypatch.setattr(parallel, "SPIN_TIME", 0.05)
    monkeypatch.setattr(parallel, "_cores", lambda: 64)
    monkeypatch.setattr(parallel._Pool, "_LATE", 1e9)      # never calmed by a late slice
    parallel.set_num_threads(1)                     # the next pool is made with these settings
    ran_on = np.zeros(2, np.int64)

    def body(lo, hi):
        ran_on[lo:hi] = threading.get_ident()

    with threads(2):
        parallel.parallel_for(2, body, work=2)
        pool = parallel._pool
        assert pool.spin is not None
        assert [w.spinning for w in pool.workers] == [True]
        for _ in range(400):                        # parked after 50-100 ms without a slice
            if not pool.workers[0].spinning:
                break
            threading.Event().wait(0.005)
        assert [w.spinning for w in pool.workers] == [False]
        ran_on[:] = 0
        parallel.parallel_for(2, body, work=2)      # woken through its queue
        assert ran_on[0] == threading.get_ident() and ran_on[1] not in (0, ran_on[0])
        assert [w.spinning for w in pool.workers] == [True]
        first = ran_on[1]
        parallel.parallel_for(2, body, work=2)      # taken while spinning, by the same thread
        assert ran_on[1] == first


def test_late_workers_make_the_workers_sleep_between_slices_for_a_while(monkeypatch):
    import time

    monkeypatch.setattr(parallel, "_cores", lambda: 64)
    monkeypatch.setattr(parallel, "SPIN_TIME", 10.0)        # not parked for being idle
    parallel.set_num_threads(1)
    main = threading.get_ident()

    def body(lo, hi):                   # the worker's slice takes far longer than the caller's
        if threading.get_ident() != main:
            time.sleep(0.02)

    with threads(2):
        parallel.parallel_for(2, lambda lo, hi: None, work=2)
        pool = parallel._pool
        pool.calm_until, pool.lates = 0.0, 0    # whatever the load made of the first call
        calms = pool.calms
        for _ in range(2):                          # late slices now and then are let be
            parallel.parallel_for(2, body, work=2)
            assert pool.calms == calms and [w.spinning for w in pool.workers] == [True]
        before = time.perf_counter()
        parallel.parallel_for(2, body, work=2)      # the third in a row
        assert pool.calm_until >= before + pool._CALM and pool.calms == calms + 1
        assert [w.spinning for w in pool.workers] == [False]
        parallel.parallel_for(2, lambda lo, hi: None, work=2)   # handed over asleep
        assert [w.spinning for w in pool.workers] == [False]
        pool.calm_until = 0.0
        parallel.parallel_for(2, lambda lo, hi: None, work=2)   # spins again (unless late)
        assert [w.spinning for w in pool.workers] == [pool.calm_until == 0.0]


def test_an_interrupt_in_the_callers_slice_is_raised_after_the_workers_slice(hand_over):
    import time

    main, finished = threading.get_ident(), []

    def body(lo, hi):
        if threading.get_ident() == main:
            raise KeyboardInterrupt
        time.sleep(0.05)
        finished.append(lo)

    with threads(2):
        with pytest.raises(KeyboardInterrupt):
            parallel.parallel_for(2, body, work=2)
        assert finished == [1]


def test_a_signal_left_by_an_interrupted_call_is_not_taken_for_the_next_ones(hand_over):
    import time

    with threads(2):
        parallel.parallel_for(2, lambda lo, hi: None, work=2)
        pool = parallel._pool
        # A caller interrupted between handing a slice over and waiting for it.
        pool.workers[0].give((lambda lo, hi: None, 0, 0, pool.spin is not None, object()))
        time.sleep(0.05)                            # its "done" signal is left behind
        out = np.zeros(2)

        def body(lo, hi):
            if lo == 1:
                time.sleep(0.05)
            out[lo:hi] += 1

        parallel.parallel_for(2, body, work=2)
        assert out.tolist() == [1, 1]               # waited for its own slice
        parallel.parallel_for(2, body, work=2)
        assert out.tolist() == [2, 2]


def test_workers_sleep_instead_of_spinning_with_more_threads_than_cores(monkeypatch):
    monkeypatch.setattr(parallel, "_cores", lambda: 1)
    parallel.set_num_threads(1)
    with threads(2):
        parallel.parallel_for(2, lambda lo, hi: None, work=2)
        assert parallel._pool.spin is None
        assert [w.spinning for w in parallel._pool.workers] == [False]


def test_a_new_thread_count_ends_the_old_workers_spinning_or_asleep(hand_over):
    with threads(3):
        parallel.parallel_for(3, lambda lo, hi: None, work=3)
        pool = parallel._pool
        assert all(t.is_alive() for t in pool.threads)
    for t in pool.threads:                          # threads(3) set the old count back
        t.join(timeout=5)
    assert [t.is_alive() for t in pool.threads] == [False] * len(pool.threads)


def test_parallel_for_from_several_threads_at_once_gives_each_its_own_rows(hand_over):
    results = {}

    def caller(k):
        for step in range(30):
            out = np.full(50, -1)

            def body(lo, hi, out=out, step=step):
                out[lo:hi] = np.arange(lo, hi) * k + step
            parallel.parallel_for(50, body, work=50)
            results.setdefault(k, []).append(np.array_equal(out, np.arange(50) * k + step))

    with threads(2):
        errors = run_together(caller, 4)
    assert errors == []
    assert {k: all(v) and len(v) == 30 for k, v in results.items()} == {k: True for k in range(4)}


@pytest.fixture
def fresh_blas():
    """minigrad as in a new process: the BLAS on two threads and not yet set by minigrad; the
    thread count and the BLAS state restored afterwards."""
    blas = parallel._blas or parallel._Blas()
    if blas.get is None:
        pytest.skip("NumPy's BLAS is not an OpenBLAS minigrad can find")
    old = parallel.get_num_threads()
    saved = (parallel._blas, parallel._blas_single, int(blas.get()))
    blas.set(2)
    parallel._blas = None
    try:
        yield blas
    finally:
        parallel.set_num_threads(old)
        parallel._blas, parallel._blas_single = saved[:2]
        blas.set(saved[2])


def test_the_blas_goes_to_one_thread_at_the_first_product_even_one_too_small_to_split(
        fresh_blas):
    parallel.set_num_threads(1)                 # no pool
    parallel.set_num_threads(2)
    assert parallel._pool is None
    calls = []
    parallel.parallel_for(1, lambda lo, hi: calls.append((lo, hi)), work=1, blas=True)
    assert calls == [(0, 1)]
    assert int(fresh_blas.get()) == 1
    parallel.set_num_threads(1)                 # and it stays there
    assert int(fresh_blas.get()) == 1


def test_the_blas_goes_to_one_thread_on_one_minigrad_thread_too(fresh_blas):
    # One thread means one thread, as torch.set_num_threads(1) does: OpenBLAS left on two
    # would share out even a batch-1 product.
    parallel.set_num_threads(1)
    parallel.parallel_for(1, lambda lo, hi: None, work=1)           # no product: untouched
    assert int(fresh_blas.get()) == 2
    parallel.parallel_for(1, lambda lo, hi: None, work=1, blas=True)
    assert int(fresh_blas.get()) == 1
    assert parallel._pool is None                                  # no worker started for it


def test_an_affine_on_one_thread_sets_the_blas_to_one_thread(fresh_blas):
    from minigrad import functional as F
    parallel.set_num_threads(1)
    F.affine(np.ones((1, 3), np.float32), np.ones((3, 2), np.float32))
    assert int(fresh_blas.get()) == 1


def test_elementwise_splits_contiguous_arrays_and_passes_others_whole():
    x = np.arange(-6.0, 6.0).reshape(3, 4)
    calls = []

    def relu(y, x):
        calls.append(y.shape)
        np.maximum(x, 0.0, out=y)

    with threads(2):
        y = parallel.elementwise(relu, np.empty((3, 4)), x)
        np.testing.assert_array_equal(y, np.maximum(x, 0))
        assert calls == [(6,), (6,)]
        calls.clear()
        yt = parallel.elementwise(relu, np.empty((4, 3)), x.T)          # not C-contiguous
        np.testing.assert_array_equal(yt, np.maximum(x.T, 0))
        assert calls == [(4, 3)]


# ------------------------------------------------------ every split op, 1 thread vs 2 and 3


def _run(op, arrays, needs_grad, seed=0):
    """Forward of ``op`` on tensors made from ``arrays``, then backward of a fixed random
    weighting of the output: (output, [gradient of every input that needs one])."""
    tensors = [Tensor(a, requires_grad=g) for a, g in zip(arrays, needs_grad)]
    y = op(*tensors)
    r = np.random.default_rng(seed).standard_normal(y.shape).astype(y.dtype)
    (y * Tensor(r)).sum().backward()
    return y.numpy(), [t.grad for t, g in zip(tensors, needs_grad) if g]


def _same_on_all_thread_counts(op, arrays, needs_grad, exact):
    with threads(1):
        want = _run(op, arrays, needs_grad)
    for n in (2, 3):
        with threads(n):
            got = _run(op, arrays, needs_grad)
        for w, g in zip([want[0], *want[1]], [got[0], *got[1]]):
            assert g.dtype == w.dtype and g.shape == w.shape
            if exact:
                np.testing.assert_array_equal(g, w)
            else:   # a split product: the BLAS may take its edge kernel for rows at a slice
                    # boundary, which orders the sum differently: the last bit can differ
                np.testing.assert_allclose(g, w, rtol=1e-12 if w.dtype == np.float64 else 1e-5,
                                           atol=1e-12 if w.dtype == np.float64 else 1e-5)


DTYPES = st.sampled_from([np.float32, np.float64])


@pytest.mark.parametrize("channels_last", [False, True], ids=["channels first",
                                                               "channels last"])
@given(N=st.integers(1, 7), C=st.integers(1, 3), FN=st.integers(1, 4), k=st.integers(1, 3),
       stride=st.integers(1, 2), padding=st.integers(0, 1), bias=st.booleans(),
       x_grad=st.booleans(), w_grad=st.booleans(), dtype=DTYPES)
def test_conv2d_is_the_same_on_any_number_of_threads(channels_last, N, C, FN, k, stride, padding,
                                                      bias, x_grad, w_grad, dtype):
    rng = np.random.default_rng(N * 100 + C * 10 + FN)
    arrays = [rng.standard_normal((N, C, 6, 5)).astype(dtype),
              rng.standard_normal((FN, C, k, k)).astype(dtype)]
    if bias:
        arrays.append(rng.standard_normal(FN).astype(dtype))
    # Without a gradient for w and b the forward pass takes its blocked path.
    needs = [x_grad or not w_grad, w_grad, w_grad][:len(arrays)]
    # Channels last, the images go in blocks and dL/dw in parts fixed by the shapes alone, so
    # every product is the same call on any number of threads: the same bits. Channels first,
    # a product split at a slice boundary may differ in the last bit.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Conv2d, "channels_last_from", 1 if channels_last else 10**9)
        mp.setattr(Conv2d, "block_bytes", 1 << 10)           # several blocks per slice
        mp.setattr(Conv2d, "nhwc_block_bytes", 1 << 10)
        _same_on_all_thread_counts(lambda *t: F.conv2d(*t, stride=stride, padding=padding),
                                   arrays, needs, exact=channels_last)


@given(N=st.integers(1, 7), C=st.integers(1, 3), k=st.integers(1, 3), padding=st.integers(0, 2),
       needs_grad=st.booleans(), dtype=DTYPES)
def test_tiled_max_pool2d_is_the_same_on_any_number_of_threads(N, C, k, padding, needs_grad,
                                                                dtype):
    padding = min(padding, k - 1)
    rng = np.random.default_rng(N * 10 + C)
    x = rng.permutation(N * C * 7 * 8).reshape(N, C, 7, 8).astype(dtype)   # no ties
    op = lambda x: F.max_pool2d(x, k, padding=padding)                    # noqa: E731
    if needs_grad:
        _same_on_all_thread_counts(op, [x], [True], exact=True)
    else:
        with threads(1):
            want = op(Tensor(x)).numpy()
        with threads(3):
            np.testing.assert_array_equal(op(Tensor(x)).numpy(), want)


@pytest.mark.parametrize("op", [F.relu, F.sigmoid, F.tanh, F.leaky_relu, F.elu, F.softplus],
                         ids=["relu", "sigmoid", "tanh", "leaky_relu", "elu", "softplus"])
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=4), dtype=DTYPES)
def test_activations_are_the_same_on_any_number_of_threads(op, shape, dtype):
    x = np.random.default_rng(len(shape)).standard_normal(shape).astype(dtype)
    _same_on_all_thread_counts(op, [x], [True], exact=True)


@given(N=st.integers(1, 9), D=st.integers(1, 12), M=st.integers(1, 5), bias=st.booleans(),
       dtype=DTYPES)
def test_affine_is_the_same_on_any_number_of_threads(N, D, M, bias, dtype):
    rng = np.random.default_rng(N * D)
    arrays = [rng.standard_normal((N, D)).astype(dtype), rng.standard_normal((D, M)).astype(dtype)]
    if bias:
        arrays.append(rng.standard_normal(M).astype(dtype))
    _same_on_all_thread_counts(F.affine, arrays, [True] * len(arrays), exact=False)


@given(N=st.integers(1, 5), D=st.integers(1024, 1300), M=st.integers(1, 4), bias=st.booleans())
def test_wide_affine_sums_fixed_blocks_the_same_on_any_number_of_threads(N, D, M, bias):
    rng = np.random.default_rng(D)
    arrays = [rng.standard_normal((N, D)), rng.standard_normal((D, M))]
    if bias:
        arrays.append(rng.standard_normal(M))
    want = arrays[0] @ arrays[1] + (arrays[2] if bias else 0)
    outputs = []
    for n in (1, 2, 3):
        with threads(n):
            outputs.append(F.affine(*arrays).numpy())
    np.testing.assert_allclose(outputs[0], want, rtol=1e-12, atol=1e-12)
    # The same fixed blocks on any number of threads: the same bits.
    np.testing.assert_array_equal(outputs[1], outputs[0])
    np.testing.assert_array_equal(outputs[2], outputs[0])
    _same_on_all_thread_counts(F.affine, arrays, [True] * len(arrays), exact=False)


def test_adam_is_the_same_on_any_number_of_threads(monkeypatch):
    from minigrad import optim as optim_module

    monkeypatch.setattr(optim_module, "_BLOCK", 7)          # many blocks, a short last one
    rng = np.random.default_rng(0)
    start = rng.standard_normal((10, 9)).astype(np.float32)
    grads = [rng.standard_normal((10, 9)).astype(np.float32) for _ in range(3)]
    results = []
    for n in (1, 2, 3):
        p = minigrad.nn.Parameter(start.copy())
        opt = optim.Adam([p], lr=0.1)
        with threads(n):
            for g in grads:
                p.grad = g.copy()
                opt.step()
        results.append(p.numpy())
    np.testing.assert_array_equal(results[1], results[0])
    np.testing.assert_array_equal(results[2], results[0])


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_forked_child_starts_its_own_workers():
    import os

    with threads(2):
        parallel.parallel_for(2, lambda lo, hi: None, work=2)      # the parent's pool runs
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:                                                 # the child
            import signal

            signal.alarm(20)                 # a child waiting for workers it lacks dies
            out = np.zeros(4)

            def body(lo, hi):
                out[lo:hi] = threading.get_ident() != main

            main = threading.get_ident()
            parallel.parallel_for(4, body, work=4)
            os.write(write, bytes([int(out.sum())]))
            os._exit(0)
        os.close(write)
        _, status = os.waitpid(pid, 0)
        got = os.read(read, 1)
        os.close(read)
    assert status == 0
    assert got == bytes([2])          # half the rows ran on a worker thread of the child


@pytest.mark.parametrize("n", [2, 3])
def test_side_by_side_gives_each_piece_a_thread_or_splits_each(n):
    calls = []
    lock = threading.Lock()

    def piece(name):
        def body(lo, hi):
            with lock:
                calls.append((name, lo, hi, threading.get_ident()))
        return body

    with threads(n):
        parallel.side_by_side([(piece("a"), 6), (piece("b"), 4)], work=10)
    by_piece = {name: sorted((lo, hi) for p, lo, hi, _ in calls if p == name) for name in "ab"}
    if n == 2:     # as many pieces as threads: each whole, on threads of their own
        assert by_piece == {"a": [(0, 6)], "b": [(0, 4)]}
        assert len({ident for *_, ident in calls}) == 2
    else:          # fewer pieces than threads: each split over all three
        assert by_piece == {"a": [(0, 2), (2, 4), (4, 6)], "b": [(0, 1), (1, 2), (2, 4)]}


def test_a_training_step_at_full_size_agrees_on_one_and_two_threads():
    """The textbook CNN at batch 100, with the real slice threshold: on two threads the big ops
    split; the loss and every gradient agree with one thread's."""
    from minigrad.models import SimpleConvNet

    rng = np.random.default_rng(0)
    x = rng.random((100, 1, 28, 28), dtype=np.float32)
    t = rng.integers(0, 10, 100)
    results = []
    old = parallel.get_num_threads()
    try:
        for n in (1, 2):
            parallel.set_num_threads(n)
            minigrad.nn.manual_seed(0)
            model = SimpleConvNet()
            loss = model.loss(x, t)
            loss.backward()
            results.append((loss.item(), {k: p.grad for k, p in model.named_parameters()}))
    finally:
        parallel.set_num_threads(old)
    (loss1, grads1), (loss2, grads2) = results
    assert loss2 == pytest.approx(loss1, rel=1e-6)
    for name, g in grads1.items():
        np.testing.assert_allclose(grads2[name], g, rtol=1e-4, atol=1e-6, err_msg=name)
