"""Batched generation from any HF causal LM: KV cache, left padding, greedy or sampled, n samples per prompt.

The vLLM backend is used when ``backend='auto'``, vLLM is installed and CUDA is present; both return the same
:class:`Generation` rows.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field
from typing import Literal

import torch
from tqdm.auto import tqdm

from cotdistill.config import AT_LEAST_ONE, FRACTION, NON_NEGATIVE, check_field_rules
from cotdistill.data.encode import render_prompt

Backend = Literal["auto", "hf", "vllm"]


@dataclass
class GenerationConfig:
    max_new_tokens: int = field(default=512, metadata={"range": AT_LEAST_ONE})
    temperature: float = field(default=0.0, metadata={"help": "0 = greedy", "range": NON_NEGATIVE})
    top_p: float = field(default=1.0, metadata={"range": FRACTION})
    samples: int = field(default=1, metadata={"help": "completions per prompt", "range": AT_LEAST_ONE})
    batch_size: int = field(default=32, metadata={"range": AT_LEAST_ONE})
    seed: int = 0
    backend: Backend = "auto"
    shrink: bool = True  # drop finished rows from the batch (and cache) instead of decoding them on

    def __post_init__(self) -> None:
        check_field_rules(self)


@dataclass
class Generation:
    prompt_index: int
    sample_index: int
    text: str
    num_tokens: int
    hit_max_tokens: bool  # stopped by max_new_tokens rather than EOS: usually a silent zero for reasoning models


@dataclass
class GenerationStats:
    seconds: float
    generated_tokens: int

    @property
    def tokens_per_s(self) -> float:
        return self.generated_tokens / max(self.seconds, 1e-9)


# generation settings a checkpoint may carry that plain greedy decoding would ignore (Qwen2.5-Instruct sets a
# repetition penalty): with any of them, HF generate decodes, so results never depend on the shrink setting
_PROCESSOR_DEFAULTS = {"repetition_penalty": 1.0, "no_repeat_ngram_size": 0, "min_new_tokens": None,
                       "min_length": 0, "suppress_tokens": None, "begin_suppress_tokens": None, "bad_words_ids": None,
                       "forced_bos_token_id": None, "forced_eos_token_id": None, "sequence_bias": None}


def can_shrink(model) -> bool:
    """Whether :func:`greedy_shrinking` decodes as ``model.generate`` would: the model's forward takes the cache as
    ``cache=`` (the name transformers keeps; its dynamic caches can drop rows, sliding-window layers included) and
    the model's generation config asks for no logits processor."""
    # read from the forward itself, not a version number: transformers before the rename takes the cache only as
    # past_key_values and would ignore cache=, and those models are decoded by HF generate instead
    if "cache" not in inspect.signature(model.forward).parameters:
        return False
    gen = getattr(model, "generation_config", None)
    return gen is None or all(getattr(gen, k, d) in (d, None) or (k == "min_length" and not getattr(gen, k))
                              for k, d in _PROCESSOR_DEFAULTS.items())


