"""One-pass provenance scoring vs scoring each action separately with its own context, side by side.

    python bench/trace.py [--model world:teacher] [--responses 8] [--min-steps 6]
"""

from __future__ import annotations

import argparse
import time

from cotdistill.models import load_model, load_tokenizer
from cotdistill.provenance.actions import split_actions
from cotdistill.provenance.scoring import score_actions, score_actions_separately
from cotdistill.world import world_records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="world:teacher")
    parser.add_argument("--responses", type=int, default=8)
    parser.add_argument("--min-steps", type=int, default=6)
    args = parser.parse_args()
    tok, model = load_tokenizer(args.model), load_model(args.model)
    recs = world_records("test", "teacher", args.responses, min_steps=args.min_steps, max_steps=args.min_steps)
    responses = [r.assistant_text() for r in recs]
    actions = [split_actions(r) for r in responses]
    n_actions = sum(len(a) for a in actions)
    t0 = time.perf_counter()
    fast = score_actions(model, tok, [r.prompt for r in recs], responses, actions, batch_size=args.responses)
    t_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    slow = [score_actions_separately(model, tok, r.prompt, resp, a) for r, resp, a in zip(recs, responses, actions)]
    t_slow = time.perf_counter() - t0
    diff = max(abs(a.logprob_sum - b.logprob_sum) for fa, sa in zip(fast, slow) for a, b in zip(fa, sa))
    print(f"{args.responses} responses, {n_actions / args.responses:.1f} actions each")
    print(f"one pass: {t_fast:.3f} s   per action: {t_slow:.3f} s   max |Δ log-prob| {diff:.2e}")
    print(f"RESULT speedup={t_slow / t_fast:.1f} one_pass_s={t_fast:.3f} per_action_s={t_slow:.3f} "
          f"actions_per_response={n_actions / args.responses:.1f} max_abs_diff={diff:.2e}")


if __name__ == "__main__":
    main()
