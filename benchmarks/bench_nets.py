"""Training and inference speed of six networks: minigrad against PyTorch, on the CPU.

The networks, each built twice (minigrad, and its PyTorch twin with the same layers, shapes
and initial weights), trained with Adam(lr 1e-3) at batch 100 in float32 on MNIST:

- ``simple``: the textbook SimpleConvNet (``minigrad.models.SimpleConvNet``): conv 5×5 30 →
  ReLU → pool → affine 4320→100 → ReLU → affine 100→10;
- ``deep``: the textbook's chapter-8 DeepConvNet (``minigrad.models.DeepConvNet``): six 3×3
  convolutions 16, 16, 32, 32 (padding 2), 64, 64 with ReLU, a 2×2 pooling after every second,
  affine 1024→50, ReLU, dropout 0.5, affine 50→10, dropout 0.5;
- ``mlp``: the textbook's MultiLayerNet 784-100-100-100-100-10 with ReLU;
- ``bn``: a BatchNorm CNN, (conv 3×3 → BatchNorm2d → ReLU → pool) with 16 and then 32 channels
  (convolutions without bias), affine 1568→10.
- ``mobile``: a MobileNet-style CNN, the convolutions of the networks users compose beyond the
  book's: conv 3×3 stride 2 1→32, then two depthwise-separable blocks (depthwise 3×3 →
  BatchNorm2d → ReLU → 1×1 conv → BatchNorm2d → ReLU; 32→64, then 64→128 with the depthwise
  convolution at stride 2), global average pooling, affine 128→10; BatchNorm after every
  convolution (which then has no bias).
- ``encoder``: a transformer-style encoder over the image's 28 rows as 28 tokens of 28 pixels:
  tokens·W (28→128), two pre-LayerNorm blocks (x + attention(LayerNorm(x)), single head,
  softmax(q·kᵀ/√128)·v and an output matrix; then x + MLP(LayerNorm(x)), 128→256→128 with
  ReLU), a final LayerNorm, the mean over the tokens, affine 128→10. Its matrices are used as
  x @ W with W (in, out) in both frameworks.
 and framework, each (network, framework) in a process of its own:
training images/s (passes over ``--images`` images until ``--min-seconds`` are timed; a step
is tensors from the batch, forward, loss, backward and Adam; the first step, which allocates
and starts thread pools, is left out), inference images/s at batch 100 (eval mode, no graph,
forward + argmax over up to ``--images`` test images, repeated until ``--min-seconds``) and the
latency of one forward pass at batch 1 and batch 8 (median of ``--latency-calls`` calls), the
child's peak RSS (VmHWM), and the GFLOP/s achieved on the network's matrix products as a
fraction of this machine's float32 GEMM peak (``_common.measure_sgemm``, in a child with the
same threads).

The protocol is bench_cnn's (``_common``): every child gets the same OMP/OPENBLAS/MKL thread
counts (and ``torch.set_num_threads`` / ``minigrad.set_num_threads``), the OpenBLAS kernel
overrides are removed unless ``--keep-blas-env``; a warm-up round that is not counted, then
``--rounds`` rounds, in each of which every network runs minigrad then PyTorch (PyTorch first
in every other round); the ratios are medians of the per-round ratios minigrad / PyTorch.

    python benchmarks/bench_nets.py --rounds 5 --images 2000           # 2 threads
    python benchmarks/bench_nets.py --threads 1 --nets simple deep --json nets.json
    python benchmarks/bench_nets.py --profile deep --threads 1         # where minigrad's time goes
"""

from __future__ import annotations

import argparse
import builtins
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

sys.path.insert(0, str(_common.REPO))  # measure this checkout of minigrad
import bench_cnn  # noqa: E402  (its child runner, sgemm probe, medians and revision)

HERE = Path(__file__).resolve().parent
FRAMEWORKS = ("minigrad", "torch")
LATENCY_BATCHES = (1, 8)


def default_mnist_dir():
    """``shared/datasets/mnist`` beside the checkout or beside any folder above it."""
    for parent in _common.REPO.parents:
        folder = parent / "shared" / "datasets" / "mnist"
        if folder.is_dir():
            return folder
    return _common.MNIST_DIR

# ----------------------------------------------------------------------------------------------
# The networks, as lists of layers both frameworks build from:
#   ("conv", C, FN, K, padding, bias)  K×K convolution, stride 1
#   ("conv", C, FN, K, padding, bias, stride, groups)
#   ("gap",)                           global average pooling, (N, C, H, W) → (N, C, 1, 1)
#   ("bn", C)                          BatchNorm2d
#   ("relu",) ("pool",) ("flatten",)   ReLU, 2×2 max pooling with stride 2, (N, …) → (N, D)
#   ("affine", D, M)                   Linear D → M
#   ("dropout", p)
#   ("rows",)                          (N, 1, H, W) → (N, H, W): H tokens of W values
#   ("tokens", d, D)                   x @ W + b per token, W (d, D)
#   ("block", D, H)                    a pre-LayerNorm encoder block (attention, MLP D→H→D)
#   ("ln", D) ("token_mean",)          LayerNorm over D; the mean over the tokens → (N, D)

DEEP_CONVS = ((1, 16, 1), (16, 16, 1), (16, 32, 1), (32, 32, 2), (32, 64, 1), (64, 64, 1))


