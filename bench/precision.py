"""fp32 against bf16 autocast on this machine, side by side in one run: a 2048² matmul, and the demo's distillation
(the world's student learning from the world's teacher, SFT + forward KL, batch 8) for a few optimizer steps
through cotdistill's trainer, each precision in its own process, interleaved, the median of the repeats kept.

    python bench/precision.py [--steps 30] [--repeats 3] [--on-policy]
    python bench/precision.py --student real:smollm2-135m-instruct --steps 4 --batch-size 4 --repeats 1

``--on-policy`` adds the same run with every step on-policy (rollouts of 128 tokens): sampling at each precision.
``--student`` another student: one whose tokenizer is not the world's trains by SFT alone (no KD, as ``demo
--real``).
Ends with ``RESULT key=value …``: the bf16/fp32 ratio of each (matmul FLOP/s, training tokens/s).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time


def matmul_rate(dtype_name: str, size: int = 2048, repeats: int = 10) -> float:
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def train_rate(precision: str, steps: int, on_policy: bool, out: str, student: str = "world:student",
               batch_size: int = 8) -> dict:
    from cotdistill.config import from_dict
    from cotdistill.training.config import TrainConfig
    from cotdistill.training.loop import train

    world = student.startswith("world:")
    cfg = {"student": student, "teacher": "world:teacher" if world else None, "output_dir": out,
           "data": {"path": "world:train:teacher:400", "val_fraction": 0.0},
           "encode": {"sections": "cotAns"}, "loss": {"distill_ratio": 0.5 if world else 0.0, "kind": "forward_kl"},
           "optim": {"lr": 5e-4, "batch_size": batch_size, "max_steps": steps, "warmup_steps": 2},
           "eval_every": 0, "save_every": 0, "keep_best": False, "progress": False, "precision": precision}
    if on_policy:
        cfg["loss"].update(on_policy=1.0, distill_ratio=1.0, kind="reverse_kl")
        cfg["rollout"] = {"max_new_tokens": 128}
    summary = train(from_dict(TrainConfig, cfg))
    return {"tokens_per_s": summary["tokens_per_s"], "seconds": summary["wall_time_s"],
            "precision": summary["precision"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--on-policy", action="store_true")
    parser.add_argument("--student", default="world:student")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        kind, precision = args.one.split(":")
        with tempfile.TemporaryDirectory() as tmp:
            result = (train_rate(precision, args.steps, kind == "onpolicy", tmp, args.student, args.batch_size)
                      if kind != "matmul" else {"flops_per_s": matmul_rate(precision)})
        print("RESULT_JSON " + json.dumps(result))
        return
    kinds = ["matmul", "train"] + (["onpolicy"] if args.on_policy else [])
    runs: dict[str, list[dict]] = {}
    for _ in range(args.repeats):  # interleaved: a slow spell of the machine hits both precisions alike
        for kind in kinds:
            for precision in ("fp32", "bf16"):
                proc = subprocess.run([sys.executable, __file__, f"--one={kind}:{precision}",
                                       f"--steps={args.steps}", f"--student={args.student}",
                                       f"--batch-size={args.batch_size}"], capture_output=True, text=True)
                line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT_JSON ")), None)
                if line is None:
                    raise SystemExit(f"{kind}:{precision} failed:\n{proc.stderr[-2000:]}")
                runs.setdefault(f"{kind}_{precision}", []).append(json.loads(line[len("RESULT_JSON "):]))
    figures = {}
    for kind in kinds:
        key = "flops_per_s" if kind == "matmul" else "tokens_per_s"
        median = {p: sorted(r[key] for r in runs[f"{kind}_{p}"])[args.repeats // 2] for p in ("fp32", "bf16")}
        unit = "GFLOP/s" if kind == "matmul" else "tokens/s"
        scale = 1e9 if kind == "matmul" else 1.0
        print(f"{kind:>9}: fp32 {median['fp32'] / scale:,.1f} {unit}, bf16 {median['bf16'] / scale:,.1f} {unit}")
        figures[f"{kind}_bf16_vs_fp32"] = median["bf16"] / median["fp32"]
    print("RESULT " + " ".join(f"{k}={v:.3f}" for k, v in figures.items())
          + f" steps={args.steps} student={args.student} batch={args.batch_size}")


if __name__ == "__main__":
    main()
