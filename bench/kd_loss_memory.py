"""Peak memory of the KD loss path (forward + backward) at a real LM head: plain vs chunked vs fused.

* ``plain``   — ``[N, V]`` logits for student and teacher, log-probs and their gradients all materialised;
* ``chunked`` — ``losses_reference.chunked_distill_sums``: logits chunk by chunk under activation checkpointing (the
  backward recomputes each chunk);
* ``fused``   — ``losses.fused_objective_sums`` (what the trainer uses): each chunk's gradient is computed inside
  the forward, so no chunk's logits outlive it and the backward only scales stored gradients.

Every method must hold its inputs and their gradients (student and teacher heads, hidden states, the head's and
the hidden states' gradients): that *floor* is computed from the tensor sizes, and the figure compared is the peak
*above* it, ``overhead`` (measured as the peak above a baseline taken after the inputs exist, less the gradients'
bytes; the total printed is floor + overhead). Each mode runs in its own process (CPU: resident set size,
sampled); values and gradients are compared in one more process, plain first.

    python bench/kd_loss_memory.py --vocab 151936 --hidden 1536 --positions 4096    # a Qwen2.5-1.5B-like head
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import torch

from cotdistill.compute import MemoryMonitor
from cotdistill.losses import LossConfig, OnlineRows, combine, distill_sums, fused_objective_sums
from cotdistill.losses_reference import chunked_distill_sums

MODES = ("plain", "chunked", "fused")


def inputs(args, device):
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(args.positions, args.hidden, generator=g).to(device).requires_grad_()
    weight = (torch.randn(args.vocab, args.hidden, generator=g) * 0.05).to(device).requires_grad_()
    t_hidden = torch.randn(args.positions, args.hidden, generator=g).to(device)
    t_weight = (torch.randn(args.vocab, args.hidden, generator=g) * 0.05).to(device)
    targets = torch.randint(0, args.vocab, (args.positions,), generator=g).to(device)
    return hidden, weight, t_hidden, t_weight, targets


def floor_bytes(args) -> int:
    """Inputs and the gradients any method returns: 2 heads + 1 head gradient, 2 hidden + 1 hidden gradient."""
    return 4 * (3 * args.vocab * args.hidden + 3 * args.positions * args.hidden) + 8 * args.positions


def gradient_bytes(args) -> int:
    return 4 * (args.vocab * args.hidden + args.positions * args.hidden)


def run_loss(mode, args, device, given=None):
    hidden, weight, t_hidden, t_weight, targets = given or inputs(args, device)
    cfg = LossConfig(chunk_size=args.chunk if mode != "plain" else 0)
    if mode == "fused":
        loss, _, _ = fused_objective_sums(hidden, weight, targets, cfg, vocab=args.vocab,
                                          teacher=OnlineRows(t_hidden, t_weight))
    elif mode == "chunked":
        loss = combine(*chunked_distill_sums(hidden, weight, targets, cfg, vocab=args.vocab,
                                             teacher=OnlineRows(t_hidden, t_weight)), cfg)
    else:
        with torch.no_grad():
            t_logits = t_hidden @ t_weight.T
        loss = combine(*distill_sums(hidden @ weight.T, t_logits, targets, cfg), cfg)
        del t_logits
    loss.backward()
    return loss.detach(), hidden.grad, weight.grad


def measure(mode, args) -> dict:
    """The inputs are made, and the runtime warmed on a tiny problem, before the baseline: the peak above it is
    the gradients plus the method's own overhead, which is the peak less the gradients' bytes."""
    device = torch.device(args.device)
    tiny = argparse.Namespace(**{**vars(args), "vocab": 64, "positions": 8, "hidden": 8, "chunk": 4})
    run_loss(mode, tiny, device)
    given = inputs(args, device)
    monitor = MemoryMonitor(device, interval=0.0005).start()
    start = time.perf_counter()
    loss, _, _ = run_loss(mode, args, device, given)
    seconds = time.perf_counter() - start
    above = monitor.stop()
    return {"mode": mode, "peak_bytes": above + floor_bytes(args) - gradient_bytes(args),
            "overhead": max(above - gradient_bytes(args), 1), "seconds": seconds, "loss": loss.item()}


def compare(args) -> dict:
    """Relative loss differences and max gradient differences of chunked and fused against plain (in float32)."""
    device = torch.device(args.device)
    ref = run_loss("plain", args, device)
    out = {}
    for mode in ("chunked", "fused"):
        got = run_loss(mode, args, device)
        out[mode] = {"loss_rel_diff": abs(got[0].item() - ref[0].item()) / abs(ref[0].item()),
                     "max_grad_diff": max((a - b).abs().max().item() for a, b in zip(ref[1:], got[1:])),
                     "max_grad": max(b.abs().max().item() for b in ref[1:])}
        del got
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocab", type=int, default=32768)
    parser.add_argument("--positions", type=int, default=2048)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--chunk", type=int, default=256)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--skip-compare", action="store_true", help="memory only (the comparison runs plain again)")
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(compare(args) if args.mode == "compare" else measure(args.mode, args)))
        return
    base = [sys.executable, __file__, f"--vocab={args.vocab}", f"--positions={args.positions}",
            f"--hidden={args.hidden}", f"--chunk={args.chunk}", f"--device={args.device}"]

    def child(mode: str) -> dict:
        done = subprocess.run(base + [f"--mode={mode}"], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{mode} failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    runs = {m: child(m) for m in MODES}
    floor = floor_bytes(args)
    mib = 2**20
    for m, r in runs.items():
        print(f"{m:>8}: peak {r['peak_bytes'] / mib:9.1f} MiB  overhead above the {floor / mib:.0f} MiB floor "
              f"{r['overhead'] / mib:9.1f} MiB  {r['seconds']:6.1f} s  loss {r['loss']:.6f}")
    diffs = {} if args.skip_compare else child("compare")
    for m, d in diffs.items():
        print(f"{m:>8} vs plain: loss rel diff {d['loss_rel_diff']:.2e}, max grad diff {d['max_grad_diff']:.2e} "
              f"(largest gradient {d['max_grad']:.2e})")
    plain, fused, chunked = runs["plain"], runs["fused"], runs["chunked"]
    fields = {
        "overhead_reduction": plain["overhead"] / fused["overhead"],
        "overhead_reduction_chunked": plain["overhead"] / chunked["overhead"],
        "total_reduction": plain["peak_bytes"] / max(fused["peak_bytes"], 1),
        "floor_mib": floor / mib, "plain_mib": plain["peak_bytes"] / mib, "chunked_mib": chunked["peak_bytes"] / mib,
        "fused_mib": fused["peak_bytes"] / mib, "plain_s": plain["seconds"], "chunked_s": chunked["seconds"],
        "fused_s": fused["seconds"],
    }
    for m, d in diffs.items():
        fields[f"{m}_loss_rel_diff"] = d["loss_rel_diff"]
        fields[f"{m}_max_grad_diff"] = d["max_grad_diff"]
    text = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())
    print(f"RESULT {text} vocab={args.vocab} hidden={args.hidden} positions={args.positions} chunk={args.chunk} "
          f"device={args.device}")


if __name__ == "__main__":
    main()
