"""A tiny student/teacher pair and dataset on disk, for trainer tests (built from configs, never downloaded)."""

from __future__ import annotations

from pathlib import Path

from cotdistill.config import from_dict
from cotdistill.data.formats import write_jsonl
from cotdistill.training.config import TrainConfig
from cotdistill.world import world_records
from tests.conftest import char_tokenizer, tiny_qwen


def make_models(root: Path) -> tuple[str, str]:
    tok = char_tokenizer()
    paths = []
    for name, hidden, seed in (("student", 16, 0), ("teacher", 32, 1)):
        model = tiny_qwen(len(tok), hidden=hidden, layers=1, seed=seed)
        model.save_pretrained(root / name)
        tok.save_pretrained(root / name)
        paths.append(str(root / name))
    return paths[0], paths[1]


def make_data(root: Path, n: int = 16, style: str = "student") -> str:
    path = root / "train.jsonl"
    write_jsonl(world_records("train", style, n, min_steps=2, max_steps=2), path, "cot")
    return str(path)


def tiny_config(root: Path, **overrides) -> TrainConfig:
    student, teacher = make_models(root) if not (root / "student").exists() else (str(root / "student"),
                                                                                   str(root / "teacher"))
    data = make_data(root) if not (root / "train.jsonl").exists() else str(root / "train.jsonl")
    base = {"student": student, "teacher": teacher, "output_dir": str(root / "run"),
            "data": {"path": data, "val_fraction": 0.25}, "loss": {"distill_ratio": 0.5, "chunk_size": 64},
            "optim": {"lr": 1e-2, "batch_size": 4, "max_steps": 4, "warmup_steps": 1},
            "device": "cpu", "eval_every": 0, "save_every": 0, "progress": False,
            # invariances are compared to float tolerances measured in fp32; bf16 runs are tested where they say so
            "precision": "fp32"}
    for key, value in overrides.items():
        node = base
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return from_dict(TrainConfig, base)


def killed_at(root: Path, monkeypatch, step: int, **overrides) -> None:
    """Train ``tiny_config(root, **overrides)`` until it is killed before optimizer step ``step`` (the checkpoints
    written so far stay), then put the trainer back as it was."""
    import pytest

    from cotdistill.training.loop import Trainer, train

    original = Trainer._optimizer_step

    def crash(self, at, state):
        if at == step:
            raise KeyboardInterrupt("killed")
        return original(self, at, state)

    monkeypatch.setattr(Trainer, "_optimizer_step", crash)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(root, **overrides))
    monkeypatch.setattr(Trainer, "_optimizer_step", original)
