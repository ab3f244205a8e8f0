"""Peak memory of the KD loss path (forward + backward), chunked vs plain, at a large vocabulary.

The plain path materialises ``[N, V]`` logits for student and teacher and their float32 log-probs; the chunked
path (``cotdistill.losses.chunked_distill_sums``) computes logits from hidden states chunk by chunk under
activation checkpointing. Each mode runs in its own process; values and gradients are compared in a third.

    python bench/kd_loss_memory.py [--vocab 32768] [--positions 2048] [--hidden 512] [--chunk 256]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import torch

from cotdistill.compute import MemoryMonitor
from cotdistill.losses import LossConfig, chunked_distill_sums, combine, distill_sums


def inputs(args, device):
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(args.positions, args.hidden, generator=g).to(device).requires_grad_()
    weight = (torch.randn(args.vocab, args.hidden, generator=g) * 0.05).to(device).requires_grad_()
    t_hidden = torch.randn(args.positions, args.hidden, generator=g).to(device)
    t_weight = (torch.randn(args.vocab, args.hidden, generator=g) * 0.05).to(device)
    targets = torch.randint(0, args.vocab, (args.positions,), generator=g).to(device)
    return hidden, weight, t_hidden, t_weight, targets


def loss_value(mode, args, device):
    hidden, weight, t_hidden, t_weight, targets = inputs(args, device)
    cfg = LossConfig(chunk_size=args.chunk if mode == "chunked" else 0)
    if mode == "chunked":
        ce, kd = chunked_distill_sums(hidden, weight, targets, cfg, vocab=args.vocab, teacher_hidden=t_hidden,
                                      teacher_weight=t_weight)
    else:
        with torch.no_grad():
            t_logits = t_hidden @ t_weight.T
        ce, kd = distill_sums(hidden @ weight.T, t_logits, targets, cfg)
    loss = combine(ce, kd, cfg)
    loss.backward()
    return loss, hidden.grad, weight.grad


def measure(mode, args) -> dict:
    device = torch.device(args.device)
    hidden, weight, t_hidden, t_weight, targets = inputs(args, device)  # warm allocator with inputs' size
    del hidden, weight, t_hidden, t_weight, targets
    monitor = MemoryMonitor(device, interval=0.0005).start()
    loss, _, _ = loss_value(mode, args, device)
    peak = monitor.stop()
    return {"mode": mode, "peak_bytes": peak, "loss": loss.item()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocab", type=int, default=32768)
    parser.add_argument("--positions", type=int, default=2048)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--chunk", type=int, default=256)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(measure(args.mode, args)))
        return
    base = [sys.executable, __file__, f"--vocab={args.vocab}", f"--positions={args.positions}",
            f"--hidden={args.hidden}", f"--chunk={args.chunk}", f"--device={args.device}"]
    runs = {m: json.loads(subprocess.run(base + [f"--mode={m}"], check=True, capture_output=True,
                                         text=True).stdout.strip().splitlines()[-1]) for m in ("plain", "chunked")}
    device = torch.device(args.device)
    plain = loss_value("plain", args, device)
    chunked = loss_value("chunked", args, device)
    max_grad_diff = max((a - b).abs().max().item() for a, b in zip(plain[1:], chunked[1:]))
    rel_loss_diff = abs(plain[0].item() - chunked[0].item()) / abs(plain[0].item())
    for m, r in runs.items():
        print(f"{m:>8}: peak {r['peak_bytes'] / 2**20:8.1f} MiB  loss {r['loss']:.6f}")
    ratio = runs["plain"]["peak_bytes"] / max(runs["chunked"]["peak_bytes"], 1)
    print(f"memory plain/chunked = {ratio:.2f}x; loss rel diff {rel_loss_diff:.2e}; max grad diff {max_grad_diff:.2e}")
    print(f"RESULT memory_reduction={ratio:.2f} plain_mib={runs['plain']['peak_bytes'] / 2**20:.1f} "
          f"chunked_mib={runs['chunked']['peak_bytes'] / 2**20:.1f} loss_rel_diff={rel_loss_diff:.2e} "
          f"max_grad_diff={max_grad_diff:.2e} vocab={args.vocab} positions={args.positions} device={args.device}")


if __name__ == "__main__":
    main()