def nucleus_sample(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """One token per row of ``logits [B, V]``, drawn from ``softmax(logits / temperature)`` restricted to the
    smallest set of tokens whose probability reaches ``top_p`` (the most likely token always stays), renormalised;
    the draw uses the global RNG. Equivalent to sorting the probabilities, keeping the prefix whose cumulative sum
    before each token is below ``top_p``, and ``torch.multinomial`` over it."""
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        before = sorted_probs.cumsum(-1) - sorted_probs  # the mass of the tokens ranked above each one
        sorted_probs = sorted_probs.masked_fill(before >= top_p, 0.0)
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
    return torch.multinomial(probs, 1).squeeze(1)


@torch.no_grad()
def greedy_shrinking(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int,
                     eos_id: int, vocab: int | None = None, choose=None) -> list[list[int]]:
    """Greedy decoding of a left-padded batch that drops each row from the batch, and its keys and values from the
    cache, once it has written EOS: reasoning traces differ in length by thousands of tokens, and a batch decoded
    to its longest row spends most steps on rows that are done. Returns each row's new tokens (EOS included).
    ``vocab``: the tokenizer's size; logit rows past it are padding and never chosen. ``choose``: logits
    ``[B, vocab]`` -> the next tokens ``[B]`` (``None``: argmax; :func:`nucleus_sample` for sampling)."""
    n = input_ids.shape[0]
    alive = torch.arange(n, device=input_ids.device)
    outputs: list[list[int]] = [[] for _ in range(n)]
    positions = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)
    # the prompt's logits are needed at its last position only ([B, T, V] at T = 1k, V = 152k is tens of GB)
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions, use_cache=True,
                logits_to_keep=1)
    cache, mask, next_position = out.cache, attention_mask, positions[:, -1] + 1
    ended = torch.zeros(n, dtype=torch.bool, device=input_ids.device)
    for step in range(max_new_tokens):
        logits = out.logits[:, -1, :vocab]
        token = logits.argmax(-1) if choose is None else choose(logits)
        for row, t in zip(alive.tolist(), token.tolist()):
            outputs[row].append(t)  # a row that rides along after EOS is cut at its first EOS by the caller
        ended = ended | (token == eos_id)
        if step == max_new_tokens - 1 or bool(ended.all()):
            break
        if bool(ended.any()) and hasattr(cache, "batch_select_indices"):  # else the finished rows ride along
            keep = (~ended).nonzero().squeeze(1)
            cache.batch_select_indices(keep)
            alive, token, mask, next_position = alive[keep], token[keep], mask[keep], next_position[keep]
            ended = ended[keep]
        mask = torch.cat([mask, mask.new_ones(len(alive), 1)], dim=1)
        out = model(input_ids=token[:, None], attention_mask=mask, position_ids=next_position[:, None],
                    cache=cache, use_cache=True)
        next_position = next_position + 1
    return outputs


@torch.no_grad()
def sample_continuations(model, prompts: list[list[int]], *, max_new_tokens: int, temperature: float, top_p: float,
                         eos_id: int, pad_id: int, vocab: int, seed: int) -> list[list[int]]:
    """Each prompt's continuation (token ids, EOS included where the model wrote it), sampled in one left-padded
    batch with the model's current weights; rows past the tokenizer's ``vocab`` are never sampled. The draw is
    seeded by ``seed`` alone, on a forked RNG: the caller's global RNG stream is left as it was, and the same
    prompts, weights and seed give the same samples (what makes a resumed on-policy run equal a straight one).
    ``temperature`` 0 is greedy. No top-k: the sample follows the model's distribution (HF's default top-k 50 would
    cut its tail)."""
    longest = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), longest), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), longest), dtype=torch.long)
    for row, ids in enumerate(prompts):  # left padding: every row's next token sits at the last position
        input_ids[row, longest - len(ids):] = torch.tensor(ids)
        attention_mask[row, longest - len(ids):] = 1
    head_rows = model.get_output_embeddings().weight.shape[0]
    kwargs = dict(max_new_tokens=max_new_tokens, pad_token_id=pad_id, eos_token_id=eos_id, use_cache=True,
                  do_sample=temperature > 0, top_k=0)
    kwargs.update(temperature=temperature, top_p=top_p) if temperature > 0 else kwargs.update(temperature=None,
                                                                                              top_p=None)
    if head_rows > vocab:
        kwargs["suppress_tokens"] = list(range(vocab, head_rows))
    devices = [model.device] if model.device.type == "cuda" else []
    input_ids, attention_mask = input_ids.to(model.device), attention_mask.to(model.device)
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        if can_shrink(model):  # finished rows leave the batch: 1.2x the sampled tokens/s of generate on the world
            choose = (lambda logits: nucleus_sample(logits, temperature, top_p)) if temperature > 0 else None
            rows = greedy_shrinking(model, input_ids, attention_mask, max_new_tokens, eos_id, vocab, choose)
        else:
            out = model.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
            rows = out[:, longest:].tolist()
    return [ids[:ids.index(eos_id) + 1] if eos_id in ids else ids for ids in rows]


def _vllm_available() -> bool:
    if not torch.cuda.is_available():
        return False
    try:
        import vllm  # noqa: F401
    except ImportError:
        return False
    return True


