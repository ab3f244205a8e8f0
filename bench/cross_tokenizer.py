"""What KD across tokenizers costs: the real student (SmolLM2-135M-Instruct, 49,152 tokens) trained on the world
teacher's records by SFT alone, by SFT + ``uld`` and by SFT + ``spans`` (the world teacher, 581 tokens, online),
each arm in its own process, interleaved, the median of the repeats kept.

    python bench/cross_tokenizer.py [--steps 6] [--batch-size 4] [--repeats 3] [--precision auto]

Ends with ``RESULT key=value …``: each KD arm's training tokens/s as a share of SFT's, and the KD arms' peak memory
against SFT's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

ARMS = ("sft", "uld", "spans")


def train_rate(arm: str, steps: int, batch_size: int, precision: str, out: str) -> dict:
    from cotdistill.config import from_dict
    from cotdistill.training.config import TrainConfig
    from cotdistill.training.loop import train

    loss = ({"distill_ratio": 0.0} if arm == "sft" else {"distill_ratio": 0.5, "cross_tokenizer": arm})
    cfg = {"student": "real:smollm2-135m-instruct", "teacher": None if arm == "sft" else "world:teacher",
           "output_dir": out, "data": {"path": "world:train:teacher:400", "val_fraction": 0.0},
           "encode": {"sections": "promptcotAns"}, "loss": loss,
           "optim": {"lr": 3e-5, "batch_size": batch_size, "max_steps": steps, "warmup_steps": 1},
           "eval_every": 0, "save_every": 0, "keep_best": False, "progress": False, "precision": precision}
    summary = train(from_dict(TrainConfig, cfg))
    return {"tokens_per_s": summary["tokens_per_s"], "peak_memory": summary["peak_memory_bytes"],
            "precision": summary["precision"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        with tempfile.TemporaryDirectory() as tmp:
            result = train_rate(args.one, args.steps, args.batch_size, args.precision, tmp)
        print("RESULT_JSON " + json.dumps(result))
        return
    runs: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    for _ in range(args.repeats):  # interleaved: a slow spell of the machine hits every arm alike
        for arm in ARMS:
            proc = subprocess.run([sys.executable, __file__, f"--one={arm}", f"--steps={args.steps}",
                                   f"--batch-size={args.batch_size}", f"--precision={args.precision}"],
                                  capture_output=True, text=True)
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT_JSON ")), None)
            if line is None:
                raise SystemExit(f"{arm} failed:\n{proc.stderr[-2000:]}")
            runs[arm].append(json.loads(line[len("RESULT_JSON "):]))
    median = {arm: sorted(runs[arm], key=lambda r: r["tokens_per_s"])[args.repeats // 2] for arm in ARMS}
    for arm in ARMS:
        m = median[arm]
        print(f"{arm:>6}: {m['tokens_per_s']:,.1f} tokens/s, peak {m['peak_memory'] / 2**30:.2f} GiB "
              f"({m['precision']})")
    figures = {f"{arm}_vs_sft_speed": median[arm]["tokens_per_s"] / median["sft"]["tokens_per_s"]
               for arm in ARMS[1:]}
    figures |= {f"{arm}_vs_sft_memory": median[arm]["peak_memory"] / median["sft"]["peak_memory"]
                for arm in ARMS[1:]}
    print("RESULT " + " ".join(f"{k}={v:.3f}" for k, v in figures.items())
          + f" steps={args.steps} batch={args.batch_size} precision={median['sft']['precision']}")


if __name__ == "__main__":
    main()
