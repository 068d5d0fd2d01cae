"""Shared pieces of the CNN training-throughput benchmark (``bench_cnn.py``, ``cnn_minigrad.py``).

The protocol is the one of the peer scripts in ``<work>/shared/bench`` (PyTorch, DeZero, the
textbook NumPy layers): the textbook SimpleConvNet, He-normal weights drawn from
``np.random.RandomState(seed)``, the same per-epoch batch order, Adam(lr 1e-3), batch 100,
float32, and one JSON line per run with the same field names.

NumPy is imported inside the functions, never at module level: a runner must set the BLAS
thread variables before NumPy loads its BLAS.

Run as a script, this module measures NumPy's float32 GEMM speed in a fresh process::

    python benchmarks/_common.py sgemm --threads 2
    python benchmarks/_common.py blas --threads 2    # only which BLAS and kernel NumPy uses
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

BATCH = 100
LR, BETA1, BETA2, EPS = 1e-3, 0.9, 0.999, 1e-8
N_TEST = 10_000

REPO = Path(__file__).resolve().parents[1]
WORK = Path(__file__).resolve().parents[2]
PEERS_DIR = WORK / "shared" / "bench"
MNIST_DIR = WORK / "shared" / "datasets" / "mnist"

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# OpenBLAS kernel overrides: when set they can pin NumPy to a slower kernel than the CPU
# supports. They are removed together (or kept together) for every child process alike.
BLAS_OVERRIDE_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

# SimpleConvNet: Conv(1→30, 5×5, stride 1, no padding) → ReLU → MaxPool(2, 2) →
# Affine(4320→100) → ReLU → Affine(100→10) → softmax cross-entropy, on 1×28×28 images.
C, H, W = 1, 28, 28
FN, FH, FW = 30, 5, 5
OH, OW = H - FH + 1, W - FW + 1          # 24, 24
POOLED = FN * (OH // 2) * (OW // 2)      # 4320
HIDDEN, CLASSES = 100, 10


def train_flops_per_image() -> int:
    """Matrix-product FLOPs of one training step, per image (2 FLOPs per multiply-add).

    Per image, with K = C·FH·FW = 25 and P = OH·OW = 576 output positions:
      conv forward GEMM   col (P, K) · w (K, FN)                      2·P·K·FN       = 864,000
      conv dW GEMM        colᵀ (K, P) · dy (P, FN)                    2·P·K·FN       = 864,000
      (no conv dx: the first layer's input is the data, which needs no gradient)
      affine1 forward     x (1, 4320) · W (4320, 100)                 2·4320·100     = 864,000
      affine1 dX, dW      dy · Wᵀ and xᵀ · dy                         2 · 2·4320·100 = 1,728,000
      affine2 forward     x (1, 100) · W (100, 10)                    2·100·10       = 2,000
      affine2 dX, dW      dy · Wᵀ and xᵀ · dy                         2 · 2·100·10   = 4,000
    Total 4,326,000 FLOPs per image. Element-wise work (bias, ReLU, pooling, softmax, Adam)
    is not counted: it is memory-bound and small in FLOPs.
    """
    k = C * FH * FW
    p = OH * OW
    conv = 2 * p * k * FN
    affine1 = 2 * POOLED * HIDDEN
    affine2 = 2 * HIDDEN * CLASSES
    return 2 * conv + 3 * affine1 + 3 * affine2


def inference_flops_per_image() -> int:
    """Matrix-product FLOPs of one forward pass per image: conv, affine1 and affine2 GEMMs."""
    return 2 * OH * OW * C * FH * FW * FN + 2 * POOLED * HIDDEN + 2 * HIDDEN * CLASSES


def init_params(seed: int) -> dict:
    """He-normal weights (std = sqrt(2 / fan_in)), zero biases; affine W is (in, out).

    The same draws, in the same order, as the peers' ``common.init_params``.
    """
    import numpy as np

    rs = np.random.RandomState(seed)
    f32 = np.float32
    return {
        "W1": (rs.randn(FN, C, FH, FW) * np.sqrt(2.0 / (C * FH * FW))).astype(f32),
        "b1": np.zeros(FN, f32),
        "W2": (rs.randn(POOLED, HIDDEN) * np.sqrt(2.0 / POOLED)).astype(f32),
        "b2": np.zeros(HIDDEN, f32),
        "W3": (rs.randn(HIDDEN, CLASSES) * np.sqrt(2.0 / HIDDEN)).astype(f32),
        "b3": np.zeros(CLASSES, f32),
    }


def epoch_orders(n: int, epochs: int, seed: int, batch: int = BATCH) -> list:
    """One (steps, batch) index array per epoch, as the peers' ``common.epoch_orders``.

    With ``batch == 100`` the orders are identical to the peers'; another batch size cuts the
    same permutations differently.
    """
    import numpy as np

    rs = np.random.RandomState(seed + 1)
    steps = n // batch
    return [rs.permutation(n)[: steps * batch].reshape(steps, batch) for _ in range(epochs)]


def set_thread_env(threads: int) -> None:
    """Size every BLAS / OpenMP pool; call before NumPy is imported."""
    for var in THREAD_VARS:
        os.environ[var] = str(threads)


def child_env(threads: int, keep_blas_env: bool) -> dict:
    """The environment of every benchmark child: same thread count, same BLAS variables."""
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = str(threads)
    if not keep_blas_env:
        for var in BLAS_OVERRIDE_VARS:
            env.pop(var, None)
    return env


def blas_env() -> dict:
    keys = BLAS_OVERRIDE_VARS + ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    return {k: os.environ.get(k) for k in keys}


def blas_info() -> list:
    """The BLAS libraries NumPy loaded, with their kernel ("architecture"), or [] if unknown.

    Uses threadpoolctl when it is installed; the benchmark does not require it.
    """
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keys = ("internal_api", "architecture", "version", "num_threads", "threading_layer")
    return [{k: lib.get(k) for k in keys} for lib in threadpool_info()
            if lib.get("user_api") == "blas"]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def report(impl, args, *, train_seconds, losses, first_step_seconds, test_accuracy,
           eval_seconds, load_seconds, rss_after_load_mb, batch=BATCH, step_seconds=None,
           extra=None) -> dict:
    """Print (and append to ``args.out``) one JSON line with the peers' field names."""
    import numpy as np

    ru = resource.getrusage(resource.RUSAGE_SELF)
    n_seen = len(losses) * batch
    steps_per_epoch = len(losses) // max(args.epochs, 1)
    last_epoch = losses[-steps_per_epoch:] if steps_per_epoch else losses
    res = {
        "impl": impl,
        "images": args.images,
        "epochs": args.epochs,
        "threads": args.threads,
        "batch": batch,
        "steps": len(losses),
        "train_seconds": round(train_seconds, 3),
        "images_per_second": round(n_seen / train_seconds, 1),
        "seconds_per_10k_images": round(train_seconds * 10000 / n_seen, 3),
        "first_step_seconds": round(first_step_seconds, 4),
        "final_train_loss": round(float(np.mean(losses[-10:])), 4),
        "last_epoch_mean_loss": round(float(np.mean(last_epoch)), 4),
        "epoch_mean_losses": [
            round(float(np.mean(losses[i * steps_per_epoch:(i + 1) * steps_per_epoch])), 4)
            for i in range(args.epochs)] if steps_per_epoch else [],
        "test_accuracy": round(test_accuracy, 4),
        "eval_seconds": round(eval_seconds, 3),
        "load_seconds": round(load_seconds, 3),
        "rss_after_load_mb": round(rss_after_load_mb, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "minor_page_faults": ru.ru_minflt,
        "involuntary_ctx_switches": ru.ru_nivcsw,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "blas_env": blas_env(),
    }
    if step_seconds:
        q = np.percentile(np.asarray(step_seconds), [10, 50, 90, 100])
        res["step_ms_p10_p50_p90_max"] = [round(float(v) * 1e3, 2) for v in q]
    if extra:
        res.update(extra)
    line = json.dumps(res)
    print(line, flush=True)
    if args.out:
        with open(args.out, "a") as f:
            f.write(line + "\n")
    return res


# ----------------------------------------------------------------------------------------------
# sgemm peak (run in a child process with the benchmark's thread environment)

# (M, K, N) of the float32 products timed: a large square one for the peak, then the
# SimpleConvNet's own GEMMs at batch 100 (B·P = 57,600 conv output rows).
SGEMM_SHAPES = {
    "square_2048": (2048, 2048, 2048),
    "conv_fwd": (BATCH * OH * OW, C * FH * FW, FN),        # col · w
    "conv_dw": (C * FH * FW, BATCH * OH * OW, FN),         # colᵀ · dy
    "affine1_fwd": (BATCH, POOLED, HIDDEN),                # x · W
    "affine1_dx": (BATCH, HIDDEN, POOLED),                 # dy · Wᵀ
    "affine1_dw": (POOLED, BATCH, HIDDEN),                 # xᵀ · dy
}


def measure_sgemm(repeats: int = 7, min_seconds: float = 0.05) -> dict:
    """GFLOP/s of ``np.matmul`` on float32 for each shape in ``SGEMM_SHAPES``: the median of
    ``repeats`` timings, each averaging enough calls to last ``min_seconds``."""
    import numpy as np

    rng = np.random.default_rng(0)
    out = {}
    for name, (m, k, n) in SGEMM_SHAPES.items():
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        c = np.empty((m, n), np.float32)
        np.matmul(a, b, out=c)  # warm-up: thread pool start, page faults
        calls = 1
        while True:
            t0 = time.perf_counter()
            for _ in range(calls):
                np.matmul(a, b, out=c)
            if time.perf_counter() - t0 >= min_seconds or calls >= 1 << 16:
                break
            calls *= 2
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(calls):
                np.matmul(a, b, out=c)
            times.append((time.perf_counter() - t0) / calls)
        seconds = float(np.median(times))
        out[name] = {"shape_mkn": [m, k, n], "seconds": seconds,
                     "gflops": 2.0 * m * k * n / seconds / 1e9}
    return out


def _main() -> None:
    ap = argparse.ArgumentParser(description="NumPy float32 GEMM speed in a fresh process")
    ap.add_argument("what", choices=["sgemm", "blas"],
                    help="sgemm: GEMM speeds and BLAS info; blas: BLAS info only")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    set_thread_env(args.threads)
    import numpy as np

    res = {"numpy": np.__version__, "blas": blas_info(), "blas_env": blas_env(),
           "threads": args.threads}
    if args.what == "sgemm":
        res["sgemm"] = measure_sgemm(args.repeats)
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    sys.exit(_main())
