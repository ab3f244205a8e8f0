"""cotdistill's batched generation against HF ``generate`` called plainly, at batch sizes 1–64, side by side.

* ``plain``      — ``model.generate`` on the prompts in their given order, ``batch`` at a time (what a script
  calling transformers does): a batch decodes until its longest row is done;
* ``cotdistill`` — ``cotdistill.generate``: prompts sorted by length (less padding), greedy decoding that drops
  each finished row from the batch and the KV cache.

Same model, prompts and greedy decoding: the outputs must be identical (checked). Tokens/s counts the tokens
written (up to and including EOS); peak memory is the resident set (CPU) or allocated memory (CUDA) above the
loaded model.

    python bench/generate.py [--model world:teacher] [--prompts 64] [--batch-sizes 1,4,16,64] [--max-new-tokens 400]
"""

from __future__ import annotations

import argparse
import time

import torch

from cotdistill.compute import MemoryMonitor
from cotdistill.data.encode import render_prompt
from cotdistill.generate import GenerationConfig, generate
from cotdistill.models import load_model, load_tokenizer, quiet_library_progress_bars
from cotdistill.world import world_records


@torch.no_grad()
def plain_generate(model, tok, questions, batch_size: int, max_new_tokens: int) -> tuple[list[str], int]:
    tok.padding_side = "left"
    texts, written = [], 0
    prompts = [render_prompt(tok, q) for q in questions]
    for start in range(0, len(prompts), batch_size):
        enc = tok(prompts[start:start + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
        out = model.generate(**enc.to(model.device), max_new_tokens=max_new_tokens, do_sample=False,
                             temperature=None, top_p=None, top_k=None, pad_token_id=tok.pad_token_id,
                             eos_token_id=tok.eos_token_id)
        for row in out[:, enc["input_ids"].shape[1]:].tolist():
            ended = tok.eos_token_id in row
            ids = row[:row.index(tok.eos_token_id)] if ended else row
            written += len(ids) + int(ended)
            texts.append(tok.decode(ids, skip_special_tokens=False))
    return texts, written


def timed(fn, device) -> tuple[object, float, int]:
    monitor = MemoryMonitor(device, interval=0.001).start()
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    return result, seconds, monitor.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="world:teacher")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--batch-sizes", default="1,4,16,64")
    parser.add_argument("--max-new-tokens", type=int, default=400)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    quiet_library_progress_bars()
    device = torch.device(args.device)
    tok, model = load_tokenizer(args.model), load_model(args.model, device).eval()
    questions = [r.prompt for r in world_records("test", n=args.prompts)]
    fields, all_same = {}, True
    for bs in (int(x) for x in args.batch_sizes.split(",")):
        (texts, written), plain_s, plain_mem = timed(
            lambda bs=bs: plain_generate(model, tok, questions, bs, args.max_new_tokens), device)
        config = GenerationConfig(max_new_tokens=args.max_new_tokens, batch_size=bs, backend="hf")
        (gens, stats), ours_s, ours_mem = timed(lambda c=config: generate(model, tok, questions, c, progress=False),
                                                device)
        same = [g.text for g in gens] == texts
        all_same &= same
        plain_rate, ours_rate = written / plain_s, stats.generated_tokens / ours_s
        print(f"batch {bs:>3}: plain {plain_rate:8.0f} tok/s {plain_mem / 2**20:7.1f} MiB | cotdistill "
              f"{ours_rate:8.0f} tok/s {ours_mem / 2**20:7.1f} MiB | speedup {ours_rate / plain_rate:5.2f} | "
              f"same outputs {same}", flush=True)
        fields.update({f"speedup_bs{bs}": ours_rate / plain_rate, f"ours_tok_s_bs{bs}": ours_rate,
                       f"plain_tok_s_bs{bs}": plain_rate, f"ours_mib_bs{bs}": ours_mem / 2**20,
                       f"plain_mib_bs{bs}": plain_mem / 2**20})
    print("RESULT " + " ".join(f"{k}={v:.3g}" for k, v in fields.items()) + f" same_outputs={all_same} "
          f"prompts={args.prompts} max_new_tokens={args.max_new_tokens} device={args.device}")


if __name__ == "__main__":
    main()
