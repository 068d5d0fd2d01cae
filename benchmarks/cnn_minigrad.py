"""SimpleConvNet in minigrad, run the way the peer benchmarks run (same data, init, batch order).

Same network, weights, batch order and optimiser settings as the PyTorch / DeZero / textbook
NumPy scripts in ``<work>/shared/bench``: Conv(1→30, 5×5) → ReLU → MaxPool(2) → Affine(4320→100)
→ ReLU → Affine(100→10) → softmax cross-entropy, He-normal init from
``np.random.RandomState(seed)``, Adam(lr 1e-3), batch 100, float32. Only the training loop
(batch gather + forward + backward + update) is timed; it prints one JSON line with the peers'
fields plus ``inference_images_per_second`` (no_grad forward over the test set in batches of
``--eval-batch``), ``rss_after_epoch_mb`` and the time spent in each phase of a step.

    python benchmarks/cnn_minigrad.py --images 10000 --epochs 1 --threads 2
    python benchmarks/cnn_minigrad.py --profile 30      # where one training step spends its time
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402


def parse_args(argv=None):
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=10000,
                    help="train images used (the first N of the training set)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-batch", type=int, default=1000)
    ap.add_argument("--out", default=None, help="also append the JSON line to this file")
    ap.add_argument("--batch-size", type=int, default=_common.BATCH,
                    help="training batch (the peers are fixed at 100)")
    ap.add_argument("--data", default=str(_common.MNIST_DIR),
                    help="folder with the four MNIST .gz files (default: the shared datasets)")
    ap.add_argument("--subset", action="store_true",
                    help="use the MNIST subset shipped with minigrad (10k train / 2k test); "
                         "also the fallback when --data holds no MNIST")
    ap.add_argument("--profile", type=int, default=0, metavar="STEPS",
                    help="instead of the benchmark, profile STEPS training steps (per-op times "
                         "through the tape observers, then cProfile) and print the top costs")
    ap.add_argument("--profile-top", type=int, default=25)
    args = ap.parse_args(argv)
    if args.images < args.batch_size:
        ap.error(f"--images {args.images} is smaller than one batch of {args.batch_size}")
    if args.eval_batch < 1 or args.batch_size < 1:
        ap.error("--eval-batch and --batch-size must be positive")
    return args


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:
    _common.set_thread_env(ARGS.threads)  # before NumPy starts its BLAS threads

import numpy as np  # noqa: E402

sys.path.insert(0, str(_common.REPO))  # measure this checkout of minigrad
import minigrad  # noqa: E402
import minigrad.data  # noqa: E402
import minigrad.models  # noqa: E402
import minigrad.optim  # noqa: E402

if ARGS is not None:
    minigrad.set_num_threads(ARGS.threads)   # as the environment says, but stated outright

# The peers' parameter names → minigrad's SimpleConvNet state_dict names.
PARAM_NAMES = {
    "W1": "conv1.weight", "b1": "conv1.bias",
    "W2": "affine1.weight", "b2": "affine1.bias",
    "W3": "affine2.weight", "b3": "affine2.bias",
}


def load_data(args):
    """(x_train[:images], t_train[:images], x_test, t_test, seconds, source)."""
    t0 = time.perf_counter()
    folder = Path(args.data)
    use_subset = args.subset or minigrad.data.find_mnist(folder) is None
    if use_subset:
        (xtr, ttr), (xte, tte) = minigrad.data.load_mnist(subset=True)
        source = "minigrad subset"
    else:
        (xtr, ttr), (xte, tte) = minigrad.data.load_mnist(folder, download=False)
        source = str(folder)
    if args.images > len(xtr):
        raise SystemExit(f"cnn_minigrad: --images {args.images} > {len(xtr)} training images "
                         f"in {source}")
    xtr, ttr = np.ascontiguousarray(xtr[:args.images]), np.ascontiguousarray(ttr[:args.images])
    return xtr, ttr, xte, tte, time.perf_counter() - t0, source


def build(seed):
    """The model with the peers' initial weights, and its Adam optimiser."""
    model = minigrad.models.SimpleConvNet()
    params = _common.init_params(seed)
    model.load_state_dict({PARAM_NAMES[k]: v for k, v in params.items()})
    opt = minigrad.optim.Adam(model.parameters(), lr=_common.LR,
                              betas=(_common.BETA1, _common.BETA2), eps=_common.EPS)
    return model, opt


def train_step(model, opt, xtr, ttr, idx, phases):
    """One step: gather, forward (loss), backward, update; adds each phase's seconds."""
    t0 = time.perf_counter()
    xb = minigrad.Tensor(xtr[idx])
    tb = ttr[idx]
    t1 = time.perf_counter()
    loss = model.loss(xb, tb)
    t2 = time.perf_counter()
    opt.zero_grad()
    loss.backward()
    t3 = time.perf_counter()
    opt.step()
    t4 = time.perf_counter()
    phases["gather"] += t1 - t0
    phases["forward"] += t2 - t1
    phases["backward"] += t3 - t2
    phases["optimizer"] += t4 - t3
    return loss.item()


def evaluate(model, xte, tte, eval_batch):
    """(accuracy, seconds) of a no_grad forward pass over the test set."""
    correct = 0
    t0 = time.perf_counter()
    with minigrad.no_grad():
        for i in range(0, len(xte), eval_batch):
            y = model(minigrad.Tensor(xte[i:i + eval_batch]))
            correct += int((y.data.argmax(axis=1) == tte[i:i + eval_batch]).sum())
    return correct / len(xte), time.perf_counter() - t0


def dtypes(model):
    params = list(model.parameters())
    return (sorted({str(p.data.dtype) for p in params}),
            sorted({str(p.grad.dtype) for p in params if p.grad is not None}))


