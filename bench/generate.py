"""Batched generation (left padding, KV cache) vs one prompt at a time, same model and prompts, side by side.

    python bench/generate.py [--model world:teacher] [--prompts 32] [--batch-size 32] [--max-new-tokens 200]
"""

from __future__ import annotations

import argparse

from cotdistill.generate import GenerationConfig, generate
from cotdistill.models import load_model, load_tokenizer
from cotdistill.world import world_records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="world:teacher")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=200)
    args = parser.parse_args()
    tok, model = load_tokenizer(args.model), load_model(args.model)
    questions = [r.prompt for r in world_records("test", n=args.prompts)]
    runs = {}
    for name, bs in (("batched", args.batch_size), ("one_by_one", 1)):
        gens, stats = generate(model, tok, questions, GenerationConfig(max_new_tokens=args.max_new_tokens,
                                                                       batch_size=bs), progress=False)
        runs[name] = (gens, stats)
        print(f"{name:>10}: {stats.generated_tokens} tokens in {stats.seconds:.2f} s = {stats.tokens_per_s:.0f} tok/s")
    same = [g.text for g in runs["batched"][0]] == [g.text for g in runs["one_by_one"][0]]
    speedup = runs["batched"][1].tokens_per_s / runs["one_by_one"][1].tokens_per_s
    print(f"RESULT speedup={speedup:.2f} batched_tok_s={runs['batched'][1].tokens_per_s:.0f} "
          f"single_tok_s={runs['one_by_one'][1].tokens_per_s:.0f} same_outputs={same} prompts={args.prompts}")


if __name__ == "__main__":
    main()
