"""Shared fixtures: tokenizers whose token boundaries can be derived by hand, and tiny models built from configs."""

from __future__ import annotations

import os

import pytest
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

from cotdistill.world.tokenizer import CHAT_TEMPLATE

# no test may reach a hub (CI has no network): a hub id that is not cached fails at once instead of retrying
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")



@pytest.fixture(autouse=True)
def idle_machine(monkeypatch):
    """Every test sees an idle machine: the busy-machine warning (a 1-minute load average near the cores) would add
    a stderr line to the one-line errors tests count, so a test's outcome would depend on what else runs beside it.
    The warning's own tests set the load they need."""
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))


CHARS = [chr(c) for c in range(32, 127)] + ["\n"]
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
SYSTEM_TEMPLATE = (
    "{%- if messages[0]['role'] != 'system' %}{{- '<|im_start|>system\\nYou are helpful.<|im_end|>\\n' }}{%- endif %}"
    + CHAT_TEMPLATE
)


def char_tokenizer(think_special: bool = True, template: str = CHAT_TEMPLATE):
    """One token per character; ``<think>``/``</think>`` are single special tokens or several characters."""
    # transformers and torch are imported where used: tests that need neither start in a second, not seven
    from transformers import PreTrainedTokenizerFast

    specials = SPECIALS + (["<think>", "</think>"] if think_special else [])
    vocab = {tok: i for i, tok in enumerate(specials + CHARS + ["<unk>"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   unk_token="<unk>", additional_special_tokens=specials[1:])
    fast.chat_template = template
    return fast


@pytest.fixture
def char_tok():
    return char_tokenizer()


def tiny_qwen(vocab: int, hidden: int = 32, layers: int = 2, seed: int = 0, attn: str = "sdpa"):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    cfg = Qwen2Config(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      tie_word_embeddings=True)
    cfg._attn_implementation = attn
    return Qwen2ForCausalLM(cfg).eval()


def save_teacher_and_student(root) -> None:
    """``root/teacher`` and ``root/student``: two tiny Qwen2 models (seeds 1 and 2) with the character tokenizer,
    saved as a user's own models are (folders ``from_pretrained`` reads)."""
    tok = char_tokenizer()
    for name, seed in (("teacher", 1), ("student", 2)):
        tiny_qwen(len(tok), hidden=16, layers=1, seed=seed).save_pretrained(root / name)
        tok.save_pretrained(root / name)