def run_benchmark(args):
    xtr, ttr, xte, tte, load_s, source = load_data(args)
    rss_load = _common.current_rss_mb()
    orders = _common.epoch_orders(len(xtr), args.epochs, args.seed, args.batch_size)
    model, opt = build(args.seed)

    phases = dict.fromkeys(("gather", "forward", "backward", "optimizer"), 0.0)
    losses, steps_s, rss_epochs = [], [], []
    grad_dtype = None
    t0 = time.perf_counter()
    for order in orders:
        for idx in order:
            ts = time.perf_counter()
            losses.append(train_step(model, opt, xtr, ttr, idx, phases))
            steps_s.append(time.perf_counter() - ts)
            if grad_dtype is None:
                grad_dtype = dtypes(model)[1]
        rss_epochs.append(round(_common.current_rss_mb(), 1))
    train_s = time.perf_counter() - t0

    accuracy, eval_s = evaluate(model, xte, tte, args.eval_batch)
    param_dtype = dtypes(model)[0]
    if param_dtype != ["float32"] or grad_dtype != ["float32"]:
        raise SystemExit(f"cnn_minigrad: training left float32: parameters {param_dtype}, "
                         f"gradients {grad_dtype}")
    extra = {
        "minigrad": minigrad.__version__,
        "data": source,
        "test_images": len(xte),
        "eval_batch": args.eval_batch,
        "inference_images_per_second": round(len(xte) / eval_s, 1),
        "rss_after_epoch_mb": rss_epochs,
        "phase_seconds": {k: round(v, 3) for k, v in phases.items()},
        "blas": _common.blas_info(),
        "param_dtype": param_dtype,
        "grad_dtype": grad_dtype,
    }
    _common.report("minigrad", args, train_seconds=train_s, losses=losses,
                   first_step_seconds=steps_s[0], step_seconds=steps_s,
                   test_accuracy=accuracy, eval_seconds=eval_s, load_seconds=load_s,
                   rss_after_load_mb=rss_load, batch=args.batch_size, extra=extra)


# ----------------------------------------------------------------------------------------------
# Profiling


class OpTimer:
    """A tape observer adding up the seconds of each op's forward and backward."""

    def __init__(self):
        self.seconds = {}
        self.calls = {}

    def _add(self, key, seconds):
        self.seconds[key] = self.seconds.get(key, 0.0) + seconds
        self.calls[key] = self.calls.get(key, 0) + 1

    def forward(self, fn, inputs, output, seconds):
        self._add(f"{type(fn).__name__}.forward", seconds)

    def backward(self, fn, dy, grads, seconds):
        self._add(f"{type(fn).__name__}.backward", seconds)


def run_profile(args):
    import cProfile
    import io
    import pstats

    from minigrad import function

    xtr, ttr, _, _, _, source = load_data(args)
    steps = args.profile
    needed = 3 + 3 * steps  # warm-up, then three profiled passes of `steps` steps
    epochs = -(-needed // (len(xtr) // args.batch_size))
    orders = _common.epoch_orders(len(xtr), epochs, args.seed, args.batch_size)
    batches = iter([idx for order in orders for idx in order])
    model, opt = build(args.seed)
    phases = dict.fromkeys(("gather", "forward", "backward", "optimizer"), 0.0)
    for _ in range(3):  # warm-up: first-call allocations, BLAS thread start
        train_step(model, opt, xtr, ttr, next(batches), phases)

    # 1. phases and per-op times through the tape observers
    phases = dict.fromkeys(phases, 0.0)
    timer = OpTimer()
    function._observers.append(timer)
    try:
        t0 = time.perf_counter()
        for _ in range(steps):
            train_step(model, opt, xtr, ttr, next(batches), phases)
        total = time.perf_counter() - t0
    finally:
        function._observers.remove(timer)
    print(f"# minigrad SimpleConvNet, {steps} training steps of batch {args.batch_size}, "
          f"{args.threads} threads, data: {source}")
    print(f"# {total / steps * 1e3:.1f} ms per step (with per-op timing on)\n")
    print(f"{'phase':<28}{'ms/step':>10}{'share':>8}")
    for name, sec in sorted(phases.items(), key=lambda kv: -kv[1]):
        print(f"{name:<28}{sec / steps * 1e3:>10.2f}{sec / total:>8.1%}")
    print(f"\n{'op':<28}{'ms/step':>10}{'share':>8}{'calls/step':>12}")
    for name, sec in sorted(timer.seconds.items(), key=lambda kv: -kv[1]):
        print(f"{name:<28}{sec / steps * 1e3:>10.2f}{sec / total:>8.1%}"
              f"{timer.calls[name] / steps:>12.1f}")

    # 2. the library's own profiler, when it exists: per op and per module
    try:
        from minigrad.profiler import profile
    except ImportError:
        profile = None
    if profile is not None:
        with profile() as prof:
            for _ in range(steps):
                train_step(model, opt, xtr, ttr, next(batches), phases)
        for group in ("op", "module"):
            print(f"\n# minigrad.profile() over {steps} steps, by {group}")
            print(prof.table(group_by=group))
    else:
        for _ in range(steps):  # keep the batch sequence the same
            next(batches)

    # 3. cProfile: Python functions, including NumPy calls
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        train_step(model, opt, xtr, ttr, next(batches), phases)
    profiler.disable()
    for key in ("tottime", "cumulative"):
        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).sort_stats(key).print_stats(args.profile_top)
        print(f"\n# cProfile over {steps} steps, sorted by {key}")
        print(buf.getvalue().split("\n", 6)[-1].rstrip())


def main():
    args = ARGS
    if args.profile:
        run_profile(args)
    else:
        run_benchmark(args)


if __name__ == "__main__":
    main()
