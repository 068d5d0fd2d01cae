"""Time each layer of the textbook CNN in minigrad beside torch.nn.functional, one process each.

The layers and shapes of the textbook's SimpleConvNet at batch 100, float32 (summed in the
table's last row):

    conv2d         x (100, 1, 28, 28), w (30, 1, 5, 5), b (30,)   stride 1, padding 0
    relu           (100, 30, 24, 24)
    max_pool2d     (100, 30, 24, 24), 2×2, stride 2
    affine         (100, 4320) · (4320, 100) + b
    relu           (100, 100)
    affine         (100, 100) · (100, 10) + b
    softmax_cross_entropy   logits (100, 10), integer labels

then the element-wise layers of bench_nets.py's BatchNorm CNN and DeepConvNet at batch 100:
batch_norm in training and in evaluation (running statistics kept by each library) on the BN
CNN's (100, 16, 28, 28) and (100, 32, 14, 14), ReLU on those, and 2×2 max pooling with stride 2
on them and on DeepConvNet's (100, 32, 16, 16) and (100, 64, 8, 8). Their inputs are half
zeros, as after a ReLU, so pooling meets ties. Then, on those four shapes, ReLU (on the two not
yet timed), 2×2 average pooling with stride 2, and dropout with p = 0.5 in training; and global
average pooling (adaptive_avg_pool2d to 1×1) on two of them.

``--set wide`` times instead the layers of networks users compose beyond the book's, at the
sizes of a small CIFAR-style CNN (batch 64 images of 32 channels, 32×32), a transformer-style
block (128 rows of 512 features) and a 1000-class head (256 rows): 3×3, strided, 1×1,
depthwise (groups = channels, at stride 1 and 2) and transposed convolutions, an affine layer
512→512, layer_norm and group_norm, sigmoid, tanh, leaky_relu, elu, softplus, softmax and
log_softmax over 1000 scores, cross entropy, binary cross entropy with logits, MSE, 3×3 max
pooling with stride 2 and 1 and 3×3 average pooling with stride 2 (padding 1, overlapping
windows), global average pooling, a sum over H and W, and a batched matrix product
(``WIDE_LAYERS`` lists the shapes).

Memory layout: ``--channels-last`` gives every 4-D input and every 4-D upstream gradient to both
libraries in channels-last memory, as a convolution computed in that layout returns them:
minigrad gets the (N, C, H, W) view ``a.transpose(0, 2, 3, 1)`` made C-contiguous and transposed
back, torch ``t.contiguous(memory_format=torch.channels_last)``. The values are the same; a run
with and a run without the option compare the two layouts, each against torch on its layout.
``--layout-ab`` compares minigrad with itself instead: one process (no torch) holds each layer
twice, on C-contiguous inputs and on channels-last ones, and takes their samples in turn as
above; the ratio channels-last / contiguous is the median over the pairs. Layers without a
4-D input of more than one channel are skipped (their layouts coincide).

For every layer it times the forward pass alone (recorded on the tape, as in training) and the
forward pass followed by backward with a fixed upstream gradient, for minigrad and, when torch
is installed, for ``torch.nn.functional``. As in training, the conv input (the images) needs no
gradient; every other layer's input does.

Protocol: each library is timed in a process of its own, a worker that loads only that library
(``--worker minigrad|torch``, run by this script). Both libraries keep threads of their own that
outlive a call: minigrad's worker threads, and torch's OpenMP threads, which spin for a while
after each call waiting for more work. In one process a library's spinning threads hold a core
while the other library is timed (minigrad's ReLU on (100, 30, 24, 24) forward took 0.47 ms
alone and about 1.0 ms with torch sampled in between), so the two never share a process.
Each of ``--rounds R`` rounds starts one worker per library and takes the samples from them in
turn: for every layer and phase, sample k of one library, then sample k of the other, the first
one changing from pair to pair (and from round to round), so that the two samples of a pair
were taken within a few ms of each other on the same machine. A worker answers only once its
process is quiet (no thread using more than a tenth of a core: torch's OpenMP threads spin for
about 10 ms after a call), so a sample never runs beside the other library's spinning threads.
Each worker builds the same inputs from the same seeds, and the upstream gradient of each layer
from a generator seeded by the layer's output shape, so both libraries get identical arrays
(the parent checks the gradients' sums agree). For every layer a worker runs a warm-up call and
calibrates the number of calls that make a sample last about ``--sample-seconds`` (10 ms), for
each phase. The table gives, per library, the median over all samples of all rounds; the ratio
minigrad / torch is the median over all pairs of the ratio of the pair's two samples, and "per
round" the same median within each round, to show the spread. The speed of a shared machine
drifts by tens of percent from one second to the next; a ratio within a pair cancels that
drift, which the ratio of two medians taken at different times does not (the JSON also keeps
the ratio of the medians, ``ratio_of_medians_*``).

Threads: every worker gets OMP/OPENBLAS/MKL_NUM_THREADS set to ``--threads`` before NumPy or
torch loads; minigrad gets ``minigrad.set_num_threads`` and torch ``torch.set_num_threads`` with
the same number. Default: $OMP_NUM_THREADS or $OPENBLAS_NUM_THREADS if set, else the cores this
process may run on (the defaults of minigrad and OpenBLAS). While minigrad runs on more than one
thread it sets NumPy's OpenBLAS to one thread and splits its big ops over its own threads.

Clocks: ``--clock wall`` (default) is elapsed time. ``--clock cpu`` is the CPU time of the whole
worker process (``time.process_time``: every thread, minigrad's and torch's workers included),
which leaves out the time the process waits while other jobs hold the cores. With ``--threads
1`` it is the stable figure on a shared machine; with more threads it is the sum over the
threads, i.e. the CPU cost of a call rather than its latency, and counts threads that spin
while they wait for work.

BLAS environment: when OPENBLAS_CORETYPE or OPENBLAS_L2_SIZE is set, OpenBLAS can be pinned to
a slower kernel than the CPU supports. Both are removed from the workers' environment (pass
``--keep-blas-env`` to keep them); the tests never do.

    python benchmarks/bench_layers.py                  # table
    python benchmarks/bench_layers.py --threads 1 --clock cpu --rounds 5
    python benchmarks/bench_layers.py --repeats 15 --json layers.json
    python benchmarks/bench_layers.py --set wide --threads 1 --clock cpu --rounds 3
    python benchmarks/bench_layers.py --threads 1 --clock cpu --channels-last \
        --only relu,max_pool2d,avg_pool2d,dropout
    python benchmarks/bench_layers.py --threads 1 --clock cpu --layout-ab \
        --only relu,max_pool2d,avg_pool2d,dropout
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout of minigrad
from _common import (  # noqa: E402  (benchmarks/ is on sys.path as the script's folder)
    BLAS_OVERRIDE_VARS,
    blas_info,
    child_env,
    cpu_model,
    set_thread_env,
)

BATCH = 100
LIBRARIES = ("minigrad", "torch")
PHASES = ("fwd", "fwd_bwd")
INPUT_SEED = 0
DY_SEED = 1

# (name, shapes, input arrays by key in make_inputs, which inputs need a gradient). The name is
# also the op: minigrad_fn and torch_fn map it to each library's function.
LAYERS = (
    ("conv2d", "x(100,1,28,28) w(30,1,5,5)", ("images", "w1", "b1"), (False, True, True)),
    ("relu", "(100,30,24,24)", ("conv_out",), (True,)),
    ("max_pool2d", "(100,30,24,24) 2x2 s2", ("pool_in",), (True,)),
    ("affine", "(100,4320)·(4320,100)", ("flat", "w2", "b2"), (True, True, True)),
    ("relu", "(100,100)", ("hidden",), (True,)),
    ("affine", "(100,100)·(100,10)", ("hidden", "w3", "b3"), (True, True, True)),
    ("softmax_cross_entropy", "(100,10) int labels", ("logits", "labels"), (True, False)),
    # The BatchNorm CNN's and DeepConvNet's element-wise layers (bench_nets.py --nets bn deep).
    ("batch_norm", "(100,16,28,28) train", ("bn_in1", "bn_w1", "bn_b1"), (True, True, True)),
    ("batch_norm", "(100,32,14,14) train", ("bn_in2", "bn_w2", "bn_b2"), (True, True, True)),
    ("batch_norm_eval", "(100,16,28,28) eval", ("bn_in1", "bn_w1", "bn_b1"),
     (True, True, True)),
    ("batch_norm_eval", "(100,32,14,14) eval", ("bn_in2", "bn_w2", "bn_b2"),
     (True, True, True)),
    ("relu", "(100,16,28,28)", ("bn_in1",), (True,)),
    ("relu", "(100,32,14,14)", ("bn_in2",), (True,)),
    ("max_pool2d", "(100,16,28,28) 2x2 s2", ("bn_in1",), (True,)),
    ("max_pool2d", "(100,32,14,14) 2x2 s2", ("bn_in2",), (True,)),
    ("max_pool2d", "(100,32,16,16) 2x2 s2", ("deep_pool2",), (True,)),
    ("max_pool2d", "(100,64,8,8) 2x2 s2", ("deep_pool3",), (True,)),
    # The layers after a convolution on the same four shapes (with --channels-last, in the
    # layout such a convolution returns).
    ("relu", "(100,32,16,16)", ("deep_pool2",), (True,)),
    ("relu", "(100,64,8,8)", ("deep_pool3",), (True,)),
    ("avg_pool2d", "(100,16,28,28) 2x2 s2", ("bn_in1",), (True,)),
    ("avg_pool2d", "(100,32,14,14) 2x2 s2", ("bn_in2",), (True,)),
    ("avg_pool2d", "(100,32,16,16) 2x2 s2", ("deep_pool2",), (True,)),
    ("avg_pool2d", "(100,64,8,8) 2x2 s2", ("deep_pool3",), (True,)),
    ("dropout", "(100,16,28,28) p=0.5", ("bn_in1",), (True,)),
    ("dropout", "(100,32,14,14) p=0.5", ("bn_in2",), (True,)),
    ("dropout", "(100,32,16,16) p=0.5", ("deep_pool2",), (True,)),
    ("dropout", "(100,64,8,8) p=0.5", ("deep_pool3",), (True,)),
    ("adaptive_avg_pool2d", "(100,32,14,14) to 1x1", ("bn_in2",), (True,)),
    ("adaptive_avg_pool2d", "(100,64,8,8) to 1x1", ("deep_pool3",), (True,)),
)
TEXTBOOK_LAYERS = {(layer[0], layer[1]) for layer in LAYERS[:7]}   # summed in the table

# ``--set wide``: layers of the networks users compose beyond the book's, at the sizes of a
# small CIFAR-style CNN (batch 64, 32 channels of 32×32), a transformer-style block (128 rows of
# 512 features) and a 1000-class head (256 rows).
WIDE_LAYERS = (
    ("conv2d_3x3", "x(64,64,16,16) w(64,64,3,3) p1", ("x64", "w64", "b64"), (True, True, True)),
    ("conv2d_stride2", "x(64,32,32,32) w(64,32,3,3) s2 p1", ("x32", "w_s2", "b64"),
     (True, True, True)),
    ("conv2d_1x1", "x(64,32,32,32) w(64,32,1,1)", ("x32", "w_1x1", "b64"), (True, True, True)),
    ("conv2d_depthwise", "x(64,32,32,32) w(32,1,3,3) groups=32 p1", ("x32", "w_dw", "b32"),
     (True, True, True)),
    ("conv2d_depthwise_s2", "x(64,64,16,16) w(64,1,3,3) groups=64 s2 p1",
     ("x64", "w_dw64", "b64"), (True, True, True)),
    ("conv_transpose2d", "x(64,64,8,8) w(64,32,4,4) s2 p1", ("x_up", "w_up", "b32"),
     (True, True, True)),
    ("affine", "(128,512)·(512,512)", ("rows", "w512", "b512"), (True, True, True)),
    ("layer_norm", "(128,512) over 512", ("rows", "g512", "b512"), (True, True, True)),
    ("group_norm", "(64,32,32,32) 8 groups", ("x32", "g32", "b32"), (True, True, True)),
    ("sigmoid", "(64,32,32,32)", ("x32",), (True,)),
    ("tanh", "(64,32,32,32)", ("x32",), (True,)),
    ("leaky_relu", "(64,32,32,32) slope 0.01", ("x32",), (True,)),
    ("elu", "(64,32,32,32)", ("x32",), (True,)),
    ("softplus", "(128,512)", ("rows",), (True,)),
    ("softmax", "(256,1000) last axis", ("scores",), (True,)),
    ("log_softmax", "(256,1000) last axis", ("scores",), (True,)),
    ("cross_entropy", "(256,1000) int labels", ("scores", "classes"), (True, False)),
    ("bce_with_logits", "(256,512)", ("bce_z", "bce_t"), (True, False)),
    ("mse_loss", "(256,512)", ("bce_z", "bce_t"), (True, False)),
    ("max_pool2d_3x3", "(64,32,32,32) 3x3 s2 p1", ("x32",), (True,)),
    ("max_pool2d_3x3_s1", "(64,32,32,32) 3x3 s1 p1", ("x32",), (True,)),
    ("avg_pool2d_3x3", "(64,32,32,32) 3x3 s2 p1", ("x32",), (True,)),
    ("adaptive_avg_pool2d", "(64,64,8,8) to 1x1", ("x_up",), (True,)),
    ("sum_hw", "(64,32,32,32) over H, W", ("x32",), (True,)),
    ("matmul", "(64,128,64)·(64,64,128)", ("mm_a", "mm_b"), (True, True)),
)
SETS = {"textbook": LAYERS, "wide": WIDE_LAYERS}
LAYER_NAMES = tuple(dict.fromkeys(layer[0] for layers in SETS.values() for layer in layers))


def default_threads() -> int:
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:          # not on Linux
        return max(1, os.cpu_count() or 1)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description="Per-layer forward and forward+backward times of the textbook CNN, "
                    "minigrad beside torch.nn.functional (float32, batch 100), each library "
                    "in its own process, the samples of the two taken in turn.",
        epilog="OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are removed from the workers' "
               "environment (they can pin OpenBLAS to a slower kernel); --keep-blas-env "
               "keeps them.")
    ap.add_argument("--rounds", type=int, default=5,
                    help="rounds, each with a fresh worker process per library (default 5)")
    ap.add_argument("--repeats", type=int, default=9,
                    help="pairs of samples (one per library, taken in turn) per layer and "
                         "phase in each round")
    ap.add_argument("--threads", type=int, default=None,
                    help="threads of minigrad, torch and every BLAS / OpenMP pool in the "
                         "workers (default: $OMP_NUM_THREADS or $OPENBLAS_NUM_THREADS if set, "
                         "else the cores available)")
    ap.add_argument("--json", metavar="FILE", default=None,
                    help="also write the results as JSON to FILE ('-' for stdout)")
    ap.add_argument("--keep-blas-env", action="store_true",
                    help="keep OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE if set")
    ap.add_argument("--sample-seconds", type=float, default=0.01,
                    help="each sample averages enough calls to last about this long")
    ap.add_argument("--no-torch", action="store_true", help="time minigrad alone")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall: elapsed time (default); cpu: CPU time of the worker process, "
                         "all its threads (time.process_time), which leaves out the time it "
                         "waits while other jobs run; with --threads above 1 that is the sum "
                         "over the threads (CPU cost, spinning included), not the latency")
    ap.add_argument("--channels-last", action="store_true",
                    help="give every 4-D input and upstream gradient in channels-last memory "
                         "(minigrad: an (N, C, H, W) view of an (N, H, W, C) array; torch: "
                         "memory_format=torch.channels_last)")
    ap.add_argument("--layout-ab", action="store_true",
                    help="time minigrad alone, each layer on contiguous and on channels-last "
                         "inputs in one process, samples taken in turn; ratio channels-last / "
                         "contiguous")
    ap.add_argument("--set", choices=tuple(SETS), default="textbook", dest="layer_set",
                    help="textbook: the textbook CNN's layers and the element-wise layers of "
                         "bench_nets' networks (default); wide: convolutions, normalisations, "
                         "activations and losses of the networks users compose beyond the "
                         "book's (batch 64 images of 32 channels, 128×512 rows, 256×1000 "
                         "scores)")
    ap.add_argument("--only", default=None, metavar="NAMES",
                    help="comma-separated layer names to time, from the set's: "
                         + "; ".join(f"{k}: {', '.join(dict.fromkeys(l[0] for l in v))}"
                                     for k, v in SETS.items()))
    ap.add_argument("--worker", choices=LIBRARIES, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.repeats < 1 or args.rounds < 1:
        ap.error("--repeats and --rounds must be positive")
    if args.threads is None:
        args.threads = default_threads()
    if args.threads < 1:
        ap.error("--threads must be positive")
    if args.only:
        names = dict.fromkeys(layer[0] for layer in SETS[args.layer_set])
        unknown = set(args.only.split(",")) - set(names)
        if unknown:
            ap.error(f"unknown layer(s) {sorted(unknown)} in --set {args.layer_set}; choose "
                     f"from {', '.join(names)}")
    return args


def selected_layers(only: str | None, layer_set: str = "textbook") -> list:
    layers = SETS[layer_set]
    if not only:
        return list(layers)
    wanted = set(only.split(","))
    return [layer for layer in layers if layer[0] in wanted]


# ---------------------------------------------------------------------------------- the worker
# NumPy, minigrad and torch are imported inside these functions only: the worker sets the
# thread variables first, and the parent never loads them.


def make_inputs(seed: int = INPUT_SEED) -> dict:
    """The arrays of every layer (float32), drawn in the same order in every worker."""
    import numpy as np

    rng = np.random.default_rng(seed)

    def normal(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def relu_like(a):
        """Half the values set to 0, as after a ReLU (max pooling then meets ties of 0)."""
        return np.maximum(a, 0, out=a)

    return {
        "images": rng.random((BATCH, 1, 28, 28), dtype=np.float32),
        "w1": normal(30, 1, 5, 5, scale=np.sqrt(2 / 25)),
        "b1": normal(30, scale=0.1),
        "conv_out": normal(BATCH, 30, 24, 24),
        "pool_in": normal(BATCH, 30, 24, 24),
        "flat": normal(BATCH, 30, 12, 12),
        "w2": normal(4320, 100, scale=np.sqrt(2 / 4320)),
        "b2": normal(100, scale=0.1),
        "hidden": normal(BATCH, 100),
        "w3": normal(100, 10, scale=np.sqrt(2 / 100)),
        "b3": normal(10, scale=0.1),
        "logits": normal(BATCH, 10, scale=3.0),
        "labels": rng.integers(0, 10, BATCH),
        # drawn after the textbook CNN's arrays, which stay as they were
        "bn_in1": relu_like(normal(BATCH, 16, 28, 28)),
        "bn_in2": relu_like(normal(BATCH, 32, 14, 14)),
        "bn_w1": 1 + normal(16, scale=0.1), "bn_b1": normal(16, scale=0.1),
        "bn_w2": 1 + normal(32, scale=0.1), "bn_b2": normal(32, scale=0.1),
        "deep_pool2": relu_like(normal(BATCH, 32, 16, 16)),
        "deep_pool3": relu_like(normal(BATCH, 64, 8, 8)),
        # --set wide, drawn after the textbook set's arrays, which stay as they were
        "x32": normal(64, 32, 32, 32),
        "x64": normal(64, 64, 16, 16),
        "x_up": normal(64, 64, 8, 8),
        "w64": normal(64, 64, 3, 3, scale=np.sqrt(2 / 576)),
        "w_s2": normal(64, 32, 3, 3, scale=np.sqrt(2 / 288)),
        "w_1x1": normal(64, 32, 1, 1, scale=np.sqrt(2 / 32)),
        "w_dw": normal(32, 1, 3, 3, scale=np.sqrt(2 / 9)),
        "w_up": normal(64, 32, 4, 4, scale=np.sqrt(2 / 1024)),
        "b32": normal(32, scale=0.1), "b64": normal(64, scale=0.1),
        "g32": 1 + normal(32, scale=0.1),
        "rows": normal(128, 512),
        "w512": normal(512, 512, scale=np.sqrt(2 / 512)),
        "g512": 1 + normal(512, scale=0.1), "b512": normal(512, scale=0.1),
        "scores": normal(256, 1000, scale=3.0),
        "classes": rng.integers(0, 1000, 256),
        "bce_z": normal(256, 512, scale=2.0),
        "bce_t": (rng.random((256, 512)) < 0.5).astype(np.float32),
        "mm_a": normal(64, 128, 64), "mm_b": normal(64, 64, 128),
        "w_dw64": normal(64, 1, 3, 3, scale=np.sqrt(2 / 9)),
    }


def upstream_grad(shape: tuple):
    """The fixed upstream gradient of an output of this shape (float32), the same in every
    worker: seeded by the shape, so it needs neither the other library nor a draw order."""
    import numpy as np

    if not shape:
        return np.ones((), np.float32)
    rng = np.random.default_rng([DY_SEED, *shape])
    return rng.standard_normal(shape).astype(np.float32)


def running_stats(make):
    """batch_norm(x, w, b, training) with running statistics (C,) made by ``make(C, fill)``
    the first time a channel count is seen, then updated in place as in training."""
    stats = {}

    def call(f, x, w, b, training):
        C = x.shape[1]
        if C not in stats:
            stats[C] = (make(C, 0.0), make(C, 1.0))
        return f(x, *stats[C], w, b, training=training)
    return call


def minigrad_fn(name: str):
    import numpy as np

    import minigrad.functional as F

    bn = running_stats(lambda C, v: np.full(C, v, np.float32))
    return {
        "batch_norm": lambda x, w, b: bn(F.batch_norm, x, w, b, True),
        "batch_norm_eval": lambda x, w, b: bn(F.batch_norm, x, w, b, False),
        "conv2d": lambda x, w, b: F.conv2d(x, w, b),
        "relu": F.relu,
        "max_pool2d": lambda x: F.max_pool2d(x, 2, 2),
        "avg_pool2d": lambda x: F.avg_pool2d(x, 2, 2),
        "dropout": lambda x: F.dropout(x, 0.5),
        "adaptive_avg_pool2d": lambda x: F.adaptive_avg_pool2d(x, 1),
        "affine": F.affine,
        "softmax_cross_entropy": F.softmax_cross_entropy,
        # --set wide
        "conv2d_3x3": lambda x, w, b: F.conv2d(x, w, b, padding=1),
        "conv2d_stride2": lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1),
        "conv2d_1x1": lambda x, w, b: F.conv2d(x, w, b),
        "conv2d_depthwise": lambda x, w, b: F.conv2d(x, w, b, padding=1, groups=32),
        "conv2d_depthwise_s2": lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1, groups=64),
        "conv_transpose2d": lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1),
        "layer_norm": lambda x, g, b: F.layer_norm(x, (512,), g, b),
        "group_norm": lambda x, g, b: F.group_norm(x, 8, g, b),
        "sigmoid": F.sigmoid,
        "tanh": F.tanh,
        "leaky_relu": lambda x: F.leaky_relu(x, 0.01),
        "elu": F.elu,
        "softplus": F.softplus,
        "softmax": lambda x: F.softmax(x, axis=-1),
        "log_softmax": lambda x: F.log_softmax(x, axis=-1),
        "cross_entropy": F.softmax_cross_entropy,
        "bce_with_logits": F.binary_cross_entropy_with_logits,
        "mse_loss": F.mse_loss,
        "max_pool2d_3x3": lambda x: F.max_pool2d(x, 3, 2, 1),
        "max_pool2d_3x3_s1": lambda x: F.max_pool2d(x, 3, 1, 1),
        "avg_pool2d_3x3": lambda x: F.avg_pool2d(x, 3, 2, 1),
        "sum_hw": lambda x: x.sum(axis=(2, 3)),
        "matmul": lambda a, b: a @ b,
    }[name]


def torch_fn(name: str):
    import torch
    import torch.nn.functional as tf

    bn = running_stats(lambda C, v: torch.full((C,), v))
    return {
        "batch_norm": lambda x, w, b: bn(tf.batch_norm, x, w, b, True),
        "batch_norm_eval": lambda x, w, b: bn(tf.batch_norm, x, w, b, False),
        "conv2d": lambda x, w, b: tf.conv2d(x, w, b),
        "relu": tf.relu,
        "max_pool2d": lambda x: tf.max_pool2d(x, 2, 2),
        "avg_pool2d": lambda x: tf.avg_pool2d(x, 2, 2),
        "dropout": lambda x: tf.dropout(x, 0.5, training=True),
        "adaptive_avg_pool2d": lambda x: tf.adaptive_avg_pool2d(x, 1),
        # The weight arrives as (out, in), transposed once in torch_case.
        "affine": lambda x, wt, b: tf.linear(x.reshape(x.shape[0], -1), wt, b),
        "softmax_cross_entropy": lambda z, t: tf.cross_entropy(z, t),
        # --set wide
        "conv2d_3x3": lambda x, w, b: tf.conv2d(x, w, b, padding=1),
        "conv2d_stride2": lambda x, w, b: tf.conv2d(x, w, b, stride=2, padding=1),
        "conv2d_1x1": lambda x, w, b: tf.conv2d(x, w, b),
        "conv2d_depthwise": lambda x, w, b: tf.conv2d(x, w, b, padding=1, groups=32),
        "conv2d_depthwise_s2": lambda x, w, b: tf.conv2d(x, w, b, stride=2, padding=1,
                                                         groups=64),
        "conv_transpose2d": lambda x, w, b: tf.conv_transpose2d(x, w, b, stride=2, padding=1),
        "layer_norm": lambda x, g, b: tf.layer_norm(x, (512,), g, b),
        "group_norm": lambda x, g, b: tf.group_norm(x, 8, g, b),
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "leaky_relu": lambda x: tf.leaky_relu(x, 0.01),
        "elu": tf.elu,
        "softplus": tf.softplus,
        "softmax": lambda x: torch.softmax(x, -1),
        "log_softmax": lambda x: torch.log_softmax(x, -1),
        "cross_entropy": lambda z, t: tf.cross_entropy(z, t),
        "bce_with_logits": tf.binary_cross_entropy_with_logits,
        "mse_loss": tf.mse_loss,
        "max_pool2d_3x3": lambda x: tf.max_pool2d(x, 3, 2, 1),
        "max_pool2d_3x3_s1": lambda x: tf.max_pool2d(x, 3, 1, 1),
        "avg_pool2d_3x3": lambda x: tf.avg_pool2d(x, 3, 2, 1),
        "sum_hw": lambda x: x.sum(dim=(2, 3)),
        "matmul": lambda a, b: a @ b,
    }[name]


class Case:
    """One layer in one library: call ``run(backward)`` to do one forward (and backward)."""

    def __init__(self, fn, leaves, dy_for):
        self.fn, self.leaves, self.dy_for = fn, leaves, dy_for
        self.dy = None

    def run(self, backward: bool) -> None:
        for leaf in self.leaves:
            leaf.grad = None
        y = self.fn()
        if backward:
            if self.dy is None:
                self.dy = self.dy_for(y)
            y.backward(self.dy)


def to_channels_last(a):
    """a (N, C, H, W) with the same values in channels-last memory: the transpose (0, 3, 1, 2)
    of a C-contiguous (N, H, W, C) array. Arrays of other ranks are returned as they are."""
    import numpy as np

    if a.ndim != 4:
        return a
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def minigrad_case(layer, arrays: dict, channels_last: bool = False) -> Case:
    import minigrad

    layout = to_channels_last if channels_last else (lambda a: a)
    name, _, keys, grads = layer
    inputs = [minigrad.Tensor(layout(arrays[k]), requires_grad=g) if arrays[k].dtype.kind == "f"
              else arrays[k] for k, g in zip(keys, grads)]
    leaves = [t for t in inputs if isinstance(t, minigrad.Tensor) and t.requires_grad]
    fn = minigrad_fn(name)
    return Case(lambda: fn(*inputs), leaves, lambda y: layout(upstream_grad(tuple(y.shape))))


def torch_case(layer, arrays: dict, channels_last: bool = False) -> Case:
    import numpy as np
    import torch

    def layout(t):
        if channels_last and t.dim() == 4:
            return t.contiguous(memory_format=torch.channels_last)
        return t

    name, _, keys, grads = layer
    inputs = []
    for i, (k, g) in enumerate(zip(keys, grads)):
        a = arrays[k]
        if name == "affine" and i == 1:
            a = np.ascontiguousarray(a.T)   # torch keeps a linear layer's weight as (out, in)
        t = layout(torch.from_numpy(np.array(a)))
        inputs.append(t.requires_grad_(g) if t.is_floating_point() else t)
    leaves = [t for t in inputs if t.requires_grad]
    fn = torch_fn(name)
    return Case(lambda: fn(*inputs), leaves,
                lambda y: layout(torch.from_numpy(upstream_grad(tuple(y.shape)))))


def calibrate(case: Case, backward: bool, seconds: float) -> int:
    """Calls per sample so that one sample lasts about ``seconds`` (elapsed)."""
    start = time.perf_counter()
    case.run(backward)
    single = max(time.perf_counter() - start, 1e-6)
    return max(1, int(round(seconds / single)))


def sample(case: Case, backward: bool, calls: int, clock) -> float:
    start = clock()
    for _ in range(calls):
        case.run(backward)
    return (clock() - start) / calls


def settle(window: float = 0.005, limit: float = 0.5) -> float:
    """Wait until no thread of this process uses the CPU any more; returns the seconds waited.

    torch's OpenMP threads spin for several ms after a call, waiting for more work. The other
    library's next sample must not start while they hold a core, so a worker answers only once
    its process has used less than a tenth of a core over a ``window`` of sleep.
    """
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        cpu = time.process_time()
        time.sleep(window)
        if time.process_time() - cpu < window / 10:
            break
    return time.perf_counter() - start


def worker(args) -> None:
    """Time one library's layers in this process, one sample at a time, as the parent asks.

    Requests and answers are JSON lines on stdin and stdout: first an answer with the
    library's versions, then for ``{"prepare": i}`` layer i is set up, warmed up and
    calibrated, and for ``{"sample": phase}`` one sample of that layer is taken.
    """
    set_thread_env(args.threads)       # before NumPy, OpenBLAS or torch's OpenMP loads
    if not args.keep_blas_env:
        for var in BLAS_OVERRIDE_VARS:
            os.environ.pop(var, None)
    import numpy as np

    def answer(obj: dict) -> None:
        print(json.dumps(obj), flush=True)

    lib = args.worker
    if lib == "torch":
        try:
            import torch
        except ImportError as error:
            answer({"library": lib, "unavailable": str(error)})
            return
        torch.set_num_threads(args.threads)
        version, threads_used, make_case = torch.__version__, torch.get_num_threads(), torch_case
    else:
        import minigrad

        minigrad.set_num_threads(args.threads)
        version = getattr(minigrad, "__version__", None)
        threads_used, make_case = minigrad.get_num_threads(), minigrad_case
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    arrays = make_inputs()
    layers = selected_layers(args.only, args.layer_set)
    answer({"library": lib, "version": version, "threads": args.threads,
            "library_threads": threads_used, "numpy": np.__version__, "blas": blas_info()})
    case, calls = None, {}
    for line in sys.stdin:
        request = json.loads(line)
        if "prepare" in request:
            layer = layers[request["prepare"]]
            case = make_case(layer, arrays, args.channels_last)
            case.run(True)                              # draws dy, warms up
            # In C order, so that both libraries' sums add the same numbers in the same order.
            dy = np.ascontiguousarray(case.dy.numpy() if lib == "torch" else case.dy)
            for backward, phase in zip((False, True), PHASES):
                case.run(backward)                      # warm-up, then calibration
                calls[phase] = calibrate(case, backward, args.sample_seconds)
            settle()
            answer({"layer": layer[0], "dy_shape": list(dy.shape),
                    "dy_sum": float(np.sum(dy, dtype=np.float64)), "calls": calls})
        else:
            phase = request["sample"]
            seconds = sample(case, phase == "fwd_bwd", calls[phase], clock)
            answer({"ms": seconds * 1e3, "settle_ms": settle() * 1e3})


def layout_ab(args) -> dict:
    """Each selected layer of minigrad on contiguous and on channels-last inputs, in this
    process: for every phase, ``rounds · repeats`` pairs of samples taken in turn (the first of
    a pair alternating), each sample calibrated to last about ``--sample-seconds``."""
    set_thread_env(args.threads)       # before NumPy or OpenBLAS loads
    if not args.keep_blas_env:
        for var in BLAS_OVERRIDE_VARS:
            os.environ.pop(var, None)
    import numpy as np

    import minigrad

    minigrad.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    arrays = make_inputs()
    layouts = ("contiguous", "channels_last")
    load_start = os.getloadavg()
    rows = []
    for layer in selected_layers(args.only, args.layer_set):
        if not any(arrays[k].ndim == 4 and arrays[k].shape[1] > 1 for k in layer[2]):
            continue
        cases = {lay: minigrad_case(layer, arrays, lay == "channels_last") for lay in layouts}
        calls = {}
        for lay, case in cases.items():
            case.run(True)
            for backward, phase in zip((False, True), PHASES):
                case.run(backward)
                calls[lay, phase] = calibrate(case, backward, args.sample_seconds)
        row = {"layer": layer[0], "shapes": layer[1]}
        for backward, phase in zip((False, True), PHASES):
            samples = {lay: [] for lay in layouts}
            for k in range(args.rounds * args.repeats):
                for lay in (layouts if k % 2 == 0 else layouts[::-1]):
                    samples[lay].append(sample(cases[lay], backward, calls[lay, phase], clock))
            for lay in layouts:
                row[f"{lay}_{phase}_ms"] = median(samples[lay]) * 1e3
            row[f"ratio_{phase}"] = median([c / n for c, n in zip(samples["channels_last"],
                                                                  samples["contiguous"])])
        rows.append(row)
    return {"rows": rows, "threads": args.threads, "clock": args.clock,
            "pairs": args.rounds * args.repeats, "numpy": np.__version__,
            "machine": cpu_model(), "cores": os.cpu_count(), "load_average_start": load_start,
            "load_average": os.getloadavg()}


def layout_table(result: dict) -> str:
    head = ["layer", "shapes", "fwd contiguous ms", "fwd channels-last ms", "ratio",
            "fwd+bwd contiguous ms", "fwd+bwd channels-last ms", "ratio"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in result["rows"]:
        cells = [r["layer"], r["shapes"]]
        for phase in PHASES:
            cells += [f"{r[f'contiguous_{phase}_ms']:.3f}", f"{r[f'channels_last_{phase}_ms']:.3f}",
                      f"{r[f'ratio_{phase}']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- the parent


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def worker_command(args, lib: str) -> list:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", lib,
           "--threads", str(args.threads), "--sample-seconds", str(args.sample_seconds),
           "--clock", args.clock]
    cmd += ["--set", args.layer_set]
    if args.only:
        cmd += ["--only", args.only]
    if args.channels_last:
        cmd.append("--channels-last")
    if args.keep_blas_env:
        cmd.append("--keep-blas-env")
    return cmd


class Worker:
    """One library's worker process, answering one JSON line per request."""

    def __init__(self, args, lib: str, env: dict) -> None:
        self.lib = lib
        # stderr goes straight to ours, so the worker's errors show as they come.
        self.proc = subprocess.Popen(worker_command(args, lib), env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.info = self.read()

    def read(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith("{"):
                return json.loads(line)
        code = self.proc.wait()
        raise SystemExit(f"bench_layers: the {self.lib} worker failed (exit code {code})")

    def ask(self, request: dict) -> dict:
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def median(values) -> float:
    return float(statistics.median(values))


def one_round(args, r: int, libs: list, env: dict, notes: list) -> dict:
    """Start a worker per library and take every layer's samples in turn from each.

    The samples of one layer and phase alternate between the libraries, the first one changing
    with every pair, so the k-th samples of both were taken within a few ms of each other.
    Returns {"workers": {lib: info}, "rows": [{layer, dy, samples {phase: {lib: [ms]}}}]}; a
    worker's info includes the median time it waited to be quiet after a sample.
    """
    workers = {}
    for lib in list(libs):
        worker_ = Worker(args, lib, env)
        if "unavailable" in worker_.info:           # installed, but its import fails
            notes.append(f"torch failed to import ({worker_.info['unavailable']}): timing "
                         "minigrad alone")
            log(f"bench_layers: {notes[-1]}")
            libs.remove(lib)
            worker_.close()
            continue
        workers[lib] = worker_
    rows = []
    settled = {lib: [] for lib in libs}        # ms each worker waited to be quiet after a sample
    start = time.perf_counter()
    try:
        for i, layer in enumerate(selected_layers(args.only, args.layer_set)):
            prepared = {lib: w.ask({"prepare": i}) for lib, w in workers.items()}
            first = prepared[libs[0]]
            for lib in libs[1:]:
                if prepared[lib]["dy_sum"] != first["dy_sum"]:
                    raise SystemExit(f"bench_layers: {lib} did not get the same upstream "
                                     f"gradient as {libs[0]} for layer {i} ({layer[0]})")
            samples = {phase: {lib: [] for lib in libs} for phase in PHASES}
            for phase in PHASES:
                for k in range(args.repeats):
                    order = libs if (r + k) % 2 == 0 else libs[::-1]
                    for lib in order:
                        answer = workers[lib].ask({"sample": phase})
                        samples[phase][lib].append(round(answer["ms"], 5))
                        settled[lib].append(answer["settle_ms"])
            rows.append({"layer": layer[0], "shapes": layer[1], "dy_shape": first["dy_shape"],
                         "dy_sum": first["dy_sum"],
                         "calls": {lib: prepared[lib]["calls"] for lib in libs},
                         "samples_ms": samples})
    finally:
        for w in workers.values():
            w.close()
    log(f"round {r + 1}/{args.rounds}: {time.perf_counter() - start:.1f} s")
    info = {lib: {**w.info, "settle_ms_median": round(median(settled[lib]), 2)}
            for lib, w in workers.items()}
    return {"workers": info, "rows": rows}


def summarise(rounds: list, libs: list) -> list:
    """One row per layer: each library's median over every sample of every round, and the
    ratio minigrad / torch as the median over all pairs of samples taken side by side."""
    rows = []
    for i, layer in enumerate(rounds[0]["rows"]):
        row = {"layer": layer["layer"], "shapes": layer["shapes"]}
        for phase in PHASES:
            per_round = [rnd["rows"][i]["samples_ms"][phase] for rnd in rounds]
            for lib in libs:
                row[f"{lib}_{phase}_samples_ms"] = [t for s in per_round for t in s[lib]]
                row[f"{lib}_{phase}_ms"] = round(median(row[f"{lib}_{phase}_samples_ms"]), 5)
                row[f"{lib}_{phase}_round_medians_ms"] = [round(median(s[lib]), 5)
                                                          for s in per_round]
            if "torch" in libs:
                pairs = [[m / t for m, t in zip(s["minigrad"], s["torch"])] for s in per_round]
                row[f"ratio_{phase}"] = median([q for p in pairs for q in p])
                row[f"ratio_{phase}_rounds"] = [round(median(p), 4) for p in pairs]
                row[f"ratio_of_medians_{phase}"] = (row[f"minigrad_{phase}_ms"]
                                                    / row[f"torch_{phase}_ms"])
        rows.append(row)
    return rows


def run(args) -> dict:
    notes = []
    libs = ["minigrad"]
    if not args.no_torch:
        if importlib.util.find_spec("torch") is None:
            notes.append("torch is not installed: timing minigrad alone")
            log(f"bench_layers: {notes[-1]}")
        else:
            libs.append("torch")
    env = child_env(args.threads, args.keep_blas_env)
    load_start = os.getloadavg()
    rounds = [one_round(args, r, libs, env, notes) for r in range(args.rounds)]
    info = rounds[0]["workers"]
    return {
        "rows": summarise(rounds, libs),
        "threads": args.threads,
        "repeats": args.repeats,
        "rounds": args.rounds,
        "libraries": libs,
        "clock": args.clock,
        "channels_last": args.channels_last,
        "set": args.layer_set,
        "numpy": info["minigrad"]["numpy"],
        "torch": info["torch"]["version"] if "torch" in libs else None,
        "blas": info["minigrad"]["blas"],
        "python": platform.python_version(),
        "machine": cpu_model(),
        "cores": os.cpu_count(),
        "load_average_start": load_start,
        "load_average": os.getloadavg(),
        "blas_env": {k: env.get(k) for k in BLAS_OVERRIDE_VARS},
        "workers": [rnd["workers"] for rnd in rounds],
        "notes": notes,
    }


def table(result: dict) -> str:
    has_torch = result["torch"] is not None
    head = ["layer", "shapes", "fwd ms"]
    if has_torch:
        head += ["torch fwd ms", "ratio", "per round"]
    head += ["fwd+bwd ms"]
    if has_torch:
        head += ["torch fwd+bwd ms", "ratio", "per round"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def spread(ratios):
        return " ".join(f"{v:.2f}" for v in ratios)

    for r in result["rows"]:
        cells = [r["layer"], r["shapes"]]
        for phase in PHASES:
            cells.append(f"{r[f'minigrad_{phase}_ms']:.3f}")
            if has_torch:
                cells += [f"{r[f'torch_{phase}_ms']:.3f}", f"{r[f'ratio_{phase}']:.2f}",
                          spread(r[f"ratio_{phase}_rounds"])]
        lines.append("| " + " | ".join(cells) + " |")
    # The sum of the textbook CNN's per-layer medians, and per round the sum of that round's.
    rows = [r for r in result["rows"] if (r["layer"], r["shapes"]) in TEXTBOOK_LAYERS]
    if not rows:
        return "\n".join(lines)
    cells = ["sum of the textbook CNN's layers", ""]
    for phase in PHASES:
        mg = sum(r[f"minigrad_{phase}_ms"] for r in rows)
        cells.append(f"{mg:.3f}")
        if has_torch:
            th = sum(r[f"torch_{phase}_ms"] for r in rows)
            per_round = [
                sum(ms) / sum(ts) for ms, ts in zip(
                    zip(*(r[f"minigrad_{phase}_round_medians_ms"] for r in rows)),
                    zip(*(r[f"torch_{phase}_round_medians_ms"] for r in rows)))]
            cells += [f"{th:.3f}", f"{mg / th:.2f}", spread(per_round)]
    lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return
    if args.layout_ab:
        result = layout_ab(args)
        print(f"{result['machine']}, {result['cores']} cores; numpy {result['numpy']}; minigrad "
              f"alone, {result['threads']} threads; {result['clock']} clock; contiguous and "
              f"channels-last inputs in one process, samples taken in turn; medians of "
              f"{result['pairs']} samples, ratio = median of the {result['pairs']} pairs; load "
              f"average {result['load_average_start'][0]:.2f} → {result['load_average'][0]:.2f}")
        print(layout_table(result))
        if args.json:
            text = json.dumps(result, indent=1)
            print(text) if args.json == "-" else Path(args.json).write_text(text)
        return
    result = run(args)
    n = result["rounds"] * result["repeats"]
    pairs = f", ratio = median of the {n} side-by-side pairs" if result["torch"] else ""
    print(f"{result['machine']}, {result['cores']} cores; numpy {result['numpy']}, torch "
          f"{result['torch']}, {result['threads']} threads; {result['clock']} clock; "
          f"{'channels-last' if result['channels_last'] else 'contiguous (NCHW)'} inputs; "
          f"{result['rounds']} rounds of one worker process per library, samples taken in "
          f"turn; median of {n} samples per library{pairs}; load average "
          f"{result['load_average_start'][0]:.2f} → {result['load_average'][0]:.2f}")
    print(table(result))
    if args.json == "-":
        print(json.dumps(result))
    elif args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
