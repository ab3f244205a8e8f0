"""cotdistill vs TRL on the same tiny model, data, sequence lengths and batch, side by side.

Pairs (each run in its own process, CPU fp32 unless CUDA is present):

* CE only:  TRL ``SFTTrainer``                         vs cotdistill ``train`` with ``distill_ratio=0``;
* KD only:  TRL ``GKDTrainer`` (lmbda=0: supervised, β=0.5) vs cotdistill ``train`` with ``kind=jsd, β=0.5, r=1``
  on the assistant turn (as GKD's collator does);
* and cotdistill with LSP 0.5 (CE and KD) and with packing (CE), where truncation and packing apply;
* on-policy (``--on-policy``, only this pair): TRL ``DistillationTrainer`` (always on-policy, β = 1: reverse KL on
  the student's samples) vs cotdistill ``train`` with ``loss.on_policy=1, kind=reverse_kl, r=1``: the same
  prompts, ``--rollout`` new tokens at temperature 1 without top-k, the same batch, one sample per prompt. Here
  the figures are seconds per optimizer step, sampled tokens per second (sampling, scoring and training together)
  and peak memory; each side's mean sample length is printed, since the two draw different samples.

Reports processed tokens/s (non-padding tokens of the training data per second of ``train()``) and peak memory
above the loaded-models baseline (resident set size on CPU, ``max_memory_allocated`` on CUDA). TRL is a bench-only
dependency: ``pip install trl``.

    python bench/peers.py [--records 256] [--batch-size 8] [--repeats 3]                 # the world's models
    python bench/peers.py --shape large --records 32 --batch-size 4 --repeats 1          # 11M student, 1k tokens
    python bench/peers.py --on-policy --records 64 --batch-size 8 --rollout 128 --repeats 3

``--shape large``: a random Qwen2 student of ~11M parameters (hidden 384, 7 layers) and teacher of ~24M (hidden
512, 8 layers), built here, on records whose chain of thought is repeated to ~1,024 tokens. cotdistill's runs also
report training FLOP/s as a share of this machine's fp32 matmul peak, measured here (a 2048² matmul).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

# World records are ~260 tokens: a 512-token row holds about two. Longer rows cost more here, because on CPU the
# attention inside a packed row is a dense block-diagonal mask over the whole row (no varlen kernel).
PACK_LENGTH = 512


def _records(n: int):
    from cotdistill.world import world_records

    return world_records("train", "teacher", n)


def build_shape(shape: str, records: int, root: Path) -> dict:
    """Student, teacher and a JSONL data file for ``shape`` (``small``: the world's models and records)."""
    from cotdistill.data.formats import write_jsonl

    if shape == "small":
        write_jsonl(_records(records), root / "data.jsonl", "messages")
        return {"student": "world:student", "teacher": "world:teacher", "data": str(root / "data.jsonl"),
                "max_length": 512}
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from cotdistill.data.encode import render_conversation
    from cotdistill.data.records import ReasoningRecord
    from cotdistill.models import load_tokenizer, quiet_library_progress_bars

    quiet_library_progress_bars()
    tok = load_tokenizer("world:tokenizer")
    torch.manual_seed(0)
    for name, hidden, layers in (("student", 384, 7), ("teacher", 512, 8)):
        config = Qwen2Config(vocab_size=len(tok), hidden_size=hidden, intermediate_size=1024 * hidden // 384,
                             num_hidden_layers=layers, num_attention_heads=6 if hidden == 384 else 8,
                             num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True,
                             eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        Qwen2ForCausalLM(config).save_pretrained(root / name)
        tok.save_pretrained(root / name)
    long = []
    for base in _records(records):
        cot = base.cot
        while len(tok(render_conversation(tok, ReasoningRecord(base.prompt, cot + "\n" + base.cot,
                                                               base.answer)))["input_ids"]) <= 1024:
            cot = cot + "\n" + base.cot
        long.append(ReasoningRecord(base.prompt, cot, base.answer))
    write_jsonl(long, root / "data.jsonl", "messages")
    return {"student": str(root / "student"), "teacher": str(root / "teacher"), "data": str(root / "data.jsonl"),
            "max_length": 1100}


def matmul_peak_flops(size: int = 2048, repeats: int = 10) -> float:
    """This machine's fp32 matmul rate (FLOP/s) with the threads this process has: the ceiling training can reach."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def run_trl_on_policy(shape: dict, batch_size: int, rollout: int, out: Path) -> dict:
    """TRL's DistillationTrainer: prompts only (it samples the completions), reverse KL (β = 1)."""
    import torch
    from datasets import Dataset
    from trl import DistillationConfig, DistillationTrainer

    from cotdistill.compute import MemoryMonitor
    from cotdistill.models import load_model, load_tokenizer, pick_device

    device = pick_device("auto")
    tok = load_tokenizer(shape["student"])
    student, teacher = load_model(shape["student"], device), load_model(shape["teacher"], device)
    prompts = [[m for m in json.loads(line)["messages"] if m["role"] == "user"]
               for line in open(shape["data"], encoding="utf-8")]
    args = DistillationConfig(output_dir=str(out), per_device_train_batch_size=batch_size, num_train_epochs=1,
                              learning_rate=2e-4, logging_steps=1, save_strategy="no", report_to=[],
                              use_cpu=device.type == "cpu", bf16=device.type == "cuda", disable_tqdm=True, seed=0,
                              max_completion_length=rollout, temperature=1.0, top_p=1.0, top_k=0, beta=1.0,
                              gradient_checkpointing=False)
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args,
                                  train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]),
                                  processing_class=tok)
    monitor = MemoryMonitor(device).start()
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    lengths = [h["completions/mean_length"] for h in trainer.state.log_history if "completions/mean_length" in h]
    steps = trainer.state.global_step
    sampled = sum(lengths) * batch_size if len(lengths) == steps else float("nan")
    return {"seconds": seconds, "steps": steps, "tokens": sampled, "tokens_per_s": sampled / seconds,
            "mean_sample": sum(lengths) / max(len(lengths), 1), "peak_bytes": monitor.stop(), "device": str(device),
            "torch": torch.__version__}


