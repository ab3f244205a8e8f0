"""Atomic checkpoints: everything is written to a temporary directory, then renamed into place.

A checkpoint directory ``checkpoints/step-NNNNNNN`` holds the model (``save_pretrained``, safetensors) and
``trainer_state.pt`` (optimizer, scheduler, RNG states, data position, best validation loss, the config and a
SHA-256 of the records trained on, which a resume compares with its own). The file
``checkpoints/latest`` names the newest complete one and is itself replaced atomically, so a run killed at any
instant resumes from a whole checkpoint.

Each checkpoint also holds ``manifest.json``: the size and SHA-256 of every file, written last. Resume verifies
the checkpoint ``latest`` names against it and, if that one is damaged (a truncated file, a deleted
``trainer_state.pt``, garbage in ``latest``, a weight or config file the manifest does not list), falls back to the
newest intact one and says so.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cotdistill.errors import UserError
from cotdistill.hashing import describe_files, file_mismatch
from cotdistill.quiet import quiet_library_progress_bars


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def rng_state() -> dict[str, Any]:
    # numpy's state holds an ndarray, which ``torch.load(weights_only=True)`` refuses: store it as a tensor
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    numpy_state = (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss)
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.int64).astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_pretrained_atomic(model, tokenizer, target: Path, state_dict: dict | None = None) -> None:
    """``save_pretrained`` into ``target`` so that ``target`` is either the old or the new model, never half.
    ``state_dict`` overrides the module's weights (FSDP: the gathered full weights)."""
    quiet_library_progress_bars()
    target = Path(target)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True, state_dict=state_dict)
    if tokenizer is not None:
        tokenizer.save_pretrained(tmp)
    old = target.with_name(target.name + ".old")
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


def save_checkpoint(root: Path, step: int, model, tokenizer, trainer_state: dict[str, Any], keep: int = 2,
                    state_dict: dict | None = None) -> Path:
    """Write ``checkpoints/step-NNNNNNN`` and point ``latest`` at it. ``state_dict``: as for
    :func:`save_pretrained_atomic`."""
    quiet_library_progress_bars()
    ckpt_dir = Path(root) / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    final = ckpt_dir / f"step-{step:07d}"
    tmp = ckpt_dir / f".step-{step:07d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True, state_dict=state_dict)
    if tokenizer is not None:
        tokenizer.save_pretrained(tmp)
    torch.save(trainer_state, tmp / "trainer_state.pt")
    _write_manifest(tmp, step)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    _atomic_write_text(ckpt_dir / "latest", final.name)
    _rotate(ckpt_dir, step, keep)
    return final


def _rotate(ckpt_dir: Path, step: int, keep: int) -> None:
    """Keep the ``keep`` newest checkpoints up to ``step`` (the one just written always among them). Folders of
    higher steps, left by an earlier run in the same directory, are not this run's to judge and stay: ranking them
    in made the rotation delete the checkpoint it had just written, leaving ``latest`` pointing at nothing."""
    ours = sorted((int(p.name[len("step-"):]), p) for p in ckpt_dir.iterdir()
                  if p.is_dir() and CHECKPOINT_NAME.fullmatch(p.name) and int(p.name[len("step-"):]) <= step)
    for _, old in ours[:-max(keep, 1)]:
        shutil.rmtree(old, ignore_errors=True)


CHECKPOINT_NAME = re.compile(r"step-\d{7}")


MANIFEST = "manifest.json"


# what ``read_weights`` or ``from_pretrained`` would read from the folder: one the manifest does not list would be
# loaded over (or beside) the verified weights, so it makes the checkpoint damaged
LOADED_FILES = ("*.safetensors", "*.bin", "*.index.json", "config.json", "generation_config.json")


def _write_manifest(folder: Path, step: int) -> None:
    names = [p.name for p in sorted(folder.iterdir()) if p.is_file() and p.name != MANIFEST]
    (folder / MANIFEST).write_text(json.dumps({"step": step, "files": describe_files(folder, names)}, indent=1))


