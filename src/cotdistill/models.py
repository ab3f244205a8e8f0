"""Loading models and tokenizers (local path, hub id, or the embedded world's ``world:NAME``) and vocab checks."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from cotdistill.errors import UserError
from cotdistill.sources import HUB_ID, WORLD_ASSETS, WORLD_PREFIX  # noqa: F401 (re-exported)
from cotdistill.sources import resolve_model as resolve


class ModelError(UserError, ValueError):
    """A model or tokenizer that cannot be found, loaded or paired."""


def load_tokenizer(name_or_path: str, *, chat: bool = True, chat_template: str | None = None):
    """The tokenizer of a model. ``chat``: it must have a chat template (every stage renders records with it).
    ``chat_template`` replaces the model's own: a file holding a Jinja template, or the template text itself."""
    try:
        tok = AutoTokenizer.from_pretrained(resolve(name_or_path))
    except OSError as err:  # a hub id that is not cached while offline, a folder without tokenizer files
        raise ModelError(f"{name_or_path}: could not load a tokenizer: {_first_line(err)}") from None
    if chat_template is not None:
        tok.chat_template = read_chat_template(chat_template)
    if chat and not tok.chat_template:
        raise ModelError(f"{name_or_path}: the tokenizer has no chat template; cotdistill renders every record "
                         "with it (set one in tokenizer_config.json, e.g. ChatML with <think> in assistant turns)")
    if tok.pad_token is None:
        # pad == EOS is safe here: labels and attention masks are built from lengths, never from pad ids
        tok.pad_token = tok.eos_token
    return tok


def read_chat_template(value: str) -> str:
    """A chat template given as a file path or as Jinja text. Distilled-reasoning models (the DeepSeek-R1-distill
    family) ship templates that strip ``<think>…</think>`` from assistant turns; training on their traces needs a
    template that keeps them."""
    if "{%" in value or "{{" in value:
        return value
    path = Path(value).expanduser()
    if not path.is_file():
        raise ModelError(f"chat_template {value!r}: neither a file nor a Jinja template (no '{{%' or '{{{{' in it)")
    text = path.read_text(encoding="utf-8")
    if "{%" not in text and "{{" not in text:
        raise ModelError(f"chat_template {value}: the file holds no Jinja template (no '{{%' or '{{{{' in it)")
    return text


def quiet_library_progress_bars() -> None:
    """transformers' own "Loading weights" / "Writing model shards" bars: each save and load drew one across our
    training and evaluation bars. Ours say where a run is; theirs are off."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def load_model(name_or_path: str, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
    quiet_library_progress_bars()
    try:
        model = AutoModelForCausalLM.from_pretrained(resolve(name_or_path), dtype=dtype)
    except OSError as err:
        raise ModelError(f"{name_or_path}: could not load the model: {_first_line(err)}") from None
    return model.to(device)


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def shared_vocab_size(student_vocab: int, teacher_vocab: int, tokenizer_size: int) -> int:
    """The logit rows every distillation softmax reads: the tokenizer's tokens. Rows past the tokenizer are padding
    (Qwen: 152,064 vs 151,936 rows for 151,665 tokens) and are dropped — no target is ever a padding row, so no
    probability mass may sit there. One rule for every place: the loss cuts the student's and the online teacher's
    output matrices to these rows, and a teacher cache is built over them and spreads its tail mass over the same
    tokens when the loss reconstructs it. A model with fewer rows than the tokenizer has tokens it cannot score and
    is refused."""
    if min(student_vocab, teacher_vocab) < tokenizer_size:
        raise ModelError(f"vocabulary mismatch: student has {student_vocab} logit rows, teacher {teacher_vocab}, "
                         f"tokenizer {tokenizer_size} tokens; both models need at least the tokenizer's size")
    return tokenizer_size


def check_same_tokenizer(student_tok, teacher_tok) -> None:
    if student_tok.get_vocab() != teacher_tok.get_vocab():
        raise ModelError(f"teacher and student tokenizers differ ({len(teacher_tok)} vs {len(student_tok)} tokens): "
                         "token-level distillation needs one vocabulary")


def model_max_positions(name_or_path: str) -> int | None:
    """The positions a model was built for, read from its config (no weights loaded); ``None`` if it has none."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(resolve(name_or_path))
    except (OSError, ValueError):
        return None
    return config_max_positions(config)


def config_max_positions(config) -> int | None:
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def weights_fingerprint(name_or_path: str) -> str:
    """What identifies a model's weights wherever the folder is copied: a hash of its config and, for each weight
    file, its name, size and first and last MiB (a retrained or other model differs there; hashing every byte of
    a large teacher at each run start would not pay). A hub id stands for itself."""
    path = Path(resolve(name_or_path))
    if not path.is_dir():
        return name_or_path
    digest = hashlib.sha256()
    for file in sorted([*path.glob("config.json"), *path.glob("*.safetensors"), *path.glob("*.bin")]):
        size = file.stat().st_size
        digest.update(f"{file.name}:{size}".encode())
        with open(file, "rb") as fh:
            digest.update(fh.read(1 << 20))
            fh.seek(max(size - (1 << 20), 0))
            digest.update(fh.read(1 << 20))
    return digest.hexdigest()[:24]


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