def run_ours_on_policy(shape: dict, batch_size: int, rollout: int, out: Path) -> dict:
    from cotdistill.config import from_dict
    from cotdistill.training.config import TrainConfig
    from cotdistill.training.loop import train

    records = sum(1 for _ in open(shape["data"], encoding="utf-8"))
    cfg = {"student": shape["student"], "teacher": shape["teacher"], "output_dir": str(out),
           "data": {"path": shape["data"], "val_fraction": 0.0},
           "optim": {"lr": 2e-4, "batch_size": batch_size, "max_steps": records // batch_size, "warmup_steps": 0},
           "loss": {"on_policy": 1.0, "distill_ratio": 1.0, "kind": "reverse_kl"},
           "rollout": {"max_new_tokens": rollout, "temperature": 1.0},
           "eval_every": 0, "save_every": 0, "keep_best": False, "progress": False, "pad_to_multiple_of": None}
    summary = train(from_dict(TrainConfig, cfg))
    samples = summary["rollout_samples"]
    return {"seconds": summary["wall_time_s"], "steps": summary["steps"], "tokens": summary["rollout_tokens"],
            "tokens_per_s": summary["rollout_tokens"] / summary["wall_time_s"],
            "mean_sample": summary["rollout_tokens"] / max(samples, 1), "peak_bytes": summary["peak_memory_bytes"],
            "device": summary["device"], "flops_per_s": summary["flops"] / max(summary["wall_time_s"], 1e-9)}


def run_trl(kind: str, shape: dict, batch_size: int, out: Path) -> dict:
    import torch
    from datasets import Dataset

    from cotdistill.compute import MemoryMonitor
    from cotdistill.models import load_model, load_tokenizer, pick_device

    device = pick_device("auto")
    tok = load_tokenizer(shape["student"])
    student = load_model(shape["student"], device)
    rows = [{"messages": json.loads(line)["messages"]} for line in open(shape["data"], encoding="utf-8")]
    dataset = Dataset.from_list(rows)
    common = dict(output_dir=str(out), per_device_train_batch_size=batch_size, num_train_epochs=1,
                  learning_rate=2e-3, logging_steps=1000, save_strategy="no", report_to=[],
                  max_length=shape["max_length"],
                  use_cpu=device.type == "cpu", bf16=device.type == "cuda", disable_tqdm=True, seed=0,
                  # TRL turns gradient checkpointing on by default; "_nogc" runs turn it off
                  gradient_checkpointing=not kind.endswith("_nogc"))
    if kind.startswith("sft"):
        from trl import SFTConfig, SFTTrainer

        trainer = SFTTrainer(model=student, args=SFTConfig(**common), train_dataset=dataset, processing_class=tok)
    else:
        from trl.experimental.gkd import GKDConfig, GKDTrainer

        teacher = load_model(shape["teacher"], device)
        cfg = GKDConfig(**common, lmbda=0.0, beta=0.5, temperature=1.0, seq_kd=False)
        trainer = GKDTrainer(model=student, teacher_model=teacher, args=cfg, train_dataset=dataset,
                             processing_class=tok)
    real_tokens = sum(len(tok(tok.apply_chat_template(r["messages"], tokenize=False), add_special_tokens=False)
                          ["input_ids"]) for r in rows)
    monitor = MemoryMonitor(device).start()
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "tokens": real_tokens, "tokens_per_s": real_tokens / seconds,
            "peak_bytes": monitor.stop(), "device": str(device), "torch": torch.__version__}