def _deep_layers():
    layers = []
    for i, (c, fn, pad) in enumerate(DEEP_CONVS, start=1):
        layers += [("conv", c, fn, 3, pad, True), ("relu",)]
        if i % 2 == 0:
            layers.append(("pool",))
    return layers + [("flatten",), ("affine", 1024, 50), ("relu",), ("dropout", 0.5),
                     ("affine", 50, 10), ("dropout", 0.5)]


NETS = {
    "simple": ("SimpleConvNet", [
        ("conv", 1, 30, 5, 0, True), ("relu",), ("pool",), ("flatten",),
        ("affine", 4320, 100), ("relu",), ("affine", 100, 10)]),
    "deep": ("DeepConvNet", _deep_layers()),
    "mlp": ("MLP 784-100×4-10", [("flatten",)] + [
        layer for d in (784, 100, 100, 100) for layer in (("affine", d, 100), ("relu",))]
        + [("affine", 100, 10)]),
    "bn": ("BatchNorm CNN", [
        ("conv", 1, 16, 3, 1, False), ("bn", 16), ("relu",), ("pool",),
        ("conv", 16, 32, 3, 1, False), ("bn", 32), ("relu",), ("pool",), ("flatten",),
        ("affine", 32 * 7 * 7, 10)]),
    "mobile": ("MobileNet-style CNN", [
        ("conv", 1, 32, 3, 1, False, 2, 1), ("bn", 32), ("relu",),
        ("conv", 32, 32, 3, 1, False, 1, 32), ("bn", 32), ("relu",),
        ("conv", 32, 64, 1, 0, False), ("bn", 64), ("relu",),
        ("conv", 64, 64, 3, 1, False, 2, 64), ("bn", 64), ("relu",),
        ("conv", 64, 128, 1, 0, False), ("bn", 128), ("relu",),
        ("gap",), ("flatten",), ("affine", 128, 10)]),
    "encoder": ("Transformer encoder", [
        ("rows",), ("tokens", 28, 128), ("block", 128, 256), ("block", 128, 256), ("ln", 128),
        ("token_mean",), ("affine", 128, 10)]),
}

# Targets for minigrad per network: (name, metric, minimum of the median ratio). Every metric
# is a speed ratio minigrad / PyTorch (latency: PyTorch's ms over minigrad's) except RSS,
# which is minigrad's MB over PyTorch's and must stay at or below 1.
TARGETS = (
    ("training ≥ 1.2×", "train", 1.2),
    ("inference batch 100 ≥ 1.0×", "infer", 1.0),
    ("latency batch 1 ≥ 1.0×", "latency_1", 1.0),
    ("latency batch 8 ≥ 1.0×", "latency_8", 1.0),
)


def _conv(layer):
    """A conv layer with its stride and groups: (kind, C, FN, K, padding, bias, stride,
    groups), stride and groups 1 unless the layer gives them."""
    return tuple(layer) + (1, 1)[len(layer) - 6:]


