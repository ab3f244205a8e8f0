"""Teacher cache size against fidelity: bytes per supervised token, and the KD loss read from the cache against the
online teacher's, for several settings, on the world teacher and on a flat (random-init) teacher of its shape.

Settings: fixed top-k with float16 log-probs (the old layout), and per-position entries chosen by ``kl_target``
(the fewest whose even-tail reconstruction is within that many nats) with uint8 log-probs. The loss is the
trainer's (``losses.fused_objective_sums``, pure forward KL) of the world student on the same records; ``gap``
is |KD(cache) − KD(online)| / KD(online) over all positions. ``bytes_152k`` is what the same entries would take
with Qwen's 151,936-token vocabulary (ids in 3 bytes instead of 2).

    python bench/teacher_cache.py [--records 96]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from cotdistill.data.batching import collate
from cotdistill.data.encode import IGNORE_INDEX, EncodeConfig, encode_records
from cotdistill.losses import LossConfig, fused_objective_sums
from cotdistill.models import load_model, load_tokenizer, quiet_library_progress_bars
from cotdistill.teacher.cache import TeacherCache, build_cache
from cotdistill.world import world_records

SETTINGS = [  # name, top_k (the cap), kl_target, logp dtype
    ("k128-f16", 128, None, "float16"),
    ("k32-u8", 32, None, "uint8"),
    ("kl1e-3-k128-u8", 128, 1e-3, "uint8"),
    ("kl1e-2-k24-u8", 24, 1e-2, "uint8"),
    ("kl1e-3-k24-u8", 24, 1e-3, "uint8"),
    ("kl1e-3-k16-u8", 16, 1e-3, "uint8"),
    ("kl1e-3-k8-u8", 8, 1e-3, "uint8"),
]


@torch.no_grad()
def kd_sums(student, teacher, tokenizer, examples, cache: TeacherCache | None, config: LossConfig) -> float:
    total = 0.0
    for start in range(0, len(examples), 8):
        batch_examples = examples[start:start + 8]
        t = collate(batch_examples, tokenizer.pad_token_id)
        mask = t["labels"][:, 1:] != IGNORE_INDEX
        hidden = student.base_model(input_ids=t["input_ids"], attention_mask=t["attention_mask"]).last_hidden_state
        selected, targets = hidden[:, :-1][mask], t["labels"][:, 1:][mask]
        if cache is None:
            t_hidden = teacher.base_model(input_ids=t["input_ids"],
                                          attention_mask=t["attention_mask"]).last_hidden_state[:, :-1][mask]
            extra = {"teacher_hidden": t_hidden, "teacher_weight": teacher.get_output_embeddings().weight}
        else:
            ids, logp, tail = cache.rows([e.index for e in batch_examples])
            extra = {"topk_ids": ids, "topk_logp": logp, "topk_tail": tail}
        total += fused_objective_sums(selected, student.get_output_embeddings().weight, targets, config,
                                      vocab=len(tokenizer), **extra)[2].item()
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=96)
    args = parser.parse_args()
    quiet_library_progress_bars()
    torch.manual_seed(0)
    tokenizer = load_tokenizer("world:tokenizer")
    encode = EncodeConfig()
    records = world_records("train", "teacher", args.records)
    examples = encode_records(tokenizer, records, encode, "world:train").examples
    student = load_model("world:student").eval()
    world_teacher = load_model("world:teacher").eval()
    flat_teacher = type(world_teacher)(world_teacher.config).eval()  # the same shape, random init
    config = LossConfig(distill_ratio=1.0, chunk_size=512)
    rows, results = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for teacher_name, teacher in (("world", world_teacher), ("flat", flat_teacher)):
            online = kd_sums(student, teacher, tokenizer, examples, None, config)
            for name, top_k, kl_target, dtype in SETTINGS:
                out = Path(tmp) / f"{teacher_name}-{name}"
                manifest = build_cache(teacher, tokenizer, examples, out, top_k=top_k, kl_target=kl_target,
                                       logp_dtype=dtype, encode_config=encode, data_path="world:train",
                                       teacher_name="world:teacher", progress=False)
                offline = kd_sums(student, teacher, tokenizer, examples, TeacherCache.open(out), config)
                entries = manifest["mean_entries_per_token"]
                row = {"teacher": teacher_name, "setting": name, "bytes": manifest["bytes_per_supervised_token"],
                       "bytes_152k": manifest["bytes_per_supervised_token"] + entries, "entries": entries,
                       "recon_kl": manifest["mean_kl_dense_vs_reconstructed"], "gap": abs(offline - online) / online}
                rows.append(row)
                results[(teacher_name, name)] = row
                print(f"{teacher_name:>5} {name:>14}: {row['bytes']:7.1f} B/token ({row['bytes_152k']:7.1f} at 152k "
                      f"vocab), {entries:6.1f} entries, reconstruction KL {row['recon_kl']:.2e}, KD gap "
                      f"{row['gap']:.2%}", flush=True)
    fits = [name for name, *_ in SETTINGS
            if all(results[(t, name)]["bytes_152k"] <= 128 and results[(t, name)]["gap"] <= 0.01
                   for t in ("world", "flat"))]
    best = min(fits, key=lambda n: max(results[(t, n)]["bytes_152k"] for t in ("world", "flat"))) if fits else None
    fields = [f"best={best}"]
    for t in ("world", "flat"):
        for key in ("bytes_152k", "gap"):
            for name in ("k128-f16", best) if best else ("k128-f16",):
                fields.append(f"{t}_{name}_{key}={results[(t, name)][key]:.4g}")
    print("RESULT " + " ".join(fields) + f" records={args.records} rows={sum(e.num_supervised for e in examples)}")


if __name__ == "__main__":
    main()