@torch.no_grad()
def generate_hf(model, tokenizer, prompts: list[str], config: GenerationConfig, *,
                progress: bool = True) -> tuple[list[Generation], GenerationStats]:
    """``prompts`` are rendered chat prompts (text ending in the assistant header)."""
    tokenizer.padding_side = "left"  # left padding: every row's next token sits at the last position
    eos_id = tokenizer.eos_token_id
    do_sample = config.temperature > 0
    if do_sample:
        torch.manual_seed(config.seed)
    # logit rows past the tokenizer are padding (Qwen: 152,064 rows for 151,665 tokens): never generated, the rule
    # the loss, the teacher cache and provenance scoring follow too
    head_rows = model.get_output_embeddings().weight.shape[0]
    padding_rows = list(range(len(tokenizer), head_rows))
    jobs = [(i, s) for i in range(len(prompts)) for s in range(config.samples)]
    # sorting by prompt length keeps padding small; results are returned in job order
    jobs.sort(key=lambda job: len(prompts[job[0]]))
    out: list[Generation] = []
    model.eval()
    start, total = time.perf_counter(), 0
    for b in tqdm(range(0, len(jobs), config.batch_size), desc="generate", disable=not progress):
        chunk = jobs[b:b + config.batch_size]
        enc = tokenizer([prompts[i] for i, _ in chunk], return_tensors="pt", padding=True,
                        add_special_tokens=False).to(model.device)
        kwargs = dict(max_new_tokens=config.max_new_tokens, do_sample=do_sample, pad_token_id=tokenizer.pad_token_id,
                      eos_token_id=eos_id)
        if do_sample:
            kwargs.update(temperature=config.temperature, top_p=config.top_p)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if not config.shrink or not can_shrink(model):
            if padding_rows:
                kwargs.update(suppress_tokens=padding_rows)
            seqs = model.generate(**enc, **kwargs)
            rows = [row.tolist() for row in seqs[:, enc["input_ids"].shape[1]:]]
        else:  # finished rows leave the batch, greedy or sampled (nucleus, no top-k, on the seeded global RNG)
            choose = (lambda logits: nucleus_sample(logits, config.temperature, config.top_p)) if do_sample else None
            rows = greedy_shrinking(model, enc["input_ids"], enc["attention_mask"], config.max_new_tokens, eos_id,
                                    vocab=len(tokenizer), choose=choose)
        for (i, s), ids in zip(chunk, rows):
            ended = eos_id in ids
            ids = ids[:ids.index(eos_id)] if ended else [t for t in ids if t != tokenizer.pad_token_id]
            total += len(ids) + int(ended)
            out.append(Generation(i, s, tokenizer.decode(ids, skip_special_tokens=False), len(ids), not ended))
    out.sort(key=lambda g: (g.prompt_index, g.sample_index))
    return out, GenerationStats(time.perf_counter() - start, total)


def generate_vllm(model_path: str, tokenizer, prompts: list[str],
                  config: GenerationConfig) -> tuple[list[Generation], GenerationStats]:
    from vllm import LLM, SamplingParams

    llm = LLM(model=model_path, seed=config.seed)
    params = SamplingParams(n=config.samples, temperature=config.temperature, top_p=config.top_p,
                            max_tokens=config.max_new_tokens, seed=config.seed)
    start = time.perf_counter()
    results = llm.generate(prompts, params)
    out, total = [], 0
    for i, res in enumerate(results):
        for s, comp in enumerate(res.outputs):
            total += len(comp.token_ids)
            out.append(Generation(i, s, comp.text, len(comp.token_ids), comp.finish_reason == "length"))
    return out, GenerationStats(time.perf_counter() - start, total)


def generate(model, tokenizer, questions: list[str], config: GenerationConfig, *, model_path: str | None = None,
             system: str | None = None, progress: bool = True) -> tuple[list[Generation], GenerationStats]:
    """Generate answers to plain ``questions``, each rendered through the tokenizer's chat template."""
    prompts = [render_prompt(tokenizer, q, system) for q in questions]
    use_vllm = config.backend == "vllm" or (config.backend == "auto" and model_path is not None and _vllm_available())
    if use_vllm:
        return generate_vllm(model_path, tokenizer, prompts, config)
    return generate_hf(model, tokenizer, prompts, config, progress=progress)
