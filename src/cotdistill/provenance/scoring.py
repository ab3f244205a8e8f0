"""Teacher-forced scoring of actions: one forward pass per (model, response) gives every action's log-probs.

The context is *text*: the prompt rendered with the model's own chat template, then the response. Each model
tokenizes it its own way, so models with different tokenizers are compared on the same text; action boundaries
are mapped to tokens per tokenizer through character offsets (a token belongs to the action holding its first
non-whitespace character, the rule the segment masks use).

Naive equivalent (what :func:`score_actions_separately` does, and what the tests compare against): for each
action, run the model on the tokens up to the action's last token and read the log-probs of the action's tokens.
Causal attention makes the single pass equal to that, at a fraction of the cost.
"""

from __future__ import annotations

import gc
import hashlib
import json
import math
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from cotdistill.data.encode import render_prompt
from cotdistill.provenance.actions import Action


@dataclass
class ActionScore:
    n_tokens: int
    logprob_sum: float

    @property
    def logprob_mean(self) -> float:
        return self.logprob_sum / self.n_tokens if self.n_tokens else 0.0

    @property
    def prob(self) -> float:
        """Length-normalised probability: the geometric mean of the action's token probabilities."""
        return math.exp(self.logprob_mean) if self.n_tokens else float("nan")


@dataclass
class TokenizedResponse:
    ids: list[int]
    action_of_token: list[int]  # -1 for context tokens, else the action index


Context = Literal["own_template", "shared_text"]
CONTEXTS = typing.get_args(Context)


def shared_contexts(prompts: list[str], reference_model: str, context: str) -> tuple[list[str], bool]:
    """The prefixes every scoring model sees, and whether they are raw text. ``own_template`` (the default): each
    model reads the question in its own chat template, as it was trained and as it generated — the same
    conversation for all. ``shared_text``: the question rendered once by ``reference_model``'s template and given
    to every model as the identical string, so models with different templates condition on the same tokens."""
    if context not in CONTEXTS:
        from cotdistill.config import ConfigError

        raise ConfigError(f"context must be one of {CONTEXTS}, got {context!r}")
    if context == "own_template":
        return prompts, False
    from cotdistill.data.encode import render_prompt
    from cotdistill.models import load_tokenizer

    tokenizer = load_tokenizer(reference_model)
    return [render_prompt(tokenizer, p) for p in prompts], True


def tokenize_with_actions(tokenizer, prompt: str, response: str, actions: list[Action],
                          system: str | None = None, raw_context: bool = False) -> TokenizedResponse:
    """Token ids of ``context + response`` and, per token, the action it belongs to (-1: context)."""
    context = prompt if raw_context else render_prompt(tokenizer, prompt, system)
    text = context + response
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    owners, base = [], len(context)
    starts = [a.start + base for a in actions]
    ends = [a.end + base for a in actions]
    for start, end in enc["offset_mapping"]:
        pos = start
        while pos < end - 1 and text[pos].isspace():
            pos += 1
        owner = -1
        if pos >= base:
            owner = next((k for k, (s, e) in enumerate(zip(starts, ends)) if s <= pos < e), -1)
        owners.append(owner)
    return TokenizedResponse(list(enc["input_ids"]), owners)


def _aggregate(token_logp: list[float], owners: list[int], n_actions: int) -> list[ActionScore]:
    scores = [ActionScore(0, 0.0) for _ in range(n_actions)]
    for lp, owner in zip(token_logp, owners):
        if owner >= 0:
            scores[owner].n_tokens += 1
            scores[owner].logprob_sum += lp
    return scores


@torch.no_grad()
def token_logprobs(model, batch_ids: list[list[int]], pad_id: int, vocab: int | None = None) -> list[list[float]]:
    """log p(token_t | tokens_<t) for every token (the first gets 0: it has no context), right-padded batch.

    Naive equivalent: ``log_softmax(model(ids).logits[..., :vocab], -1)[t - 1, ids[t]]``. ``vocab``: the tokenizer's
    size; logit rows past it are padding (Qwen: 152,064 rows for 151,665 tokens) and are cut before the softmax,
    the rule the training loss and the teacher cache follow (``models.shared_vocab_size``).
    """
    device = next(model.parameters()).device
    longest = max(len(ids) for ids in batch_ids)
    input_ids = torch.full((len(batch_ids), longest), pad_id, dtype=torch.long)
    mask = torch.zeros_like(input_ids)
    for row, ids in enumerate(batch_ids):
        input_ids[row, :len(ids)] = torch.tensor(ids)
        mask[row, :len(ids)] = 1
    logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device), use_cache=False).logits
    out = []
    for row, ids in enumerate(batch_ids):
        n = len(ids)
        targets = input_ids[row, 1:n].to(device)
        # one row at a time keeps the float32 log-softmax at [T, V], not [B, T, V]
        lp = F.log_softmax(logits[row, :n - 1, :vocab].float(), -1).gather(-1, targets[:, None])[:, 0]
        out.append([0.0] + lp.tolist())
    return out