def param_specs(layers):
    """[(kind, shape, fan_in)] of the parameters in the order both frameworks hold them:
    per layer its weight then its bias (kind "weight", "bias", "bn_weight", "bn_bias"; the
    encoder's "matrix" (in, out) in both frameworks, "ln_weight", "ln_bias")."""
    specs = []
    for layer in layers:
        if layer[0] == "conv":
            _, c, fn, k, _, bias, _, groups = _conv(layer)
            specs.append(("weight", (fn, c // groups, k, k), c // groups * k * k))
            if bias:
                specs.append(("bias", (fn,), None))
        elif layer[0] == "affine":
            _, d, m = layer
            specs += [("weight", (d, m), d), ("bias", (m,), None)]
        elif layer[0] == "bn":
            specs += [("bn_weight", (layer[1],), None), ("bn_bias", (layer[1],), None)]
        elif layer[0] == "tokens":
            _, d, D = layer
            specs += [("matrix", (d, D), d), ("bias", (D,), None)]
        elif layer[0] == "block":
            _, D, H = layer
            specs += [("ln_weight", (D,), None), ("ln_bias", (D,), None)]
            for _ in "qkvo":
                specs += [("matrix", (D, D), D), ("bias", (D,), None)]
            specs += [("ln_weight", (D,), None), ("ln_bias", (D,), None),
                      ("matrix", (D, H), D), ("bias", (H,), None),
                      ("matrix", (H, D), H), ("bias", (D,), None)]
        elif layer[0] == "ln":
            specs += [("ln_weight", (layer[1],), None), ("ln_bias", (layer[1],), None)]
    return specs


def init_params(layers, seed):
    """He-normal weights (std √(2 / fan_in)) drawn from ``np.random.RandomState(seed)`` in
    layer order, zero biases, BatchNorm and LayerNorm scale 1 and shift 0; float32, affine W
    as (in, out).
    For SimpleConvNet the draws are those of ``_common.init_params`` (the peers')."""
    import numpy as np

    rs = np.random.RandomState(seed)
    out = []
    for kind, shape, fan_in in param_specs(layers):
        if kind in ("weight", "matrix"):
            out.append((rs.randn(*shape) * np.sqrt(2.0 / fan_in)).astype(np.float32))
        elif kind in ("bn_weight", "ln_weight"):
            out.append(np.ones(shape, np.float32))
        else:
            out.append(np.zeros(shape, np.float32))
    return out


def flops_per_image(layers, input_chw=(1, 28, 28)):
    """(training, inference) matrix-product FLOPs per image, 2 per multiply-add.

    Inference: each convolution's product, 2·OH·OW·(C/groups·K·K)·FN, and each affine layer's,
    2·D·M.
    Training adds each layer's dW product (the same count) and its dX product (the same count
    again), except for the first layer when its input is the data, which needs no gradient.
    The encoder: tokens·W, 2·T·d·D; per block the four D×D matrices and the MLP's two,
    2·T·(4·D² + 2·D·H), and the two attention products q·kᵀ and a·v, 2·2·T²·D (T tokens).
    Element-wise work (bias, ReLU, pooling, BatchNorm, LayerNorm, dropout, softmax, Adam) is
    not counted.
    For SimpleConvNet this is ``_common.train_flops_per_image()``.
    """
    _, h, w = input_chw
    train = infer = 0
    first = True
    for layer in layers:
        kind = layer[0]
        if kind == "conv":
            _, cin, fn, k, pad, _, stride, groups = _conv(layer)
            h, w = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
            f = 2 * h * w * (cin // groups) * k * k * fn
        elif kind == "affine":
            f = 2 * layer[1] * layer[2]
        elif kind == "tokens":
            f = 2 * h * layer[1] * layer[2]                 # h tokens of w = d pixels
        elif kind == "block":
            _, D, H = layer
            f = 2 * h * (4 * D * D + 2 * D * H) + 2 * 2 * h * h * D
        else:
            if kind == "pool":
                h, w = h // 2, w // 2
            elif kind == "gap":
                h = w = 1
            continue
        infer += f
        train += f * (2 if first else 3)
        first = False
    return train, infer


# ----------------------------------------------------------------------------------------------
# Building the networks (inside a child: NumPy and the framework load there)


def build_minigrad(net, params):
    """The minigrad network (the library's model for simple / deep) with ``params`` loaded."""
    import minigrad.models
    from minigrad import nn

    layers = NETS[net][1]
    if net == "simple":
        model = minigrad.models.SimpleConvNet()
    elif net == "deep":
        model = minigrad.models.DeepConvNet()
    else:
        model = nn.Sequential(*modules(nn, layers))
    named = list(model.named_parameters())
    specs = param_specs(layers)
    if len(named) != len(specs):
        raise SystemExit(f"bench_nets: minigrad {net} has {len(named)} parameters, the layer "
                         f"list {len(specs)}")
    for (name, p), (kind, shape, _), value in zip(named, specs, params):
        if tuple(p.shape) != shape or not name.endswith(kind.replace("bn_", "")):
            raise SystemExit(f"bench_nets: minigrad {net} parameter {name} {tuple(p.shape)} "
                             f"does not match the layer list's {kind} {shape}")
        p.data = value.copy()
    return model


def modules(nn, layers):
    """The modules of a layer list, from ``nn`` (``minigrad.nn`` or ``torch.nn``: the layers
    used here have the same names and constructor arguments in both)."""
    mods = []
    for layer in layers:
        kind = layer[0]
        if kind == "conv":
            _, c, fn, k, pad, bias, stride, groups = _conv(layer)
            mods.append(nn.Conv2d(c, fn, k, stride=stride, padding=pad, bias=bias,
                                  groups=groups))
        elif kind == "bn":
            mods.append(nn.BatchNorm2d(layer[1]))
        elif kind == "relu":
            mods.append(nn.ReLU())
        elif kind == "pool":
            mods.append(nn.MaxPool2d(2, stride=2))
        elif kind == "gap":
            mods.append(nn.AdaptiveAvgPool2d(1))
        elif kind == "flatten":
            mods.append(nn.Flatten())   # C order in both
        elif kind == "affine":
            mods.append(nn.Linear(layer[1], layer[2]))
        elif kind == "dropout":
            mods.append(nn.Dropout(layer[1]))
        elif kind in ("rows", "tokens", "block", "ln", "token_mean"):
            mods.append(_encoder_module(nn, layer))
    return mods


def _encoder_module(nn, layer):
    """A module of the encoder, for ``nn`` (``minigrad.nn`` or ``torch.nn``), written once
    for both: the same parameters (W (in, out), used as x @ W) in the same order, the same
    functional calls (layer_norm, softmax, relu have the same names and arguments in both)."""
    if nn.__name__.startswith("torch"):
        import torch
        import torch.nn.functional as F  # noqa: N812

        def param(*shape):
            return nn.Parameter(torch.zeros(shape))

        def swap_last(t):
            return t.transpose(1, 2)
    else:
        import numpy as np

        from minigrad import functional as F  # noqa: N812

        def param(*shape):
            return nn.Parameter(np.zeros(shape, np.float32))

        def swap_last(t):
            return t.transpose(0, 2, 1)

    kind = layer[0]

    class Rows(nn.Module):
        """(N, 1, H, W) → (N, H, W): H tokens of W values."""

        def forward(self, x):
            return x.reshape(x.shape[0], x.shape[2], x.shape[3])

    class Tokens(nn.Module):
        def __init__(self, d, D):  # noqa: N803
            super().__init__()
            self.tokens_matrix, self.tokens_bias = param(d, D), param(D)

        def forward(self, x):
            return x @ self.tokens_matrix + self.tokens_bias

    class Norm(nn.Module):
        def __init__(self, D):  # noqa: N803
            super().__init__()
            self.D, self.ln_weight, self.ln_bias = D, param(D), param(D)

        def forward(self, x):
            return F.layer_norm(x, (self.D,), self.ln_weight, self.ln_bias)

    class Block(nn.Module):
        """x + attention(LayerNorm(x)), then x + MLP(LayerNorm(x))."""

        def __init__(self, D, H):  # noqa: N803
            super().__init__()
            self.D = D
            self.attn_ln_weight, self.attn_ln_bias = param(D), param(D)
            self.q_matrix, self.q_bias = param(D, D), param(D)
            self.k_matrix, self.k_bias = param(D, D), param(D)
            self.v_matrix, self.v_bias = param(D, D), param(D)
            self.o_matrix, self.o_bias = param(D, D), param(D)
            self.mlp_ln_weight, self.mlp_ln_bias = param(D), param(D)
            self.up_matrix, self.up_bias = param(D, H), param(H)
            self.down_matrix, self.down_bias = param(H, D), param(D)

        def forward(self, x):
            h = F.layer_norm(x, (self.D,), self.attn_ln_weight, self.attn_ln_bias)
            q = h @ self.q_matrix + self.q_bias
            k = h @ self.k_matrix + self.k_bias
            v = h @ self.v_matrix + self.v_bias
            a = F.softmax((q @ swap_last(k)) * (1.0 / self.D ** 0.5), -1)
            x = x + (a @ v) @ self.o_matrix + self.o_bias
            h = F.layer_norm(x, (self.D,), self.mlp_ln_weight, self.mlp_ln_bias)
            return x + F.relu(h @ self.up_matrix + self.up_bias) @ self.down_matrix \
                + self.down_bias

    class TokenMean(nn.Module):
        def forward(self, x):
            return x.mean(1)

    if kind == "rows":
        return Rows()
    if kind == "tokens":
        return Tokens(layer[1], layer[2])
    if kind == "block":
        return Block(layer[1], layer[2])
    if kind == "ln":
        return Norm(layer[1])
    return TokenMean()


def build_torch(net, params):
    """The PyTorch twin: ``torch.nn.Sequential`` of the same layers, ``params`` copied in."""
    import torch
    from torch import nn

    mods = modules(nn, NETS[net][1])
    model = nn.Sequential(*mods)
    tparams = list(model.parameters())
    specs = param_specs(NETS[net][1])
    assert len(tparams) == len(specs), (net, len(tparams), len(specs))
    with torch.no_grad():
        for p, (kind, shape, _), value in zip(tparams, specs, params):
            if kind == "weight" and len(shape) == 2:
                value = value.T.copy()          # torch's Linear weight is (out, in)
            assert tuple(p.shape) == value.shape, (net, tuple(p.shape), value.shape)
            p.copy_(torch.from_numpy(value))
    return model


# ----------------------------------------------------------------------------------------------
# A child: one network on one framework


class Framework:
    """What the measuring loop needs from a framework: a step, a forward pass, modes."""

    def __init__(self, name, net, params, threads, seed):
        self.name = name
        if name == "minigrad":
            import minigrad
            import minigrad.optim
            from minigrad import functional as F
            from minigrad import nn

            minigrad.set_num_threads(threads)
            nn.manual_seed(seed)          # dropout masks
            self.mg, self.F = minigrad, F
            self.model = build_minigrad(net, params)
            self.opt = minigrad.optim.Adam(self.model.parameters(), lr=_common.LR,
                                           betas=(_common.BETA1, _common.BETA2),
                                           eps=_common.EPS)
            self.version = minigrad.__version__
        else:
            import torch

            torch.set_num_threads(threads)
            torch.manual_seed(seed)
            self.torch = torch
            self.model = build_torch(net, params)
            self.opt = torch.optim.Adam(self.model.parameters(), lr=_common.LR,
                                        betas=(_common.BETA1, _common.BETA2), eps=_common.EPS)
            self.version = torch.__version__

    def step(self, x, t):
        """One training step (batch → tensors, forward, loss, backward, Adam); the loss."""
        if self.name == "minigrad":
            loss = self.F.softmax_cross_entropy(self.model(self.mg.Tensor(x)), t)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            return loss.item()
        torch = self.torch
        self.opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(self.model(torch.from_numpy(x)),
                                                 torch.from_numpy(t))
        loss.backward()
        self.opt.step()
        return loss.item()

    def inference(self):
        """A context in which forward passes record no graph."""
        if self.name == "minigrad":
            return self.mg.no_grad()
        return self.torch.inference_mode()

    def forward(self, x):
        """Logits as a NumPy array (call inside ``inference()``)."""
        if self.name == "minigrad":
            return self.model(self.mg.Tensor(x)).data
        return self.model(self.torch.from_numpy(x)).numpy()

    def dtypes(self):
        if self.name == "minigrad":
            return sorted({str(p.data.dtype) for p in self.model.parameters()})
        return sorted({str(p.dtype).replace("torch.", "") for p in self.model.parameters()})


def batch_orders(n, seed):
    """Batch index arrays without end: epoch after epoch, the orders of
    ``_common.epoch_orders(n, epochs, seed)`` (the peers' for the first epochs)."""
    import numpy as np

    rs = np.random.RandomState(seed + 1)
    steps = n // _common.BATCH
    while True:
        yield from rs.permutation(n)[: steps * _common.BATCH].reshape(steps, _common.BATCH)


def peak_rss_mb():
    """This process's peak resident set (VmHWM), in MB.

    ``getrusage``'s ``ru_maxrss`` is kept across ``execve``, so a child started by a parent
    that holds a lot of memory would report the parent's peak; VmHWM belongs to the address
    space the child got at exec. ``ru_maxrss`` is the fallback where /proc is absent.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0      # kB
    except OSError:
        pass
    return _common.peak_rss_mb()


def run_worker(args):
    """Train, infer and time one network on one framework; print one JSON line."""
    import numpy as np

    t0 = time.perf_counter()
    data = {k: np.load(Path(args.data_dir) / f"{k}.npy") for k in ("xtr", "ttr", "xte", "tte")}
    load_s = time.perf_counter() - t0
    xtr, ttr, xte, tte = data["xtr"], data["ttr"], data["xte"], data["tte"]
    rss_load = _common.current_rss_mb()
    params = init_params(NETS[args.net][1], args.seed)
    fw = Framework(args.worker, args.net, params, args.threads, args.seed)
    del params

    # training: passes over the images in the peers' batch order (each pass a new
    # permutation, as _common.epoch_orders draws them) until --min-seconds have been timed
    losses, step_s = [], []
    for idx in batch_orders(len(xtr), args.seed):
        x, t = xtr[idx], ttr[idx]
        ts = time.perf_counter()
        losses.append(fw.step(x, t))
        step_s.append(time.perf_counter() - ts)
        if len(losses) % (len(xtr) // _common.BATCH) == 0 and \
                sum(step_s[1:]) >= args.min_seconds:
            break
    if not all(np.isfinite(losses)):
        raise SystemExit(f"bench_nets: {args.worker} {args.net}: the loss is not finite")
    timed = step_s[1:] if len(step_s) > 1 else step_s
    train_ips = len(timed) * _common.BATCH / sum(timed)

    # inference at batch 100, eval mode (dropout off, BatchNorm's running statistics): passes
    # over the test images until --min-seconds have been timed
    fw.model.eval()
    n_inf = min(len(xte), args.images)
    with fw.inference():
        fw.forward(xte[:_common.BATCH])           # warm-up
        correct = passes = 0
        infer_s = 0.0
        while passes == 0 or infer_s < args.min_seconds:
            ti = time.perf_counter()
            for i in range(0, n_inf, _common.BATCH):
                y = fw.forward(xte[i:i + _common.BATCH])
                if passes == 0:
                    correct += int((y.argmax(axis=1) == tte[i:i + _common.BATCH]).sum())
                else:
                    y.argmax(axis=1)
            infer_s += time.perf_counter() - ti
            passes += 1

        # latency: one forward pass of a batch of b test images
        latency = {}
        for b in LATENCY_BATCHES:
            x = np.ascontiguousarray(xte[:b])
            for _ in range(3):
                fw.forward(x)
            times = []
            for _ in range(args.latency_calls):
                tl = time.perf_counter()
                fw.forward(x)
                times.append(time.perf_counter() - tl)
            q = np.percentile(np.asarray(times) * 1e3, [10, 50, 90])
            latency[str(b)] = {"ms_median": round(float(q[1]), 4),
                               "ms_p10_p90": [round(float(q[0]), 4), round(float(q[2]), 4)]}

    dtypes = fw.dtypes()
    if dtypes != ["float32"]:
        raise SystemExit(f"bench_nets: {args.worker} {args.net} left float32: {dtypes}")
    ru = resource.getrusage(resource.RUSAGE_SELF)
    res = {
        "framework": args.worker, "net": args.net, "version": fw.version,
        "threads": args.threads, "images": len(xtr), "batch": _common.BATCH,
        "steps": len(losses),
        "epochs": round(len(losses) * _common.BATCH / len(xtr), 2),
        "train_images_per_second": round(train_ips, 1),
        "first_step_seconds": round(step_s[0], 4),
        "step_ms_p10_p50_p90": [round(float(v) * 1e3, 3)
                                for v in np.percentile(np.asarray(timed), [10, 50, 90])],
        "first_loss": round(losses[0], 6),
        "final_train_loss": round(float(np.mean(losses[-10:])), 4),
        "inference_images": n_inf,
        "inference_passes": passes,
        "inference_images_per_second": round(passes * n_inf / infer_s, 1),
        "test_accuracy": round(correct / n_inf, 4),
        "latency": latency,
        "load_seconds": round(load_s, 3),
        "rss_after_load_mb": round(rss_load, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "involuntary_ctx_switches": ru.ru_nivcsw,
        "dtype": dtypes[0],
    }
    print(json.dumps(res), flush=True)


# ----------------------------------------------------------------------------------------------
# Profile: where minigrad's training step spends its time, per op and per module


def run_profile(args):
    import numpy as np

    from minigrad.profiler import profile

    data_dir = Path(args.data_dir)
    xtr = np.load(data_dir / "xtr.npy")
    ttr = np.load(data_dir / "ttr.npy")
    fw = Framework("minigrad", args.net, init_params(NETS[args.net][1], args.seed),
                   args.threads, args.seed)
    batches = batch_orders(len(xtr), args.seed)
    steps = args.profile_steps
    for _ in range(3):
        idx = next(batches)
        fw.step(xtr[idx], ttr[idx])
    t0 = time.perf_counter()
    with profile() as prof:
        for _ in range(steps):
            idx = next(batches)
            fw.step(xtr[idx], ttr[idx])
    total = time.perf_counter() - t0
    print(f"# minigrad {NETS[args.net][0]}, {steps} training steps of batch {_common.BATCH}, "
          f"{args.threads} thread(s): {total / steps * 1e3:.2f} ms per step with per-op timing on")
    for group in ("op", "module"):
        print(f"\n# by {group}")
        print(prof.table(group_by=group))


# ----------------------------------------------------------------------------------------------
# The parent


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS), metavar="NET",
                    help=f"networks, of {', '.join(NETS)} (default: all)")
    ap.add_argument("--frameworks", nargs="+", default=list(FRAMEWORKS), choices=FRAMEWORKS,
                    metavar="NAME", help="minigrad and/or torch (default: both)")
    ap.add_argument("--images", type=int, default=2000,
                    help="training images (one pass) and at most as many test images")
    ap.add_argument("--threads", type=int, default=2,
                    help="threads of every child (BLAS / OpenMP, torch.set_num_threads, "
                         "minigrad.set_num_threads); 1 for the one-thread figures")
    ap.add_argument("--rounds", type=int, default=5, help="measured rounds (after the warm-up)")
    ap.add_argument("--warmup", type=int, default=1, help="rounds run first and not counted")
    ap.add_argument("--min-seconds", type=float, default=1.0,
                    help="training repeats whole passes over the images, and inference over "
                         "the test images, until this many seconds are timed")
    ap.add_argument("--latency-calls", type=int, default=100,
                    help="forward passes timed per latency batch size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default=str(default_mnist_dir()),
                    help="folder with the four MNIST IDX files; minigrad's embedded subset "
                         "when it holds none (or with --subset)")
    ap.add_argument("--subset", action="store_true", help="use minigrad's embedded MNIST subset")
    ap.add_argument("--keep-blas-env", action="store_true",
                    help="leave OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE as they are for the children")
    ap.add_argument("--no-sgemm", action="store_true", help="skip the GEMM peak measurement")
    ap.add_argument("--json", default=None, metavar="PATH", help="write the results as JSON")
    ap.add_argument("--timeout", type=float, default=600, help="seconds allowed per child")
    ap.add_argument("--profile", choices=list(NETS), default=None, metavar="NET",
                    help="instead of the benchmark, profile minigrad's training steps on NET")
    ap.add_argument("--profile-steps", type=int, default=30, metavar="STEPS",
                    help="training steps profiled (after 3 warm-up steps)")
    # a child's own arguments
    ap.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    ap.add_argument("--net", choices=list(NETS), help=argparse.SUPPRESS)
    ap.add_argument("--data-dir", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.rounds < 1 or args.warmup < 0 or args.threads < 1 or args.latency_calls < 1:
        ap.error("--rounds, --threads and --latency-calls must be ≥ 1, --warmup ≥ 0")
    if args.images < _common.BATCH:
        ap.error(f"--images {args.images} is smaller than one batch of {_common.BATCH}")
    return args


def prepare_data(args, folder):
    """Write the first ``--images`` training and test images and labels as .npy files, which
    every child loads the same way (no framework's loader in the timed processes)."""
    import numpy as np

    import minigrad.data

    if args.subset or minigrad.data.find_mnist(args.data) is None:
        (xtr, ttr), (xte, tte) = minigrad.data.load_mnist(subset=True)
        source = "minigrad's embedded subset"
    else:
        (xtr, ttr), (xte, tte) = minigrad.data.load_mnist(args.data, download=False)
        source = str(args.data)
    if args.images > len(xtr):
        raise SystemExit(f"bench_nets: --images {args.images} > {len(xtr)} training images in "
                         f"{source}")
    arrays = {"xtr": xtr[:args.images].astype(np.float32), "ttr": ttr[:args.images],
              "xte": xte[:args.images].astype(np.float32), "tte": tte[:args.images]}
    for key, a in arrays.items():
        if key.startswith("t"):
            a = a.argmax(axis=1) if a.ndim == 2 else a
            a = a.astype(np.int64)
        np.save(Path(folder) / f"{key}.npy", np.ascontiguousarray(a), allow_pickle=False)
    return source, len(arrays["xte"])


def child_command(args, framework, net, folder):
    return [sys.executable, str(Path(__file__).resolve()), "--worker", framework, "--net", net,
            "--data-dir", str(folder), "--images", str(args.images), "--threads",
            str(args.threads), "--seed", str(args.seed), "--latency-calls",
            str(args.latency_calls), "--min-seconds", str(args.min_seconds)]


def _ratio(a, b):
    return a / b if a and b else None


def metric(res, name):
    """The value of one metric in a child's result; speeds: higher is better."""
    if name == "train":
        return res["train_images_per_second"]
    if name == "infer":
        return res["inference_images_per_second"]
    if name.startswith("latency_"):
        return res["latency"][name.split("_")[1]]["ms_median"]
    if name == "rss":
        return res["peak_rss_mb"]
    raise KeyError(name)


def round_ratio(mg, tc, name):
    """minigrad / PyTorch as a speed ratio (PyTorch's ms / minigrad's ms for latency;
    minigrad's MB / PyTorch's for RSS)."""
    a, b = metric(mg, name), metric(tc, name)
    return _ratio(b, a) if name.startswith("latency_") else _ratio(a, b)


METRICS = ("train", "infer", "latency_1", "latency_8", "rss")


def summarise(runs, nets, frameworks, peak_gflops):
    """Per network: medians per framework and the medians of the per-round ratios."""
    median = bench_cnn.median
    out = {}
    for net in nets:
        train_f, infer_f = flops_per_image(NETS[net][1])
        s = {"title": NETS[net][0], "train_flops_per_image": train_f,
             "inference_flops_per_image": infer_f, "frameworks": {}}
        for fw in frameworks:
            rows = [r[net][fw] for r in runs if r.get(net, {}).get(fw)]
            if not rows:
                s["frameworks"][fw] = {"runs": 0}
                continue
            x = {"runs": len(rows)}
            for m in METRICS:
                vals = [metric(row, m) for row in rows]
                x[m] = median(vals)
                x[m + "_min_max"] = [min(vals), max(vals)]
            x["train_gflops"] = x["train"] * train_f / 1e9
            x["inference_gflops"] = x["infer"] * infer_f / 1e9
            if peak_gflops:
                x["train_fraction_of_peak"] = x["train_gflops"] / peak_gflops
                x["inference_fraction_of_peak"] = x["inference_gflops"] / peak_gflops
            x["test_accuracy"] = median([row["test_accuracy"] for row in rows])
            x["final_train_loss"] = median([row["final_train_loss"] for row in rows])
            x["first_loss"] = rows[0]["first_loss"]
            x["version"] = rows[0]["version"]
            s["frameworks"][fw] = x
        pairs = [(r[net]["minigrad"], r[net]["torch"]) for r in runs
                 if r.get(net, {}).get("minigrad") and r.get(net, {}).get("torch")]
        if pairs:
            s["ratio"] = {}
            for m in METRICS:
                per_round = [round_ratio(a, b, m) for a, b in pairs]
                per_round = [v for v in per_round if v is not None]
                s["ratio"][m] = {"median": median(per_round),
                                 "per_round": [round(v, 3) for v in per_round]}
            # equal weights and batch: the first losses agree unless dropout draws its masks
            s["first_loss_difference"] = abs(pairs[0][0]["first_loss"] - pairs[0][1]["first_loss"])
            s["has_dropout"] = any(layer[0] == "dropout" for layer in NETS[net][1])
            s["targets"] = targets(s["ratio"])
        out[net] = s
    return out


def targets(ratio):
    res = []
    for what, m, minimum in TARGETS:
        r = ratio.get(m, {}).get("median")
        res.append({"target": what, "metric": m, "ratio": r, "minimum": minimum,
                    "met": None if r is None else r >= minimum})
    r = ratio.get("rss", {}).get("median")
    res.append({"target": "peak RSS ≤ PyTorch's", "metric": "rss", "ratio": r, "maximum": 1.0,
                "met": None if r is None else r <= 1.0})
    return res


def print_table(result, file=sys.stdout):
    def print(*a):  # noqa: A001
        builtins.print(*a, file=file)

    fmt = bench_cnn.fmt
    cfg, m = result["config"], result["machine"]
    print(f"\n{cfg['images']} training images at batch 100 (passes until {cfg['min_seconds']:g} s "
          f"are timed), up to {cfg['images']} test images at batch 100, latency at batch "
          f"{'/'.join(map(str, LATENCY_BATCHES))}; "
          f"{cfg['threads']} thread(s); medians of {cfg['rounds']} rounds (+{cfg['warmup']} "
          f"warm-up); data: {cfg['data']}")
    print(f"machine: {m['cpu']}, nproc {m['nproc']}, numpy {m['numpy']}, BLAS {m['blas']}; "
          f"minigrad at {cfg['minigrad_revision']}")
    load = m.get("loadavg_1m_before_runs")
    if load:
        print(f"1-min load average before each child: median {load['median']:.1f}, "
              f"max {load['max']:.1f}")
        if load["median"] > m["nproc"] + 1:  # our own child accounts for up to ~nproc
            print(f"WARNING: the machine was busy (load above its {m['nproc']} CPUs): threads "
                  f"that spin (PyTorch's OpenMP) or sleep when late (minigrad's) fare very "
                  f"differently then; these ratios do not describe an idle machine")
    peak = result.get("sgemm")
    if peak:
        print(f"float32 GEMM peak {peak['peak_gflops']:.1f} GFLOP/s (np.matmul 2048³)")
    head = (f"{'network':<21}{'framework':<10}{'train img/s':>12}{'×':>7}{'infer img/s':>12}"
            f"{'×':>7}{'b1 ms':>8}{'×':>7}{'b8 ms':>8}{'×':>7}{'train GF/s':>11}{'%peak':>7}"
            f"{'RSS MB':>8}{'×':>7}")
    print(head)
    print("-" * len(head))
    for s in result["summary"].values():
        for fw, x in s["frameworks"].items():
            if not x.get("runs"):
                print(f"{s['title']:<21}{fw:<10}  (no successful run)")
                continue
            ratio = s.get("ratio", {}) if fw == "minigrad" else {}

            def r(name, ratio=ratio):
                return fmt(ratio.get(name, {}).get("median"), ".2f") if ratio else ""

            print(f"{s['title']:<21}{fw:<10}{fmt(x['train'], ',.0f'):>12}{r('train'):>7}"
                  f"{fmt(x['infer'], ',.0f'):>12}{r('infer'):>7}"
                  f"{fmt(x['latency_1'], '.3f'):>8}{r('latency_1'):>7}"
                  f"{fmt(x['latency_8'], '.3f'):>8}{r('latency_8'):>7}"
                  f"{fmt(x['train_gflops'], '.1f'):>11}"
                  f"{fmt(x.get('train_fraction_of_peak'), '.1%'):>7}"
                  f"{fmt(x['rss'], ',.0f'):>8}{r('rss'):>7}")
    print("× = median of the per-round ratios minigrad / PyTorch (speed: > 1 is minigrad faster; "
          "latency: PyTorch's ms / minigrad's; RSS: minigrad's MB / PyTorch's)")
    for s in result["summary"].values():
        if "ratio" not in s:
            continue
        rt = s["ratio"]
        print(f"{s['title']}: per round training {rt['train']['per_round']}, inference "
              f"{rt['infer']['per_round']}, batch 1 {rt['latency_1']['per_round']}; first-step "
              f"loss differs by {s['first_loss_difference']:.1e}"
              + (" (dropout masks differ)" if s["has_dropout"] else ""))
        print("  targets: " + "; ".join(
            f"{t['target']} {fmt(t['ratio'], '.2f')} "
            f"{'n/a' if t['met'] is None else ('met' if t['met'] else 'NOT met')}"
            for t in s["targets"]))
    for note in result["notes"]:
        print(f"note: {note}")
    print(f"command: {result['command']}   ({result['wall_seconds']:.0f} s)")


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
    with tempfile.TemporaryDirectory(prefix="bench_nets_") as folder:
        source, n_test = prepare_data(args, folder)
        if args.profile:
            args.net, args.data_dir = args.profile, folder
            _common.set_thread_env(args.threads)
            return run_profile(args)
        frameworks = list(dict.fromkeys(args.frameworks))
        sgemm_runs = [] if args.no_sgemm else [bench_cnn.probe("sgemm", args, env)]
        runs, failures = [], {}
        for r in range(args.warmup + args.rounds):
            counted = r >= args.warmup
            label = f"round {r - args.warmup + 1}/{args.rounds}" if counted else "warm-up"
            order = frameworks if r % 2 == 0 else frameworks[::-1]
            results = {}
            for net in args.nets:
                for fw in order:
                    load = os.getloadavg()[0]
                    tc = time.perf_counter()
                    res, err = bench_cnn.run_child(child_command(args, fw, net, folder), env,
                                                   args.timeout)
                    child_s = time.perf_counter() - tc
                    if err:
                        failures.setdefault(f"{net}/{fw}", []).append(err)
                        log(f"{label:>12} {net:<7}{fw:<9} FAILED: {err}")
                        continue
                    res["loadavg_1m_before"] = round(load, 2)
                    res["child_seconds"] = round(child_s, 2)
                    results.setdefault(net, {})[fw] = res
                    log(f"{label:>12} {net:<7}{fw:<9} train {res['train_images_per_second']:>8,.0f}"
                        f" img/s  infer {res['inference_images_per_second']:>8,.0f} img/s  "
                        f"b1 {res['latency']['1']['ms_median']:.3f} ms  "
                        f"b8 {res['latency']['8']['ms_median']:.3f} ms  "
                        f"RSS {res['peak_rss_mb']:,.0f} MB  ({child_s:.0f} s)")
            if counted:
                runs.append(results)
        if not args.no_sgemm:
            sgemm_runs.append(bench_cnn.probe("sgemm", args, env))
    for key, errs in failures.items():
        notes.append(f"{key}: {len(errs)} failed run(s), last: {errs[-1]}")

    good = [s for s in sgemm_runs if s]
    sgemm = None
    if good:
        sgemm = {"peak_gflops": max(s["sgemm"]["square_2048"]["gflops"] for s in good),
                 "note": "np.matmul float32 2048³ in a child with the same threads; best of "
                         "the measurements before and after the rounds, each a median of 7"}
        blas = good[0]["blas"]
    else:
        blas = (bench_cnn.probe("blas", args, env) or {}).get("blas", [])
    blas_desc = ", ".join(f"{b.get('internal_api')} {b.get('version')} kernel "
                          f"{b.get('architecture')}" for b in blas) or "unknown (no threadpoolctl)"
    loads = [res["loadavg_1m_before"] for r in runs for net in r.values() for res in net.values()]
    summary = summarise(runs, args.nets, frameworks, sgemm["peak_gflops"] if sgemm else None)
    result = {
        "command": " ".join(["python", "benchmarks/bench_nets.py"]
                            + (list(argv) if argv is not None else sys.argv[1:])),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "config": {"nets": args.nets, "frameworks": frameworks, "images": args.images,
                   "test_images": n_test, "threads": args.threads, "rounds": args.rounds,
                   "warmup": args.warmup, "latency_calls": args.latency_calls,
                   "min_seconds": args.min_seconds,
                   "seed": args.seed, "data": source,
                   "minigrad_revision": bench_cnn.minigrad_revision(),
                   "blas_env_kept": args.keep_blas_env},
        "machine": {"cpu": _common.cpu_model(), "nproc": os.cpu_count(),
                    "python": platform.python_version(),
                    "numpy": _numpy_version(), "blas": blas_desc,
                    "loadavg_1m_before_runs": ({"median": statistics.median(loads),
                                                "max": max(loads)} if loads else None)},
        "sgemm": sgemm,
        "summary": summary,
        "notes": notes,
        "runs": runs,
        "wall_seconds": time.perf_counter() - started,
    }
    print_table(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return result


def _numpy_version():
    import numpy as np

    return np.__version__


if __name__ == "__main__":
    _ARGS = parse_args()
    if _ARGS.worker or _ARGS.profile:
        _common.set_thread_env(_ARGS.threads)    # before NumPy loads its BLAS
    main()
