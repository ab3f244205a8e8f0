"""Loading models and tokenizers (local path, hub id, or the embedded world's ``world:NAME``) and vocab checks."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from cotdistill.errors import UserError
from cotdistill.hashing import file_sha256
from cotdistill.quiet import quiet_library_progress_bars
from cotdistill.sources import HUB_ID, WORLD_ASSETS, WORLD_PREFIX  # noqa: F401 (re-exported)
from cotdistill.sources import resolve_model as resolve


class ModelError(UserError, ValueError):
    """A model or tokenizer that cannot be found, loaded or paired."""


# the files a tokenizer is read from, one of which a local tokenizer folder holds (fast, BPE, WordPiece, SentencePiece)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "vocab.txt",
                   "spiece.model")


def model_source(name_or_path: str, role: str = "model", *, needs: str = "config") -> str:
    """The resolved path of a model (``needs="config"``) or tokenizer (``needs="tokenizer"``), with a local folder's
    files checked before transformers reads them: an empty folder failed deep in the tokenizer's conversion code, a
    ``config.json`` field of the wrong type in its validation. ``role`` names the setting in messages."""
    path = resolve(name_or_path)
    folder = Path(path)
    if not folder.exists():  # a hub id
        return path
    if not folder.is_dir():
        raise ModelError(f"{role} {name_or_path}: expected a model folder, found a file")
    has_config = (folder / "config.json").is_file()
    if not has_config and not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise ModelError(f"{role} {name_or_path}: no config.json / tokenizer files found in the folder (an empty "
                         "folder, or a download that did not finish?)")
    if needs == "tokenizer" and not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise ModelError(f"{role} {name_or_path}: no tokenizer files found in the folder (one of "
                         f"{', '.join(TOKENIZER_FILES)})")
    if needs == "config" and not has_config:
        raise ModelError(f"{role} {name_or_path}: no config.json found in the folder")
    if has_config:  # the tokenizer reads it too (for the model type)
        _read_config(path, name_or_path, role)
    return path


def _read_config(path: str, name_or_path: str, role: str) -> None:
    from huggingface_hub.errors import StrictDataclassError
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(path)
    except (OSError, ValueError, TypeError, StrictDataclassError) as err:  # bad JSON, an unknown model type, a
        # field of the wrong type ("num_hidden_layers": "two")
        lines = " ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__
        raise ModelError(f"{role} {name_or_path}: config.json: {lines}") from None


def load_tokenizer(name_or_path: str, *, chat: bool = True, chat_template: str | None = None,
                   role: str = "model"):
    """The tokenizer of a model. ``chat``: it must have a chat template (every stage renders records with it).
    ``chat_template`` replaces the model's own: a file holding a Jinja template, or the template text itself.
    ``role``: the setting that named it (``student``, ``teacher`` …), for messages."""
    path = model_source(name_or_path, role, needs="tokenizer")
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as err:  # a hub id that is not cached while offline, unreadable tokenizer files
        raise ModelError(f"{role} {name_or_path}: could not load a tokenizer: {_first_line(err)}") from None
    if chat_template is not None:
        tok.chat_template = read_chat_template(chat_template)
    if chat and not tok.chat_template:
        raise ModelError(f"{role} {name_or_path}: the tokenizer has no chat template; cotdistill renders every "
                         "record with it (set one in tokenizer_config.json, e.g. ChatML with <think> in assistant "
                         "turns)")
    if chat:
        check_chat_template(tok, chat_template if chat_template is not None else f"of {role} {name_or_path}")
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


def check_chat_template(tok, name: str) -> None:
    """Render one conversation through the tokenizer's template, so a Jinja error (a syntax error, a missing
    ``endfor``, a raise_exception) is one line naming the template before any model loads, not a traceback from
    the first record encoded. ``name``: the template's file, Jinja text (then named as such) or owner."""
    from jinja2 import TemplateError

    if "{%" in name or "{{" in name:
        name = "(given as text)"

    probe = [{"role": "user", "content": "1 + 1?"},
             {"role": "assistant", "content": "<think>\n1 + 1 = 2\n</think>\n\n2"}]
    try:
        tok.apply_chat_template(probe, tokenize=False)
    except (TemplateError, TypeError, ValueError) as err:
        raise ModelError(f"chat template {name}: {type(err).__name__}: {_first_line(err)} (rendering a user and an "
                         "assistant turn)") from None


def load_model(name_or_path: str, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, *,
               role: str = "model"):
    quiet_library_progress_bars()
    path = model_source(name_or_path, role)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except OSError as err:
        raise ModelError(f"{role} {name_or_path}: could not load the model: {_first_line(err)}") from None
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
                         "token-level distillation needs one vocabulary (set loss.cross_tokenizer: spans or uld to "
                         "distil across tokenizers)")


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
    file, its name and the SHA-256 of every byte (the first and last MiB alone missed retrained middle tensors).
    Each file is read once per process (:func:`cotdistill.hashing.file_sha256`). A hub id stands for itself."""
    path = Path(resolve(name_or_path))
    if not path.is_dir():
        return name_or_path
    digest = hashlib.sha256()
    for file in sorted([*path.glob("config.json"), *path.glob("*.safetensors"), *path.glob("*.bin")]):
        digest.update(f"{file.name}:{file_sha256(file)}".encode())
    return digest.hexdigest()[:24]


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