def score_actions(model, tokenizer, prompts: list[str], responses: list[str], actions: list[list[Action]], *,
                  batch_size: int = 8, system: str | None = None, raw_context: bool = False,
                  progress: bool = False, desc: str = "score") -> list[list[ActionScore]]:
    """Scores of every action of every response under ``model``: one forward per response (batched)."""
    model.eval()
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    tokenized = [tokenize_with_actions(tokenizer, p, r, a, system, raw_context)
                 for p, r, a in zip(prompts, responses, actions)]
    order = sorted(range(len(tokenized)), key=lambda i: len(tokenized[i].ids))  # similar lengths share a batch
    results: list[list[ActionScore]] = [[] for _ in tokenized]
    for b in tqdm(range(0, len(order), batch_size), desc=desc, disable=not progress):
        idx = order[b:b + batch_size]
        logps = token_logprobs(model, [tokenized[i].ids for i in idx], pad_id, len(tokenizer))
        for i, lp in zip(idx, logps):
            results[i] = _aggregate(lp, tokenized[i].action_of_token, len(actions[i]))
    return results


@torch.no_grad()
def score_actions_separately(model, tokenizer, prompt: str, response: str, actions: list[Action],
                             system: str | None = None) -> list[ActionScore]:
    """The slow reference: one forward per action, over exactly the context that precedes it."""
    tok = tokenize_with_actions(tokenizer, prompt, response, actions, system)
    scores = []
    for k in range(len(actions)):
        positions = [t for t, owner in enumerate(tok.action_of_token) if owner == k]
        if not positions:
            scores.append(ActionScore(0, 0.0))
            continue
        ids = tok.ids[:positions[-1] + 1]
        lp = token_logprobs(model, [ids], 0, len(tokenizer))[0]
        scores.append(ActionScore(len(positions), sum(lp[t] for t in positions)))
    return scores


def _read_cache(cache_file: Path) -> dict[str, list]:
    """Everything stored for ``cache_file``: the file itself and the per-rank shards of a multi-process run."""
    done: dict[str, list] = {}
    for path in sorted(cache_file.parent.glob(cache_file.name + "*")):
        if path.name == cache_file.name or path.name.startswith(cache_file.name + ".rank"):
            for line in open(path):
                row = json.loads(line)
                done[row["key"]] = row["scores"]
    return done


def score_with_cache(model_path: str, keys: list[str], prompts: list[str], responses: list[str],
                     actions: list[list[Action]], cache_file: Path, *, batch_size: int = 8, device: str = "auto",
                     raw_context: bool = False, progress: bool = False, desc: str = "score") -> dict[str, list]:
    """{key: [[n_tokens, logprob_sum] per action]}, reading what ``cache_file`` already holds and appending the rest.

    The model is loaded only if something is missing, so a finished scoring pass costs nothing to re-use. Under
    ``torchrun`` the missing records are split across ranks; each rank appends to its own shard
    (``<cache_file>.rank<r>``) and, after a barrier, every rank reads all shards.
    """
    from cotdistill.distributed import barrier, current_dist

    info = current_dist()
    caller_keys = keys
    # stored under the caller's key *and* what the score depends on (model files, texts, action spans, context
    # mode): a cache written for other models or samples is recomputed, never reused
    fingerprint = model_fingerprint(model_path)
    keys = [f"{k}@{_content_digest(fingerprint, prompts[i], responses[i], actions[i], raw_context)}"
            for i, k in enumerate(keys)]
    done = _read_cache(cache_file)
    todo = [i for i, k in enumerate(keys) if k not in done][info.rank::info.world_size]
    if todo:
        from cotdistill.models import load_model, load_tokenizer, pick_device

        tokenizer = load_tokenizer(model_path)
        dev = pick_device(device)
        if dev.type == "cuda" and info.enabled:
            dev = torch.device("cuda", info.local_rank)
        model = load_model(model_path, dev)
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        target = cache_file if not info.enabled else cache_file.with_name(f"{cache_file.name}.rank{info.rank}")
        chunk = batch_size * 8  # append every few batches, so a killed run loses little
        with open(target, "a") as fh:
            for c in tqdm(range(0, len(todo), chunk), desc=desc, disable=not progress or not info.is_main):
                idx = todo[c:c + chunk]
                scores = score_actions(model, tokenizer, [prompts[i] for i in idx], [responses[i] for i in idx],
                                       [actions[i] for i in idx], batch_size=batch_size, raw_context=raw_context)
                for i, sc in zip(idx, scores):
                    done[keys[i]] = [[a.n_tokens, a.logprob_sum] for a in sc]
                    fh.write(json.dumps({"key": keys[i], "scores": done[keys[i]]}) + "\n")
                fh.flush()
        del model
        gc.collect()
    if info.enabled:
        barrier(info)
        done = _read_cache(cache_file)
    return {caller: done[stored] for caller, stored in zip(caller_keys, keys)}


def model_fingerprint(model_path: str) -> str:
    """What identifies a model's scores: for a local folder its resolved path and the size and modification time
    of its weight and tokenizer files (rewritten weights change it; hashing gigabytes on every call would not pay);
    for a hub id, the id."""
    from cotdistill.models import resolve

    path = Path(resolve(model_path))
    if not path.is_dir():
        return model_path
    files = sorted(p for pattern in ("*.safetensors", "*.bin", "tokenizer*.json", "config.json")
                   for p in path.glob(pattern))
    return "|".join([str(path.resolve()), *(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)])


def _content_digest(model: str, prompt: str, response: str, actions: list[Action], raw_context: bool) -> str:
    spans = ";".join(f"{a.start}-{a.end}" for a in actions)
    text = "\x1f".join([model, prompt, response, spans, str(raw_context)])
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
