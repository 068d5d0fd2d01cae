"""Wall time to 99% test accuracy: the chapter-8 DeepConvNet on MNIST, minigrad against PyTorch.

The run of ``examples/train_mnist.py --model deep`` (the book's DeepConvNet, Adam lr 1e-3,
batch 100, the cosine schedule over ``--epochs`` stepped after each epoch), trained twice in
the same run: by minigrad and by its PyTorch twin (``bench_nets``' ``deep`` layer list built
with ``torch.nn``), from the same initial weights, over the same batches in the same order.

- Weights: those ``train_mnist.py`` starts from (``nn.manual_seed(seed)``, then
  ``DeepConvNet()``), drawn once in the parent and copied into both networks
  (``bench_nets.build_minigrad`` / ``build_torch``); ``--init bench_nets`` takes
  ``bench_nets.init_params`` instead.
- Batches: each epoch a permutation of the training images from
  ``np.random.default_rng(seed)``, cut into batches of 100, as ``train_mnist``'s DataLoader
  draws them; the minigrad side is ``train_mnist``'s run step for step (same weights, batches,
  dropout masks and rates).
- Learning rate: epoch e trains at the rate ``train_mnist``'s schedule sets for it
  (``train_mnist.planned_schedule``), given to both frameworks.
- Dropout is active in training; after each epoch the model is put in eval mode and the test
  images are classified without a graph (``model.predict`` at batch 1000 for minigrad, as
  ``train_mnist``; ``torch.inference_mode`` at batch 1000 for PyTorch).

Each framework runs in a child process of its own, both alive for the whole run; the parent
alternates epochs between them (epoch 1 minigrad then PyTorch, epoch 2 PyTorch then minigrad,
…), so that what else runs on the machine falls on both alike, and the idle child waits on its
pipe. Every child gets the same OMP/OPENBLAS/MKL thread counts and ``--threads``
(``minigrad.set_num_threads`` / ``torch.set_num_threads``), as in ``bench_nets``.

Per epoch and framework: training seconds (the steps only: batch gathering, forward, loss,
backward, Adam), evaluation seconds, their running totals, the test accuracy, the rate and the
mean training loss. The headline is the time to the first epoch whose test accuracy reaches
``--target``: training only, and training plus the evaluations so far, and the ratios
PyTorch / minigrad (> 1: minigrad reached it sooner). A framework stops once it has reached
the target unless ``--no-stop-at-target``.

    python benchmarks/bench_time_to_accuracy.py                   # full MNIST, 2 threads
    python benchmarks/bench_time_to_accuracy.py --no-stop-at-target --json tta.json
    python benchmarks/bench_time_to_accuracy.py --subset --limit 1000 --epochs 2 --target 0.5
"""

from __future__ import annotations

import argparse
import builtins
import json
import os
import platform
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

sys.path.insert(0, str(_common.REPO))  # measure this checkout of minigrad
import bench_cnn  # noqa: E402  (revision, log, fmt)
import bench_nets  # noqa: E402  (the layer list, the builders, the framework wrapper)

FRAMEWORKS = ("minigrad", "torch")
NET = "deep"
EVAL_BATCH = 1000        # train_mnist.evaluate's batch (its default for model.predict)


