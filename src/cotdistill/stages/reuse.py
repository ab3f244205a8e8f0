"""A stage's result is reused only under a key of what produced it.

A stage skips work whose output is already in its folder (a setting's training or evaluation, the demo's baseline
evaluations, sampled candidates), so that a stage killed midway, or run again, goes on where it stopped. Beside
each such result it stores a key (``results.json`` -> ``results.key.json``): the settings the work ran with and the
content of every file it read (model folders, data, templates: the SHA-256 of every byte, each file read once per
process). The result is reused only when that key equals the key of the work asked for now. Otherwise what is
there is removed, one line says what changed, and the work is done again: a sweep re-run with another
``eval.limit`` used to keep the old points' results while its config.yaml recorded the new one, and the demo read
any ``eval/*/results.json`` planted in its folder. A result stored before keys existed has none, and is redone:
nothing says what made it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from cotdistill.config import to_dict
from cotdistill.evaluation.spec import EvalSpec
from cotdistill.hashing import file_sha256
from cotdistill.models import pick_device
from cotdistill.precision import resolve_precision
from cotdistill.sources import WORLD_ASSETS, is_real, is_world, real_model_file
from cotdistill.training.config import TrainConfig

# the training keys that say how a run is watched or where it is written, not which model it leaves. A resume
# may change more (training.loop.WATCH_ONLY_KEYS): there eval_every, keep_best and best_metric only move the
# validations still to come, but a finished run's best/ checkpoint is what they chose.
UNKEYED_TRAINING = {"progress", "resume", "allow_config_change", "log_every", "save_every", "output_dir",
                    "report_to", "wandb_project", "threads"}


def content(name: str | None) -> str | None:
    """What a name that a stage's work reads stands for: a file, the SHA-256 of its bytes; a folder, of its files'
    names (relative to it) and bytes, hidden files (a lock) left out; a ``world:`` model, its asset folder's; a
    ``real:`` model, its GGUF file's. Anything else stands for itself: a hub id, a ``world:`` data spec (made by
    code), a template given as text."""
    if not name:  # None, or "" (no file given): not the working folder
        return name
    if is_real(name):
        return file_sha256(real_model_file(name))
    path = WORLD_ASSETS / name[len("world:"):] if is_world(name) else Path(name).expanduser()
    try:
        if path.is_file():
            return file_sha256(path)
        if not path.is_dir():
            return name
    except OSError:  # text too long to be a file name (a template): not a file
        return name
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        relative = file.relative_to(path).as_posix()
        if not any(part.startswith(".") for part in relative.split("/")):
            digest.update(f"{relative}\0{file_sha256(file)}\n".encode())
    return digest.hexdigest()


def training_key(config: TrainConfig) -> dict[str, Any]:
    """What a trained model depends on: every setting but how the run is watched, and the content of the models,
    data, cache and template it reads (an unused teacher is not read)."""
    teacher = config.teacher if config.teacher_source == "online" else None
    reads = {"student": config.student, "tokenizer": config.tokenizer, "teacher": teacher,
             "teacher_cache": config.teacher_cache, "chat_template": config.chat_template,
             "data.path": config.data.path, "data.val_path": config.data.val_path}
    settings = {key: value for key, value in to_dict(config).items() if key not in UNKEYED_TRAINING}
    # precision auto means bf16 on one machine and fp32 on another: the key holds what it computes in here
    settings["precision"] = resolve_precision(config.precision, pick_device(config.device))
    return {"config": settings, "content": {key: content(value) for key, value in reads.items()}}


def evaluation_key(model: str, spec: EvalSpec, **recorded: Any) -> dict[str, Any]:
    """What an evaluation depends on: the spec, the content of the model and of the files the spec names, and
    what the stage records with the result (which checkpoint of a run it is)."""
    reads = {"model": model, "data": spec.data, "prompt_template": spec.prompt_template,
             "chat_template": spec.chat_template}
    return {"spec": to_dict(spec), "recorded": recorded,
            "content": {key: content(value) for key, value in reads.items()}}


def key_file(result: Path) -> Path:
    """Where the key of ``result`` is stored: beside it, named after it."""
    return result.with_suffix(".key.json")


def reuse(result: Path, key: dict[str, Any], what: str, folder: Path | None = None) -> bool:
    """True when ``result`` exists and was made under ``key``: the caller reuses it. False: the caller makes it
    and then ``record``s the key. Work of another key (or of none: made before keys) found there is removed first,
    with a line saying what changed — all of ``folder`` where it holds only that work (a run's checkpoints must
    not be resumed for other settings), else ``result`` and its key — so a run killed while remaking it never
    leaves the old key beside a new half-made result. A key without its result is the same work, begun: kept."""
    stored, key = _stored(result), _plain(key)
    if stored == key:
        return result.exists()
    if stored is None and not result.exists():
        return False
    names = _differences(stored, key) if stored is not None else []
    changed = ("no key stored beside it" if stored is None else
               "changed: " + ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else ""))
    print(f"note: {what} in {result.parent} is not of what is asked now ({changed}); making it again",
          file=sys.stderr, flush=True)
    if folder is not None:
        shutil.rmtree(folder)
    else:
        result.unlink(missing_ok=True)
        key_file(result).unlink(missing_ok=True)
    return False


def record(result: Path, key: dict[str, Any]) -> None:
    """Store ``key`` beside ``result`` (atomically: a key file is whole or absent)."""
    path = key_file(result)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_plain(key), indent=1, sort_keys=True))
    os.replace(tmp, path)


def _plain(key: dict[str, Any]) -> dict[str, Any]:
    """The key as it reads back from its file (tuples as lists), so that a stored key and a new one compare."""
    return json.loads(json.dumps(key, sort_keys=True, default=str))


def _stored(result: Path) -> dict[str, Any] | None:
    try:
        return json.loads(key_file(result).read_text())
    except (OSError, ValueError):  # no key file, or one cut short: no key
        return None


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """The dotted names under which two keys differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [name for k in sorted(set(old) | set(new)) for name in _differences(old.get(k), new.get(k),
                                                                                   f"{prefix}{k}.")]
    return [] if old == new else [prefix.rstrip(".")]
