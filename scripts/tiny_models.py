"""Make a small "own models and data" kit to follow the README's "Your own models and data" with, offline:

* ``OUT/teacher`` — a Llama-architecture teacher, ``OUT/student`` — a Qwen2-architecture student: the embedded
  world's trained weights are *not* used; both are random models built from transformers configs, with the
  embedded world's tokenizer and ChatML + ``<think>`` template saved beside them, as any HF model folder;
* ``OUT/problems.jsonl`` — rows shaped as raw GSM8K (``question``, ``answer`` = ``rationale #### final``),
  written from the world's problems.

    .venv/bin/python scripts/tiny_models.py --out my_kit
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def build_models(out: Path, hidden: int = 64, layers: int = 2, seed: int = 0) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    from cotdistill.models import load_tokenizer, quiet_library_progress_bars

    quiet_library_progress_bars()
    tokenizer = load_tokenizer("world:tokenizer")
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
           "pad_token_id": tokenizer.pad_token_id}
    shape = {"vocab_size": len(tokenizer), "num_attention_heads": 4, "num_key_value_heads": 2,
             "max_position_embeddings": 1024, **ids}
    torch.manual_seed(seed)
    teacher = LlamaForCausalLM(LlamaConfig(hidden_size=2 * hidden, intermediate_size=4 * hidden,
                                           num_hidden_layers=layers, tie_word_embeddings=False, **shape))
    student = Qwen2ForCausalLM(Qwen2Config(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                                           tie_word_embeddings=True, **shape))
    for name, model in (("teacher", teacher), ("student", student)):
        model.save_pretrained(out / name)
        tokenizer.save_pretrained(out / name)


def write_problems(path: Path, n: int) -> None:
    from cotdistill.world import world_records

    with open(path, "w", encoding="utf-8") as fh:
        for record in world_records("train", "teacher", n):
            row = {"question": record.prompt, "answer": f"{record.cot}\n#### {record.metadata['gold']}"}
            fh.write(json.dumps(row) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="my_kit")
    parser.add_argument("--problems", type=int, default=64)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    build_models(out)
    write_problems(out / "problems.jsonl", args.problems)
    print(f"models in {out}/teacher and {out}/student, data in {out}/problems.jsonl")


if __name__ == "__main__":
    main()
