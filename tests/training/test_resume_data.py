"""A run resumed on other data: the checkpoint holds a fingerprint of the records it was trained on, and another
file is refused like another config (issue 26, case 7: a file shuffled and cut between kill and resume used to
continue at the next step on the new rows with no word)."""

from __future__ import annotations

import json
import random

import pytest

from cotdistill.errors import UserError
from cotdistill.training import checkpoint as ckpt
from cotdistill.training.loop import TrainingError, train
from tests.training.helpers import tiny_config
from tests.training.test_trainer import _killed_at

CFG = {"optim.max_steps": 6, "save_every": 2}


def _shuffle_and_cut(path, keep: int) -> None:
    rows = path.read_text().splitlines()
    random.Random(0).shuffle(rows)
    path.write_text("\n".join(rows[:keep]) + "\n")


def test_a_resume_on_shuffled_and_cut_data_is_refused_unless_allowed(tmp_path, monkeypatch):
    _killed_at(tmp_path, monkeypatch, "run", 3, **CFG)
    _shuffle_and_cut(tmp_path / "train.jsonl", keep=12)  # 16 rows -> 12, in another order
    with pytest.raises(TrainingError, match=r"another config \(data records: '[0-9a-f]{12}…' -> '[0-9a-f]{12}…'\)"):
        train(tiny_config(tmp_path, **CFG))
    assert issubclass(TrainingError, UserError)  # the CLI prints it as one line and exits 2
    summary = train(tiny_config(tmp_path, **CFG, allow_config_change=True))
    assert summary["resumed_from"].endswith("step-0000002") and summary["records"] == 9  # 12 rows less 3 for val
    assert len(summary["config_changes"]) == 1 and summary["config_changes"][0].startswith("data records: ")


def test_the_same_data_resumes_without_a_change(tmp_path, monkeypatch):
    _killed_at(tmp_path, monkeypatch, "run", 3, **CFG)
    path = tmp_path / "train.jsonl"
    path.write_text(path.read_text())  # rewritten with the same rows: the records, not the file's time, count
    summary = train(tiny_config(tmp_path, **CFG))
    assert summary["config_changes"] == [] and summary["resumed_from"].endswith("step-0000002")


def test_a_checkpoint_without_a_data_fingerprint_resumes_with_a_note(tmp_path, monkeypatch):
    _killed_at(tmp_path, monkeypatch, "run", 3, **CFG)
    state = ckpt.read_trainer_state(tmp_path / "run" / "checkpoints" / "step-0000002")
    assert len(state["data"]) == 64  # a SHA-256, in hex
    read = ckpt.read_trainer_state
    # as a checkpoint written before the fingerprint existed reads
    monkeypatch.setattr(ckpt, "read_trainer_state", lambda path: {k: v for k, v in read(path).items() if k != "data"})
    summary = train(tiny_config(tmp_path, **CFG))
    assert summary["config_changes"] == [] and summary["resumed_from"].endswith("step-0000002")
    assert any("no fingerprint of its training data" in note for note in summary["resume_notes"])
    assert json.loads((tmp_path / "run" / "run_summary.json").read_text())["steps"] == 6
