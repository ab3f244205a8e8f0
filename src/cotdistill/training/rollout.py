"""On-policy steps: the student samples its own responses to the step's training prompts with its current weights,
and those samples become the step's micro-batches. The loss is unchanged: the online teacher scores every sampled
token in the same forward as it scores a record's text, and ``loss.kind`` pulls the student towards it there.

The rules of a rollout, each written once, here:

* **which steps** (:meth:`Rollouts.on_policy`): step ``s`` is on-policy when ``floor((s + 1)·λ) > floor(s·λ)``,
  ``λ = loss.on_policy``: exactly ``floor(λ·S)`` of the first ``S`` steps, spread evenly, decided without an RNG.
  GKD draws a coin per step; a schedule gives the share exactly and a resumed run the same steps.
* **the prompt** (:func:`prompt_ids`): ``render_prompt(tokenizer, record.prompt, record.system)``, what evaluation
  shows the model. The step's micro-batches (the batch plan's, so ``λ`` does not change which records a step reads)
  give the prompts; their CoT and answer are not read.
* **the lead of a sample** (:func:`rollout_budget`): ``floor(encode.lsp · rollout.max_new_tokens)`` tokens, and
  sampling stops there. A token past the lead would never be supervised and never changes one before it (causal
  attention), so sampling it would be waste — and sampling is what on-policy steps cost most. The budget is fixed
  before sampling (a sample's length is not known until it ends), so a sample that ends (EOS) within it is
  supervised whole, its EOS included: the ending is what these steps are for.
* **what is supervised** (:func:`rollout_example`): every sampled token (EOS included); the prompt never.
  ``encode.sections`` does not apply to rollouts: the whole sample is the student's own writing.
* **the seed** (:func:`rollout_seed`): (``seed``, the micro-batch's global index), on a forked RNG — no RNG state to
  checkpoint, a resumed run draws what a straight one drew, and 2 processes draw what 1 process with twice the
  accumulation draws.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from cotdistill.compute import ModelShape, sampling_flops
from cotdistill.data.batching import Batch, BatchPlan, Collator
from cotdistill.data.encode import COT, IGNORE_INDEX, PROMPT, EncodeConfig, EncodedExample, lead_budget, render_prompt
from cotdistill.data.records import ReasoningRecord
from cotdistill.errors import TrainingError
from cotdistill.generate import sample_continuations
from cotdistill.training.config import RolloutConfig, TrainConfig


def rollout_budget(rollout: RolloutConfig, encode: EncodeConfig) -> int:
    """The tokens sampled (and supervised) per sample: the lead share ``encode.lsp`` of ``rollout.max_new_tokens``."""
    return lead_budget(rollout.max_new_tokens, encode.lsp) if encode.lsp < 1.0 else rollout.max_new_tokens


def rollout_seed(seed: int, global_index: int) -> int:
    """The sampling seed of micro-batch ``global_index`` (its place in the batch plan, the same on any world size)."""
    return seed * 1_000_003 + global_index


def prompt_ids(tokenizer, record: ReasoningRecord) -> list[int]:
    """The token ids a model continues for ``record`` at inference (user turn, its system turn, assistant header)."""
    text = render_prompt(tokenizer, record.prompt, record.system)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def rollout_example(prompt: list[int], sample: list[int], index: int) -> EncodedExample:
    """A training row from a sample: the prompt unsupervised, every sampled token a label (labels aligned with the
    ids; the loss shifts them by one)."""
    ids = prompt + sample
    return EncodedExample(ids, [IGNORE_INDEX] * len(prompt) + sample, [PROMPT] * len(prompt) + [COT] * len(sample),
                          index, len(ids))


@dataclass
class RolloutStats:
    """What one on-policy step sampled and what it cost (this process's share)."""

    samples: int = 0
    ended: int = 0  # samples that wrote EOS within the budget
    tokens: int = 0  # sampled tokens, EOS included
    flops: int = 0
    seconds: float = 0.0

    def log(self) -> dict[str, float]:
        n = max(self.samples, 1)
        return {"on_policy": 1, "rollout_tokens": self.tokens / n, "rollout_eos": self.ended / n,
                "rollout_s": self.seconds}


class Rollouts:
    """The on-policy part of a run: which steps sample, the training prompts, and the step's sampled micro-batches."""

    def __init__(self, cfg: TrainConfig, tokenizer, records: dict[int, ReasoningRecord], collator: Collator,
                 max_positions: int | None) -> None:
        self.share, self.rollout, self.seed, self.collator = cfg.loss.on_policy, cfg.rollout, cfg.seed, collator
        self.budget = rollout_budget(cfg.rollout, cfg.encode)
        self.prompts = {i: prompt_ids(tokenizer, r) for i, r in records.items()}
        self.eos_id, self.pad_id, self.vocab = tokenizer.eos_token_id, tokenizer.pad_token_id, len(tokenizer)
        if self.eos_id is None:
            raise TrainingError("loss.on_policy: the tokenizer has no EOS token, so a sample could never end")
        longest = max(len(p) for p in self.prompts.values())
        if max_positions is not None and longest + self.budget > max_positions:
            raise TrainingError(f"loss.on_policy: the longest training prompt ({longest} tokens) plus the rollout "
                                f"budget ({self.budget} tokens) exceeds the models' {max_positions} positions; "
                                "lower rollout.max_new_tokens (or data.max_tokens)")

    def on_policy(self, step: int) -> bool:
        return math.floor((step + 1) * self.share + 1e-9) > math.floor(step * self.share + 1e-9)

    def step_batches(self, student, plan: BatchPlan, step: int, shape: ModelShape) -> tuple[list[Batch], RolloutStats]:
        """The step's micro-batches, each its records' prompts with the student's samples (``rollout.samples``
        per prompt), sampled in eval mode (no dropout) and collated as records are."""
        stats, batches, start = RolloutStats(), [], time.perf_counter()
        was_training = student.training
        student.eval()
        try:
            for global_index in plan.step_indices(step):
                examples = [e for row in plan.micro_rows(global_index) for e in row]
                batches.append(self._sampled_batch(student, examples, global_index, shape, stats))
        finally:
            student.train(was_training)
        stats.seconds = time.perf_counter() - start
        return batches, stats

    def _sampled_batch(self, student, examples: list[EncodedExample], global_index: int, shape: ModelShape,
                       stats: RolloutStats) -> Batch:
        jobs = [e.index for e in examples for _ in range(self.rollout.samples)]
        prompts = [self.prompts[i] for i in jobs]
        samples = sample_continuations(student, prompts, max_new_tokens=self.budget,
                                       temperature=self.rollout.temperature, top_p=self.rollout.top_p,
                                       eos_id=self.eos_id, pad_id=self.pad_id, vocab=self.vocab,
                                       seed=rollout_seed(self.seed, global_index))
        stats.samples += len(samples)
        stats.ended += sum(1 for s in samples if s and s[-1] == self.eos_id)
        stats.tokens += sum(len(s) for s in samples)
        # what the samples need: the padded prompt's forward, then each row's own tokens (finished rows leave the
        # batch in the shrinking decoder, so a row costs its own length, not the longest's)
        longest = max(len(p) for p in prompts)
        stats.flops += sum(sampling_flops(shape, 1, longest, len(s)) for s in samples)
        return self.collator.batch([rollout_example(p, s, i) for p, s, i in zip(prompts, samples, jobs)])


def add_rollout_counts(state: dict, stats: RolloutStats) -> None:
    """An on-policy step's sampling into the run's counters; its FLOPs count in the run's total as well."""
    state["on_policy_steps"] += 1
    state["rollout_samples"] += stats.samples
    state["rollout_ended"] += stats.ended
    state["rollout_tokens"] += stats.tokens
    state["sampling_flops"] += stats.flops
    state["flops"] += stats.flops


ROLLOUT_COUNTERS = ("on_policy_steps", "rollout_samples", "rollout_ended", "rollout_tokens", "sampling_flops")


def rollout_summary(totals: dict[str, float]) -> dict:
    """The run summary's on-policy figures, from the counters summed over processes."""
    samples = totals["rollout_samples"]
    return {"on_policy_steps": int(totals["on_policy_steps"]), "rollout_samples": int(samples),
            "rollout_tokens": int(totals["rollout_tokens"]),
            "rollout_eos_share": totals["rollout_ended"] / samples if samples else None,
            "sampling_flops": int(totals["sampling_flops"])}

