"""Loading models and tokenizers (local path, hub id, or the embedded world's ``world:NAME``) and vocab checks."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

WORLD_ASSETS = Path(__file__).parent / "world" / "assets"
WORLD_PREFIX = "world:"


def resolve(name_or_path: str) -> str:
    """``world:teacher`` → the packaged asset directory; anything else unchanged (path or hub id)."""
    if name_or_path.startswith(WORLD_PREFIX):
        path = WORLD_ASSETS / name_or_path[len(WORLD_PREFIX):]
        if not path.exists():
            raise FileNotFoundError(f"{name_or_path}: no embedded asset at {path}; run `cotdistill world build`")
        return str(path)
    return name_or_path


def load_tokenizer(name_or_path: str):
    tok = AutoTokenizer.from_pretrained(resolve(name_or_path))
    if tok.pad_token is None:
        # pad == EOS is safe here: labels and attention masks are built from lengths, never from pad ids
        tok.pad_token = tok.eos_token
    return tok


def load_model(name_or_path: str, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
    model = AutoModelForCausalLM.from_pretrained(resolve(name_or_path), dtype=dtype)
    return model.to(device)


def shared_vocab_size(student_vocab: int, teacher_vocab: int, tokenizer_size: int) -> int:
    """The logit rows both models share. Rows past the tokenizer are padding (Qwen: 152,064 vs 151,936 rows for
    151,665 tokens) and are dropped; a model with fewer rows than the tokenizer has tokens it cannot score."""
    shared = min(student_vocab, teacher_vocab)
    if shared < tokenizer_size:
        raise ValueError(f"vocabulary mismatch: student has {student_vocab} logit rows, teacher {teacher_vocab}, "
                         f"tokenizer {tokenizer_size} tokens; both models need at least the tokenizer's size")
    return shared


def check_same_tokenizer(student_tok, teacher_tok) -> None:
    if student_tok.get_vocab() != teacher_tok.get_vocab():
        raise ValueError(f"teacher and student tokenizers differ ({len(teacher_tok)} vs {len(student_tok)} tokens): "
                         "token-level distillation needs one vocabulary")


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