def run_ours(kind: str, shape: dict, batch_size: int, out: Path) -> dict:
    from cotdistill.config import from_dict
    from cotdistill.training.config import TrainConfig
    from cotdistill.training.loop import train

    cfg = {"student": shape["student"], "teacher": None, "output_dir": str(out),
           "data": {"path": shape["data"], "val_fraction": 0.0},
           "optim": {"lr": 2e-3, "batch_size": batch_size, "epochs": 1, "warmup_steps": 0},
           "loss": {"distill_ratio": 0.0}, "eval_every": 0, "save_every": 0, "keep_best": False, "progress": False,
           "pad_to_multiple_of": None}
    if kind.startswith("kd"):
        cfg.update(teacher=shape["teacher"], loss={"distill_ratio": 1.0, "kind": "jsd", "beta": 0.5})
        cfg["encode"] = {"sections": "cotAns"}
    if kind.endswith("_gc"):  # as TRL does by default
        cfg["gradient_checkpointing"] = True
    if kind.endswith("lsp05"):
        cfg.setdefault("encode", {}).update(truncation="lsp", lsp=0.5)
    if kind.endswith("packed"):
        # rows of PACK_LENGTH tokens, as many per micro-batch as keep it near batch_size records
        rows = max(1, batch_size * 256 // PACK_LENGTH)
        cfg.update(packing=True, pack_length=PACK_LENGTH, optim={**cfg["optim"], "batch_size": rows})
    summary = train(from_dict(TrainConfig, cfg))
    return {"seconds": summary["wall_time_s"], "tokens": summary["processed_tokens"],
            "tokens_per_s": summary["tokens_per_s"], "peak_bytes": summary["peak_memory_bytes"],
            "device": summary["device"], "flops_per_s": summary["flops"] / max(summary["wall_time_s"], 1e-9)}

def on_policy_report(results: dict[str, dict], args) -> None:
    print(f"{'run':>14} {'steps':>6} {'s/step':>8} {'mean sample':>12} {'sampled tok/s':>14} {'peak MiB':>9}")
    for name, r in results.items():
        print(f"{name:>14} {r['steps']:>6} {r['seconds'] / r['steps']:>8.3f} {r['mean_sample']:>12.1f} "
              f"{r['tokens_per_s']:>14.1f} {r['peak_bytes'] / 2**20:>9.1f}")
    ours, theirs = results.get("ours_onpolicy"), results.get("trl_onpolicy")
    if ours is None or theirs is None:
        print("RESULT on_policy_pair=incomplete")
        return
    step_ratio = (theirs["seconds"] / theirs["steps"]) / (ours["seconds"] / ours["steps"])
    print(f"RESULT step_speedup_ours_vs_trl={step_ratio:.3f} "
          f"sampled_tokps_ours_vs_trl={ours['tokens_per_s'] / theirs['tokens_per_s']:.3f} "
          f"memory_ours_vs_trl={ours['peak_bytes'] / max(theirs['peak_bytes'], 1):.3f} "
          f"mean_sample_ours={ours['mean_sample']:.1f} mean_sample_trl={theirs['mean_sample']:.1f} "
          f"rollout={args.rollout} batch={args.batch_size} records={args.records} shape={args.shape}")


def _median_run(runs: list[dict]) -> dict:
    """The run with the median wall time (its memory figure comes with it)."""
    return sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]


