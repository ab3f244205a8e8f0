"""Scores of candidate training records under the teacher and the original student.

Each candidate response (the assistant turn: ``<think>cot</think>answer``) is split into actions and scored in
one pass per model with the provenance scorer, under the same text prefix (the prompt in each model's chat
template). Per action, p_T and p_S are length-normalised probabilities; the action is *teacher* (p_T − p_S > β),
*student* (p_S − p_T > β) or *common*. Scores are cached on disk per model, keyed by a hash of the record's text,
so every selection method reuses one scoring pass, and a killed run resumes.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from cotdistill.data.records import ReasoningRecord
from cotdistill.provenance.actions import Action, split_actions
from cotdistill.provenance.classify import DEFAULT_MARGIN, classify_pair, margin_of
from cotdistill.provenance.scoring import score_with_cache, shared_contexts

LOCAL_WINDOW = 1  # actions of context for local naturalness


def record_key(record: ReasoningRecord) -> str:
    return hashlib.sha1((record.prompt + "\x00" + record.assistant_text()).encode()).hexdigest()[:20]


@dataclass
class CandidateScore:
    key: str
    actions: int
    teacher_actions: int
    student_actions: int
    common_actions: int
    student_logprob_mean: float  # over all response tokens under the student (GRAPE's length-normalised prob)
    student_tokens: int
    local_naturalness: float | None = None  # mean per-action log-prob with only LOCAL_WINDOW actions of context

    @property
    def teacher_share(self) -> float:
        return self.teacher_actions / max(self.actions, 1)


def _local_inputs(actions: list[Action]) -> tuple[list[str], list[str]]:
    """(context, action text) pairs: each action with only the preceding LOCAL_WINDOW actions as raw context."""
    contexts, texts = [], []
    for k, a in enumerate(actions):
        window = actions[max(0, k - LOCAL_WINDOW):k]
        contexts.append("".join(w.text + "\n" for w in window))
        texts.append(a.text)
    return contexts, texts


def score_candidates(records: list[ReasoningRecord], teacher: str, student: str, cache_dir: str | Path, *,
                     margin: float = DEFAULT_MARGIN, batch_size: int = 8, device: str = "auto",
                     local_naturalness: bool = False, progress: bool = True,
                     context: str = "own_template", beta: float | None = None) -> list[CandidateScore]:
    """``context``: see :func:`cotdistill.provenance.scoring.shared_contexts` (``shared_text`` renders with the
    student's template). ``beta``: the deprecated name of ``margin``."""
    margin = margin_of(margin, beta)
    cache_dir = Path(cache_dir)
    keys = [record_key(r) for r in records]
    prompts, raw = shared_contexts([r.prompt for r in records], student, context)
    responses = [r.assistant_text() for r in records]
    actions = [split_actions(text) for text in responses]
    t = score_with_cache(teacher, keys, prompts, responses, actions, cache_dir / "scores-teacher.jsonl",
                         batch_size=batch_size, device=device, progress=progress, desc="score teacher",
                         raw_context=raw)
    s = score_with_cache(student, keys, prompts, responses, actions, cache_dir / "scores-student.jsonl",
                         batch_size=batch_size, device=device, progress=progress, desc="score student",
                         raw_context=raw)
    local: dict[str, list] = {}
    if local_naturalness:
        flat_keys, ctx, txt, owners = [], [], [], []
        for key, acts in zip(keys, actions):
            c, x = _local_inputs(acts)
            for k in range(len(acts)):
                flat_keys.append(f"{key}:{k}")
                owners.append(key)
            ctx += c
            txt += x
        spans = [[Action(x, 0, len(x))] for x in txt]
        flat = score_with_cache(student, flat_keys, ctx, txt, spans, cache_dir / "scores-local.jsonl",
                                batch_size=batch_size * 4, device=device, raw_context=True, progress=progress,
                                desc="score local")
        for fk, owner in zip(flat_keys, owners):
            local.setdefault(owner, []).append(flat[fk][0])
    out = []
    for key in keys:
        kinds = [classify_pair(_p(*ts), _p(*ss), margin=margin) for ts, ss in zip(t[key], s[key]) if ts[0] and ss[0]]
        n_tok = sum(n for n, _ in s[key])
        mean = sum(lp for _, lp in s[key]) / max(n_tok, 1)
        natural = None
        if key in local:
            per_action = [lp / n for n, lp in local[key] if n]
            natural = sum(per_action) / max(len(per_action), 1)
        out.append(CandidateScore(key, len(kinds), kinds.count("teacher"), kinds.count("student"),
                                  kinds.count("common"), mean, n_tok, natural))
    return out


def _p(n_tokens: float, logprob_sum: float) -> float:
    return math.exp(logprob_sum / n_tokens)


def score_rows(scores: list[CandidateScore]) -> list[dict]:
    return [{**asdict(s), "teacher_share": s.teacher_share} for s in scores]
