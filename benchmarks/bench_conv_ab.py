"""Two versions of minigrad/ops/conv.py in one process, their samples taken in turn, beside
PyTorch: the convolutions of bench_nets' networks at batch 1 and 8, the whole network and
each convolution layer alone.

The old version is a copy of conv.py saved anywhere (``git show main:minigrad/ops/conv.py >
/tmp/conv_main.py``), loaded as a module of its own; its ``Conv2d`` and this checkout's are
swapped into ``minigrad.functional`` in turn (old, new, torch in one round, the order turned
every other round), so the drift of a shared machine falls on all three alike. Before timing,
the two versions' outputs are checked to be the same to the bit. Per (network, batch, mode)
it prints the medians over the rounds of the time per forward pass and the median of the
rounds' ratios new / old; mode ``nograd`` is inference under ``minigrad.no_grad()`` (eval
mode), ``grad`` a forward pass that records the graph. On one thread the clock is the thread's
CPU time (``time.thread_time``), on more the wall clock.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_conv_ab.py /tmp/conv_main.py --nets deep bn
    python benchmarks/bench_conv_ab.py /tmp/conv_main.py --threads 2 --nets deep --no-layers
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", help="a copy of the old minigrad/ops/conv.py")
    parser.add_argument("--nets", nargs="+", default=["deep", "bn"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--no-layers", action="store_true", help="whole networks only")
    args = parser.parse_args()

    import bench_nets
    import numpy as np
    import torch

    import minigrad
    import minigrad.functional as F
    import minigrad.ops.conv as new
    from minigrad import Tensor

    minigrad.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    clock = time.thread_time if args.threads == 1 else time.perf_counter
    spec = importlib.util.spec_from_file_location("conv_old", args.old)
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)
    impl = {"old": old.Conv2d, "new": new.Conv2d}

    def compare(label, mg_call, torch_call, calls):
        outs = {}
        for k, cls in impl.items():
            F.Conv2d = cls
            outs[k] = mg_call().data.copy()
        assert outs["old"].tobytes() == outs["new"].tobytes(), f"{label}: results differ"
        res = {"old": [], "new": [], "torch": []}
        for r in range(args.rounds + 1):                      # round 0 warms up
            for k in (["old", "new", "torch"] if r % 2 else ["new", "torch", "old"]):
                if k != "torch":
                    F.Conv2d = impl[k]
                call = torch_call if k == "torch" else mg_call
                t = clock()
                for _ in range(calls):
                    call()
                if r:
                    res[k].append((clock() - t) / calls * 1e6)
        F.Conv2d = new.Conv2d
        md = {k: statistics.median(v) for k, v in res.items()}
        ratio = statistics.median(n / o for n, o in zip(res["new"], res["old"]))
        print(f"{label:34s} old {md['old']:8.1f} µs  new {md['new']:8.1f} µs  torch "
              f"{md['torch']:8.1f} µs  new/old {ratio:.3f}  new/torch "
              f"{md['new'] / md['torch']:.3f}", flush=True)

    for net in args.nets:
        params = bench_nets.init_params(bench_nets.NETS[net][1], 0)
        model = bench_nets.build_minigrad(net, params)
        model.eval()
        twin = bench_nets.build_torch(net, params)
        twin.eval()
        for B in args.batches:
            x = np.random.default_rng(B).random((B, 1, 28, 28), dtype=np.float32)
            xm, xt = Tensor(x), torch.from_numpy(x)
            calls = max(10, 200 // B)
            for mode in ("nograd", "grad"):
                def mg_call(mode=mode, model=model, xm=xm):
                    if mode == "grad":
                        return model(xm)
                    with minigrad.no_grad():
                        return model(xm)

                def torch_call(mode=mode, twin=twin, xt=xt):
                    with torch.no_grad() if mode == "nograd" else torch.enable_grad():
                        return twin(xt)

                compare(f"{net} batch {B} {mode}", mg_call, torch_call, calls)
            if args.no_layers:
                continue
            # Each convolution alone (no_grad), on the input it meets in the network.
            convs = [m for m in model.modules() if type(m).__name__ == "Conv2d"]
            tconvs = [m for m in twin if type(m).__name__ == "Conv2d"]
            inputs = {}
            def keep(mod, i, o, inputs=inputs):
                inputs.setdefault(id(mod), i[0].detach().clone())

            hooks = [c.register_forward_hook(keep) for c in tconvs]
            with torch.no_grad():
                twin(xt)
            for h in hooks:
                h.remove()
            acts = []
            with minigrad.no_grad():
                y = xm
                for layer in (m for m in model.modules() if not list(m.children())):
                    if type(layer).__name__ == "Conv2d":
                        acts.append(y)
                    y = layer(y)
            for i, (conv, tconv, a) in enumerate(zip(convs, tconvs, acts)):
                ti = inputs[id(tconv)]
                if a.data.shape[1] > 1:
                    ti = ti.contiguous(memory_format=torch.channels_last)

                def mg_layer(conv=conv, a=a):
                    with minigrad.no_grad():
                        return conv(a)

                def torch_layer(tconv=tconv, ti=ti):
                    with torch.no_grad():
                        return tconv(ti)

                C, FN = conv.in_channels, conv.out_channels
                compare(f"{net} b{B} conv{i + 1} {C}→{FN} {a.shape[2]}×{a.shape[3]}",
                        mg_layer, torch_layer, 4 * calls)


if __name__ == "__main__":
    main()
