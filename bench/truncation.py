"""Distil a student for a fixed number of records at LSP 1.0 and LSP 0.5, side by side.

Each setting runs in its own process (so peak memory is measured from a clean allocator) with the same records,
seed, batch size and loss (forward KL mixed with CE, r = 0.5). Prints the run summaries and the ratios
LSP 0.5 / LSP 1.0 of wall time, training FLOPs and peak memory above the loaded-models baseline.

    python bench/truncation.py [--records 512] [--batch-size 8] [--lsps 1.0,0.5]     # the embedded world
    python bench/truncation.py --length 256,1024,2048                                 # long sequences

With ``--length``, each record is a world problem whose chain of thought is repeated until the rendered record
has that many tokens, and the models are a random Qwen2 student (hidden 128) and teacher (hidden 256) with 4,096
positions, built here: at long sequences attention's quadratic cost dominates, so LSP 0.5 should cost *less*
than half. Every length trains on the same number of tokens (``--tokens``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def run_setting(lsp: float, records: int, batch_size: int, out: Path, device: str,
                extra: list[str] | None = None) -> dict:
    overrides = [f"output_dir={out}", f"data.path=world:train:teacher:{records}", "data.val_fraction=0",
                 f"optim.batch_size={batch_size}", "optim.epochs=1", "eval_every=0", "save_every=0",
                 "keep_best=false", "progress=false", f"device={device}", "loss.distill_ratio=0.5", *(extra or [])]
    if lsp < 1.0:
        overrides += ["encode.truncation=lsp", f"encode.lsp={lsp}"]
    subprocess.run([sys.executable, "-m", "cotdistill", "train", *overrides], check=True,
                   stdout=subprocess.DEVNULL)
    return json.loads((out / "run_summary.json").read_text())


def build_long_kit(root: Path, lengths: list[int], tokens: int) -> dict[int, tuple[str, int]]:
    """Models with 4,096 positions and, per length, a JSONL file of records of about that many tokens."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from cotdistill.data.encode import render_conversation
    from cotdistill.data.formats import write_jsonl
    from cotdistill.data.records import ReasoningRecord
    from cotdistill.models import load_tokenizer, quiet_library_progress_bars
    from cotdistill.world import world_records

    quiet_library_progress_bars()
    tok = load_tokenizer("world:tokenizer")
    torch.manual_seed(0)
    for name, hidden in (("student", 128), ("teacher", 256)):
        config = Qwen2Config(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
                             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                             max_position_embeddings=4096, tie_word_embeddings=True,
                             eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        Qwen2ForCausalLM(config).save_pretrained(root / name)
        tok.save_pretrained(root / name)
    data = {}
    for length in lengths:
        records = []
        for base in world_records("train", "teacher", max(tokens // length, 1)):
            cot = base.cot
            while len(tok(render_conversation(tok, ReasoningRecord(base.prompt, cot + "\n" + base.cot,
                                                                   base.answer)))["input_ids"]) <= length:
                cot = cot + "\n" + base.cot
            records.append(ReasoningRecord(base.prompt, cot, base.answer))
        path = root / f"long-{length}.jsonl"
        write_jsonl(records, path, "cot")
        data[length] = (str(path), len(records))
    return data


def run_lengths(args) -> None:
    lengths = [int(x) for x in args.length.split(",")]
    results = {}
    print(f"{'length':>6} {'lsp':>4} {'records':>7} {'tokens':>8} {'GFLOPs':>9} {'wall_s':>8} {'peak_MiB':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = build_long_kit(root, lengths, args.tokens)
        for length in lengths:
            path, n = data[length]
            extra = [f"data.path={path}", f"student={root / 'student'}", f"teacher={root / 'teacher'}",
                     "pad_to_multiple_of=null"]
            runs = {lsp: run_setting(lsp, n, args.batch_size, root / f"run-{length}-{lsp}", args.device, extra)
                    for lsp in (1.0, 0.5)}
            for lsp, s in runs.items():
                print(f"{length:>6} {lsp:>4} {s['records']:>7} {s['processed_tokens']:>8} {s['flops'] / 1e9:>9.2f} "
                      f"{s['wall_time_s']:>8.2f} {s['peak_memory_bytes'] / 2**20:>9.1f}", flush=True)
            full, half = runs[1.0], runs[0.5]
            results[f"time_ratio_{length}"] = half["wall_time_s"] / full["wall_time_s"]
            results[f"flops_ratio_{length}"] = half["flops"] / full["flops"]
            results[f"memory_ratio_{length}"] = half["peak_memory_bytes"] / max(full["peak_memory_bytes"], 1)
    print("RESULT " + " ".join(f"{k}={v:.3f}" for k, v in results.items()) + f" tokens={args.tokens} "
          f"device={args.device}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lsps", default="1.0,0.5")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--length", help="comma-separated record lengths in tokens (long-sequence mode)")
    parser.add_argument("--tokens", type=int, default=65536, help="tokens per length in long-sequence mode")
    args = parser.parse_args()
    if args.length:
        run_lengths(args)
        return
    lsps = [float(x) for x in args.lsps.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        summaries = {lsp: run_setting(lsp, args.records, args.batch_size, Path(tmp) / f"lsp{lsp}", args.device)
                     for lsp in lsps}
    base = summaries[lsps[0]]
    print(f"{'lsp':>5} {'records':>7} {'tokens':>9} {'supervised':>10} {'GFLOPs':>9} {'wall_s':>8} {'peak_MiB':>9}")
    for lsp, s in summaries.items():
        print(f"{lsp:>5} {s['records']:>7} {s['processed_tokens']:>9} {s['supervised_tokens']:>10} "
              f"{s['flops'] / 1e9:>9.2f} {s['wall_time_s']:>8.2f} {s['peak_memory_bytes'] / 2**20:>9.1f}")
    results = {}
    for lsp in lsps[1:]:
        s = summaries[lsp]
        tag = str(lsp).replace(".", "")
        results[f"time_ratio_{tag}"] = s["wall_time_s"] / base["wall_time_s"]
        results[f"flops_ratio_{tag}"] = s["flops"] / base["flops"]
        results[f"memory_ratio_{tag}"] = s["peak_memory_bytes"] / max(base["peak_memory_bytes"], 1)
        results[f"tokens_ratio_{tag}"] = s["processed_tokens"] / base["processed_tokens"]
    results["records"] = args.records
    results["device"] = base["device"]
    print("RESULT " + " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in results.items()))


if __name__ == "__main__":
    main()