ON_POLICY_RUNS = [("trl", "onpolicy"), ("ours", "onpolicy")]
RUNS = [("trl", "sft"), ("trl", "sft_nogc"), ("ours", "sft"), ("ours", "sft_gc"), ("ours", "sft_lsp05"),
        ("ours", "sft_packed"), ("trl", "kd"), ("trl", "kd_nogc"), ("ours", "kd"), ("ours", "kd_gc"),
        ("ours", "kd_lsp05")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="runs per setting, interleaved; the median is kept")
    parser.add_argument("--shape", default="small", choices=["small", "large"])
    parser.add_argument("--on-policy", action="store_true", help="only the on-policy pair")
    parser.add_argument("--rollout", type=int, default=128, help="new tokens per on-policy sample")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--kit", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        tool, kind = args.one.split(":")
        with tempfile.TemporaryDirectory() as tmp:
            kit = json.loads(args.kit)
            if kind == "onpolicy":
                fn = run_trl_on_policy if tool == "trl" else run_ours_on_policy
                result = fn(kit, args.batch_size, args.rollout, Path(tmp))
            else:
                result = (run_trl if tool == "trl" else run_ours)(kind, kit, args.batch_size, Path(tmp))
            print("RESULT_JSON " + json.dumps(result))
        return
    kit_dir = tempfile.TemporaryDirectory()
    kit = build_shape(args.shape, args.records, Path(kit_dir.name))
    peak = matmul_peak_flops()
    runs: dict[str, list[dict]] = {}
    for _ in range(args.repeats):  # interleaved, so a slow spell of the machine hits every setting alike
        for tool, kind in ON_POLICY_RUNS if args.on_policy else RUNS:
            proc = subprocess.run([sys.executable, __file__, f"--one={tool}:{kind}", f"--kit={json.dumps(kit)}",
                                   f"--batch-size={args.batch_size}", f"--rollout={args.rollout}"],
                                  capture_output=True, text=True)
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT_JSON ")), None)
            if line is None:
                print(f"{tool}:{kind} failed:\n{proc.stderr[-2000:]}")
                continue
            runs.setdefault(f"{tool}_{kind}", []).append(json.loads(line[len("RESULT_JSON "):]))
    results = {name: _median_run(rs) for name, rs in runs.items()}
    if args.on_policy:
        on_policy_report(results, args)
        kit_dir.cleanup()
        return
    print(f"{'run':>18} {'tokens':>8} {'seconds':>8} {'tok/s':>8} {'peak MiB':>9}")
    for name, r in results.items():
        mib = r["peak_bytes"] / 2**20
        print(f"{name:>18} {r['tokens']:>8} {r['seconds']:>8.2f} {r['tokens_per_s']:>8.0f} {mib:>9.1f}")
    figures = {}
    # like for like: without gradient checkpointing on both sides, and with it on both (TRL's default)
    for ours, theirs in (("ours_sft", "trl_sft_nogc"), ("ours_sft_gc", "trl_sft"), ("ours_sft", "trl_sft"),
                         ("ours_sft_lsp05", "trl_sft"), ("ours_sft_packed", "trl_sft"), ("ours_kd", "trl_kd_nogc"),
                         ("ours_kd_gc", "trl_kd"), ("ours_kd", "trl_kd"), ("ours_kd_lsp05", "trl_kd")):
        if ours in results and theirs in results:
            figures[f"tokps_{ours}_vs_{theirs}"] = results[ours]["tokens_per_s"] / results[theirs]["tokens_per_s"]
            # the same records: how much sooner cotdistill is done (>1 = faster)
            figures[f"speedup_{ours}_vs_{theirs}"] = results[theirs]["seconds"] / results[ours]["seconds"]
            figures[f"memory_{ours}_vs_{theirs}"] = (results[ours]["peak_bytes"]
                                                     / max(results[theirs]["peak_bytes"], 1))
    for name, r in results.items():
        if "flops_per_s" in r:
            figures[f"peak_share_{name}"] = r["flops_per_s"] / peak
    kit_dir.cleanup()
    print(f"fp32 matmul peak of this machine: {peak / 1e9:.1f} GFLOP/s")
    print("RESULT " + " ".join(f"{k}={v:.3f}" for k, v in figures.items()) + f" matmul_peak_gflops={peak / 1e9:.1f}"
          f" records={args.records} shape={args.shape}")


if __name__ == "__main__":
    main()