def damage(path: Path) -> str | None:
    """Why the checkpoint at ``path`` cannot be resumed from, or ``None`` if it is intact: every file the
    manifest lists is there with its size and hash, no file a loader would read is missing from the list, and the
    trainer state loads as plain data."""
    manifest = path / MANIFEST
    if not manifest.exists():
        return f"no {MANIFEST} (not a complete checkpoint)"
    try:
        files = json.loads(manifest.read_text())["files"]
    except (ValueError, KeyError) as err:
        return f"unreadable {MANIFEST} ({err})"
    unlisted = sorted({p.name for pattern in LOADED_FILES for p in path.glob(pattern)} - set(files))
    if unlisted:
        return f"{unlisted[0]} is not in the manifest (a loader would read it beside the verified weights)"
    mismatch = file_mismatch(path, files)
    if mismatch:
        return mismatch
    if "trainer_state.pt" not in files:
        return "trainer_state.pt is missing"
    try:
        read_trainer_state(path)
    except Exception as err:
        return f"trainer_state.pt does not load as plain data ({type(err).__name__})"
    return None


def resumable_checkpoint(root: Path) -> tuple[Path | None, list[str]]:
    """The checkpoint to resume from and what was skipped on the way, as sentences for the log. The one
    ``latest`` names comes first; when it is damaged, the newest intact ``step-NNNNNNN`` folder. A run that has
    checkpoints but no intact one is an error, never a silent restart from step 0."""
    ckpt_dir = Path(root) / "checkpoints"
    if not ckpt_dir.is_dir():
        return None, []
    notes, candidates = [], []
    try:
        named = latest_checkpoint(root, must_exist=False)
        if named is not None:
            candidates.append(named)
    except ValueError as err:
        notes.append(str(err))
    folders = sorted((p for p in ckpt_dir.iterdir() if p.is_dir() and CHECKPOINT_NAME.fullmatch(p.name)),
                     key=lambda p: p.name, reverse=True)
    candidates += [p for p in folders if p not in candidates]
    for candidate in candidates:
        reason = damage(candidate)
        if reason is None:
            return candidate, notes
        notes.append(f"checkpoint {candidate} is damaged ({reason}): skipped")
    if notes:
        raise CheckpointError(f"{ckpt_dir}: no intact checkpoint to resume from ({'; '.join(notes)}). Set resume: "
                              "false (or use a new output_dir) to start over")
    return None, notes


class CheckpointError(UserError, RuntimeError):
    pass


def latest_checkpoint(root: Path, must_exist: bool = True) -> Path | None:
    """The checkpoint ``checkpoints/latest`` names. The pointer may only name a ``step-NNNNNNN`` folder inside
    ``checkpoints/``: an absolute path, ``..`` or any other name is refused, so a crafted pointer cannot lead the
    loader to a file outside the run."""
    pointer = Path(root) / "checkpoints" / "latest"
    if not pointer.exists():
        return None
    name = pointer.read_text().strip()
    if not CHECKPOINT_NAME.fullmatch(name):
        raise ValueError(f"{pointer}: expected the name of a step-NNNNNNN checkpoint folder; found {name[:80]!r}")
    path = pointer.parent / name
    return path if not must_exist or (path / "trainer_state.pt").exists() else None


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The model weights stored in a checkpoint directory (all safetensors shards), on CPU."""
    from safetensors.torch import load_file

    weights = {}
    for shard in sorted(Path(path).glob("*.safetensors")):
        weights.update(load_file(shard))
    return weights


def check_loaded(path: Path, missing: list[str], unexpected: list[str]) -> None:
    # tied embeddings are saved once; anything else missing is a real mismatch
    missing = [k for k in missing if "lm_head" not in k]
    if missing or unexpected:
        raise RuntimeError(f"checkpoint {path} does not match the model: missing {missing}, unexpected {unexpected}")


def read_trainer_state(path: Path) -> dict[str, Any]:
    # weights_only: tensors and plain containers only; a pickle that would run code is refused, not executed
    return torch.load(Path(path) / "trainer_state.pt", weights_only=True)