def train_mnist_module():
    """``examples/train_mnist.py`` as a module: its defaults and schedules are the reference."""
    import importlib.util

    path = _common.REPO / "examples" / "train_mnist.py"
    spec = importlib.util.spec_from_file_location("train_mnist", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------------------------
# What both children get: weights, batch orders, rates (made once, in the parent)


def train_mnist_params(seed):
    """The initial weights of ``train_mnist.py --model deep --seed seed``, as arrays in
    ``bench_nets.param_specs`` order (per layer its weight, then its bias)."""
    import minigrad.models
    from minigrad import nn

    nn.manual_seed(seed)
    model = minigrad.models.DeepConvNet()
    return [p.data.copy() for p in model.parameters()]


def epoch_orders(n, epochs, seed):
    """(epochs, n): the row order of each epoch, as ``DataLoader(..., shuffle=True,
    seed=seed)`` draws it (one permutation per epoch from ``np.random.default_rng(seed)``)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(n) for _ in range(epochs)])


def planned_rates(schedule, epochs, lr=None):
    """The learning rate of each epoch 1…epochs under ``train_mnist``'s ``schedule``."""
    tm = train_mnist_module()
    lr = tm.DEFAULT_LR if lr is None else lr
    if schedule == "constant":
        return [lr] * epochs
    return [tm.planned_schedule(schedule, lr, epochs, done)[1] for done in range(epochs)]


def prepare(args, folder):
    """Write the images, labels, weights and batch orders as .npy files the children load."""
    import numpy as np

    import minigrad.data

    if args.subset or minigrad.data.find_mnist(args.data) is None:
        (xtr, ttr), (xte, tte) = minigrad.data.load_mnist(subset=True)
        source = "minigrad's embedded subset"
    else:
        (xtr, ttr), (xte, tte) = minigrad.data.load_mnist(args.data, download=False)
        source = f"full MNIST from {args.data}"
    if args.limit is not None:
        xtr, ttr, xte, tte = xtr[:args.limit], ttr[:args.limit], xte[:args.limit], \
            tte[:args.limit]
    arrays = {"xtr": xtr.astype(np.float32), "ttr": ttr.astype(np.int64),
              "xte": xte.astype(np.float32), "tte": tte.astype(np.int64),
              "orders": epoch_orders(len(xtr), args.epochs, args.seed)}
    if args.init == "train_mnist":
        params = train_mnist_params(args.seed)
    else:
        params = bench_nets.init_params(bench_nets.NETS[NET][1], args.seed)
    for i, p in enumerate(params):
        arrays[f"param{i}"] = p.astype(np.float32)
    for key, a in arrays.items():
        np.save(Path(folder) / f"{key}.npy", np.ascontiguousarray(a), allow_pickle=False)
    return source, len(xtr), len(xte), len(params)


# ----------------------------------------------------------------------------------------------
# A child: one framework, one epoch per request on stdin, one JSON line per epoch on stdout


def set_rate(fw, lr):
    if fw.name == "minigrad":
        fw.opt.lr = lr
    else:
        for group in fw.opt.param_groups:
            group["lr"] = lr


def test_logits(fw, x, batch):
    """The logits of ``x`` in eval mode, without a graph, ``batch`` images at a time."""
    import numpy as np

    fw.model.eval()
    if fw.name == "minigrad":
        return fw.model.predict(x, batch)        # train_mnist.evaluate's call
    with fw.torch.inference_mode():
        return np.concatenate([fw.model(fw.torch.from_numpy(x[i:i + batch])).numpy()
                               for i in range(0, len(x), batch)])


def run_worker(args):
    """Load, build, say "ready"; then train one epoch per request until told to stop."""
    import numpy as np

    t0 = time.perf_counter()
    folder = Path(args.data_dir)
    load = {key: np.load(folder / f"{key}.npy") for key in ("xtr", "ttr", "xte", "tte", "orders")}
    xtr, ttr, xte, tte, orders = (load[k] for k in ("xtr", "ttr", "xte", "tte", "orders"))
    params = [np.load(folder / f"param{i}.npy") for i in range(args.params)]
    fw = bench_nets.Framework(args.worker, NET, params, args.threads, args.seed)
    del params
    ready = {"ready": True, "framework": args.worker, "version": fw.version,
             "setup_seconds": round(time.perf_counter() - t0, 3), "blas": _common.blas_info(),
             "dtypes": fw.dtypes()}
    print(json.dumps(ready), flush=True)
    n, batch = len(xtr), _common.BATCH
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("stop"):
            break
        epoch, lr = request["epoch"], request["lr"]
        set_rate(fw, lr)
        order = orders[epoch - 1]
        fw.model.train()
        total_loss = 0.0
        ts, cs = time.perf_counter(), time.process_time()
        for start in range(0, n, batch):
            rows = order[start:start + batch]
            total_loss += fw.step(xtr[rows], ttr[rows]) * len(rows)
        train_s, train_cpu = time.perf_counter() - ts, time.process_time() - cs
        te = time.perf_counter()
        logits = test_logits(fw, xte, args.eval_batch)
        eval_s = time.perf_counter() - te
        accuracy = float((logits.argmax(axis=1) == tte).mean())
        if not np.isfinite(total_loss):
            raise SystemExit(f"bench_time_to_accuracy: {args.worker} epoch {epoch}: the "
                             f"training loss is not finite")
        print(json.dumps({"epoch": epoch, "lr": lr, "train_seconds": train_s,
                          "train_cpu_seconds": train_cpu,
                          "eval_seconds": eval_s, "test_accuracy": accuracy,
                          "train_loss": total_loss / n,
                          "rss_mb": round(bench_nets.peak_rss_mb(), 1)}), flush=True)


# ----------------------------------------------------------------------------------------------
# The parent


class Child:
    """A framework's child process, spoken to one JSON line at a time."""

    def __init__(self, name, cmd, env, log_path):
        self.name = name
        self.log_path = log_path
        self.stderr = open(log_path, "w")
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, text=True, bufsize=1,
                                     cwd=str(Path(__file__).resolve().parent))

    def read(self, timeout):
        """The next JSON line; SystemExit with the child's last error line if there is none."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.stop()
                raise SystemExit(f"bench_time_to_accuracy: {self.name} gave no answer within "
                                 f"{timeout:.0f} s")
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if not ready:
                continue
            line = self.proc.stdout.readline()
            if not line:
                self.proc.wait()
                raise SystemExit(f"bench_time_to_accuracy: {self.name} ended (exit code "
                                 f"{self.proc.returncode}): {self.last_error()}")
            if line.startswith("{"):
                return json.loads(line)

    def ask(self, request, timeout):
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return self.read(timeout)

    def last_error(self):
        self.stderr.flush()
        lines = Path(self.log_path).read_text().strip().splitlines()
        return lines[-1] if lines else "no error output"

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"stop": True}) + "\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()


def child_command(args, framework, folder, n_params):
    return [sys.executable, str(Path(__file__).resolve()), "--worker", framework,
            "--data-dir", str(folder), "--params", str(n_params), "--threads",
            str(args.threads), "--seed", str(args.seed), "--eval-batch", str(args.eval_batch)]


def parse_args(argv=None):
    """The options; ``--epochs`` and ``--schedule`` left out take ``train_mnist``'s defaults
    (read in the parent only: a child imports no more than its framework)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=None,
                    help="epochs the schedule spans, and at most trained (default: "
                         "train_mnist's, 10)")
    ap.add_argument("--schedule", choices=("cosine", "step", "constant"), default=None,
                    help="train_mnist's learning-rate schedule (default: train_mnist's, cosine)")
    ap.add_argument("--target", type=float, default=0.99, help="test accuracy to reach")
    ap.add_argument("--stop-at-target", action=argparse.BooleanOptionalAction, default=True,
                    help="stop a framework at the first epoch that reaches --target (default); "
                         "--no-stop-at-target trains both for all --epochs")
    ap.add_argument("--threads", type=int, default=2,
                    help="threads of both children (BLAS / OpenMP, torch.set_num_threads, "
                         "minigrad.set_num_threads)")
    ap.add_argument("--seed", type=int, default=0,
                    help="initial weights, batch order and dropout masks (default 0)")
    ap.add_argument("--init", choices=("train_mnist", "bench_nets"), default="train_mnist",
                    help="initial weights: train_mnist's DeepConvNet (default) or "
                         "bench_nets.init_params")
    ap.add_argument("--data", default=str(bench_nets.default_mnist_dir()),
                    help="folder with the four MNIST IDX files; minigrad's embedded subset "
                         "when it holds none (or with --subset)")
    ap.add_argument("--subset", action="store_true", help="use minigrad's embedded MNIST subset")
    ap.add_argument("--limit", type=int, default=None, metavar="N",
                    help="only the first N training and N test images (quick checks)")
    ap.add_argument("--eval-batch", type=int, default=EVAL_BATCH, metavar="B",
                    help=f"test images per forward pass in the evaluation (default {EVAL_BATCH}, "
                         "train_mnist's)")
    ap.add_argument("--keep-blas-env", action="store_true",
                    help="leave OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE as they are for the children")
    ap.add_argument("--timeout", type=float, default=3600,
                    help="seconds allowed for a child's start and for each of its epochs")
    ap.add_argument("--json", default=None, metavar="PATH", help="write the results as JSON")
    # a child's own arguments
    ap.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    ap.add_argument("--data-dir", help=argparse.SUPPRESS)
    ap.add_argument("--params", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return args
    tm = train_mnist_module()
    args.epochs = tm.DEFAULT_EPOCHS if args.epochs is None else args.epochs
    args.schedule = tm.DEFAULT_SCHEDULE if args.schedule is None else args.schedule
    if args.schedule not in tm.SCHEDULES:
        ap.error(f"--schedule {args.schedule} is not one of train_mnist's {tm.SCHEDULES}")
    if args.epochs < 1 or args.threads < 1 or args.eval_batch < 1:
        ap.error("--epochs, --threads and --eval-batch must be ≥ 1")
    if not 0 < args.target <= 1:
        ap.error(f"--target {args.target} is not an accuracy in (0, 1]")
    if args.limit is not None and args.limit < 1:
        ap.error(f"--limit {args.limit} must be ≥ 1")
    return args


def first_reaching(epochs, target):
    """The first epoch record whose test accuracy is ≥ target, or None."""
    return next((e for e in epochs if e["test_accuracy"] >= target), None)


def summarise(per_fw, target):
    """Per framework: the epoch and times at which it first reached the target; the ratios
    PyTorch / minigrad of those times (> 1: minigrad reached it sooner)."""
    out = {"frameworks": {}}
    for fw, epochs in per_fw.items():
        hit = first_reaching(epochs, target)
        out["frameworks"][fw] = {
            "epoch": hit["epoch"] if hit else None,
            "train_seconds": hit["cumulative_train_seconds"] if hit else None,
            "train_eval_seconds": hit["cumulative_seconds"] if hit else None,
            "test_accuracy": hit["test_accuracy"] if hit else None,
            "best_test_accuracy": max((e["test_accuracy"] for e in epochs), default=None),
            "epochs_run": len(epochs)}
    mg, tc = out["frameworks"].get("minigrad"), out["frameworks"].get("torch")
    for key in ("train_seconds", "train_eval_seconds"):
        a, b = (mg or {}).get(key), (tc or {}).get(key)
        out[f"ratio_{key}"] = b / a if a and b else None
    return out


def print_report(result, file=sys.stdout):
    def print(*a):  # noqa: A001
        builtins.print(*a, file=file)

    fmt = bench_cnn.fmt
    cfg, m = result["config"], result["machine"]
    print(f"\nDeepConvNet on {cfg['data']} ({cfg['train_images']:,} training, "
          f"{cfg['test_images']:,} test images), batch {cfg['batch']}, Adam lr {cfg['lr']:g}, "
          f"{cfg['schedule']} schedule over {cfg['epochs']} epochs, {cfg['threads']} thread(s), "
          f"seed {cfg['seed']}, initial weights: {cfg['init']}; evaluation at batch "
          f"{cfg['eval_batch']}")
    print(f"machine: {m['cpu']}, nproc {m['nproc']}, Python {m['python']}, numpy {m['numpy']}, "
          f"BLAS {m['blas']}; minigrad {m['minigrad']} at {cfg['minigrad_revision']}, "
          f"torch {m['torch']}")
    load = m["loadavg_1m"]
    print(f"1-min load average: {load['start']:.2f} at the start, before each epoch median "
          f"{fmt(load['median'], '.2f')}, max {fmt(load['max'], '.2f')}")
    if load["median"] is not None and load["median"] > m["nproc"] + 1:  # ours: up to nproc
        print(f"WARNING: the machine was busy (load above its {m['nproc']} CPUs): threads that "
              f"spin (PyTorch's OpenMP) or sleep (minigrad's) fare very differently then; "
              f"these times do not describe an idle machine")
    head = (f"{'framework':<10}{'epoch':>6}{'lr':>10}{'train loss':>11}{'test acc':>10}"
            f"{'train s':>9}{'CPU s':>8}{'eval s':>8}{'Σ train s':>11}{'Σ train+eval s':>16}"
            f"{'load':>6}")
    print(head)
    print("-" * len(head))
    for fw, epochs in result["epochs"].items():
        for e in epochs:
            print(f"{fw:<10}{e['epoch']:>6}{e['lr']:>10.3g}{e['train_loss']:>11.4f}"
                  f"{e['test_accuracy']:>10.4f}{e['train_seconds']:>9.1f}"
                  f"{e['train_cpu_seconds']:>8.1f}{e['eval_seconds']:>8.2f}"
                  f"{e['cumulative_train_seconds']:>11.1f}{e['cumulative_seconds']:>16.1f}"
                  f"{e['loadavg_1m_before']:>6.2f}")
    print("train s: wall seconds of the epoch's steps; CPU s: the child's CPU seconds in them "
          "(all its threads; PyTorch's spin while they wait)")
    s = result["summary"]
    target = cfg["target"]
    print(f"time to ≥ {target:.1%} test accuracy:")
    for fw, x in s["frameworks"].items():
        if x["epoch"] is None:
            print(f"  {fw:<9} not reached in {x['epochs_run']} epoch"
                  f"{'' if x['epochs_run'] == 1 else 's'} (best "
                  f"{fmt(x['best_test_accuracy'], '.4f')})")
        else:
            print(f"  {fw:<9} epoch {x['epoch']} ({x['test_accuracy']:.4f}): "
                  f"{x['train_seconds']:.1f} s training, {x['train_eval_seconds']:.1f} s with "
                  f"the evaluations")
    print(f"  PyTorch / minigrad: {fmt(s['ratio_train_seconds'], '.2f')} (training), "
          f"{fmt(s['ratio_train_eval_seconds'], '.2f')} (with the evaluations); > 1: minigrad "
          f"reached it sooner")
    for note in result["notes"]:
        print(f"note: {note}")
    print(f"command: {result['command']}   ({result['wall_seconds']:.0f} s)")


def machine_line(ready):
    import numpy as np

    blas = next((r["blas"] for r in ready.values() if r.get("blas")), [])
    return {"cpu": _common.cpu_model(), "nproc": os.cpu_count(),
            "python": platform.python_version(), "numpy": np.__version__,
            "blas": ", ".join(f"{b.get('internal_api')} {b.get('version')} kernel "
                              f"{b.get('architecture')}" for b in blas)
            or "unknown (no threadpoolctl)",
            "minigrad": ready.get("minigrad", {}).get("version"),
            "torch": ready.get("torch", {}).get("version")}


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return run_worker(args)
    started = time.perf_counter()
    log = bench_cnn.log
    notes = []
    env = _common.child_env(args.threads, args.keep_blas_env)
    removed = [v for v in _common.BLAS_OVERRIDE_VARS if v in os.environ]
    if removed:
        notes.append(("kept" if args.keep_blas_env else "unset") + " for every child: "
                     + ", ".join(f"{v}={os.environ[v]}" for v in removed))
    rates = planned_rates(args.schedule, args.epochs)
    revision = bench_cnn.minigrad_revision()       # the checkout measured, as it starts
    load_start = os.getloadavg()[0]
    per_fw = {fw: [] for fw in FRAMEWORKS}
    ready, children = {}, {}
    with tempfile.TemporaryDirectory(prefix="bench_tta_") as folder:
        source, n_train, n_test, n_params = prepare(args, folder)
        try:
            for fw in FRAMEWORKS:      # one after the other: neither starts under the other
                children[fw] = Child(fw, child_command(args, fw, folder, n_params), env,
                                     Path(folder) / f"{fw}.log")
                ready[fw] = children[fw].read(args.timeout)
                log(f"{fw}: ready in {ready[fw]['setup_seconds']:.1f} s ({ready[fw]['version']})")
            done = set()
            for epoch in range(1, args.epochs + 1):
                order = FRAMEWORKS if epoch % 2 == 1 else FRAMEWORKS[::-1]
                for fw in order:
                    if fw in done:
                        continue
                    load = os.getloadavg()[0]
                    res = children[fw].ask({"epoch": epoch, "lr": rates[epoch - 1]},
                                           args.timeout)
                    prev = per_fw[fw][-1] if per_fw[fw] else None
                    res["cumulative_train_seconds"] = \
                        res["train_seconds"] + (prev["cumulative_train_seconds"] if prev else 0)
                    res["cumulative_seconds"] = (res["train_seconds"] + res["eval_seconds"]
                                                 + (prev["cumulative_seconds"] if prev else 0))
                    res["loadavg_1m_before"] = round(load, 2)
                    per_fw[fw].append(res)
                    log(f"epoch {epoch}/{args.epochs} {fw:<9} lr {res['lr']:.3g}  loss "
                        f"{res['train_loss']:.4f}  test acc {res['test_accuracy']:.4f}  "
                        f"train {res['train_seconds']:.1f} s  eval {res['eval_seconds']:.2f} s  "
                        f"(load {load:.2f})")
                    if args.stop_at_target and res["test_accuracy"] >= args.target:
                        done.add(fw)
                if len(done) == len(FRAMEWORKS):
                    break
        finally:
            for child in children.values():
                child.stop()
    for fw, r in ready.items():
        if r["dtypes"] != ["float32"]:
            notes.append(f"{fw} trained in {r['dtypes']}, not float32 only")
    loads = [e["loadavg_1m_before"] for epochs in per_fw.values() for e in epochs]
    result = {
        "command": " ".join(["python", "benchmarks/bench_time_to_accuracy.py"]
                            + (list(argv) if argv is not None else sys.argv[1:])),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "config": {"net": bench_nets.NETS[NET][0], "data": source, "train_images": n_train,
                   "test_images": n_test, "batch": _common.BATCH, "lr": rates[0],
                   "betas": [_common.BETA1, _common.BETA2], "eps": _common.EPS,
                   "schedule": args.schedule, "epochs": args.epochs, "rates": rates,
                   "target": args.target, "stop_at_target": args.stop_at_target,
                   "threads": args.threads, "seed": args.seed, "init": args.init,
                   "eval_batch": args.eval_batch,
                   "minigrad_revision": revision,
                   "blas_env_kept": args.keep_blas_env},
        "machine": {**machine_line(ready),
                    "loadavg_1m": {"start": round(load_start, 2),
                                   "median": statistics.median(loads) if loads else None,
                                   "max": max(loads) if loads else None}},
        "setup_seconds": {fw: r["setup_seconds"] for fw, r in ready.items()},
        "epochs": per_fw,
        "summary": summarise(per_fw, args.target),
        "notes": notes,
        "wall_seconds": time.perf_counter() - started,
    }
    print_report(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    _ARGS = parse_args()
    if _ARGS.worker:
        _common.set_thread_env(_ARGS.threads)    # before NumPy loads its BLAS
    main()
