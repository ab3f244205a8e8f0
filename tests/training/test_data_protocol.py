"""The paper's data protocol in a run: records over ``data.max_tokens`` dropped, a seeded validation split of
``val_size``, a seeded ``max_records`` subset — every record at its index in the file (so a teacher cache built on
the file fits), each step reported in the start-of-run data line and the run summary."""

from __future__ import annotations

import logging

import pytest

from cotdistill.config import ConfigError, from_dict, to_dict
from cotdistill.data.encode import encode_record
from cotdistill.data.formats import write_jsonl
from cotdistill.data.records import ReasoningRecord
from cotdistill.training.config import DataConfig, TrainConfig
from cotdistill.training.loop import Trainer, train
from cotdistill.training.resume import config_changes
from tests.training.helpers import tiny_config

# record i has a CoT of COTS[i] characters and renders to 27 template tokens + 3 (prompt "q00") + COTS[i] + 1 (answer
# "a") with the one-token-per-character tokenizer (tests/data/test_split.py), 8 fewer where the tiny models' saved
# copy loses the template's newlines: max_tokens 55 keeps the CoTs up to 20 and drops those from 40 either way
COTS = [5, 40, 8, 20, 12, 45, 6, 18, 42, 9, 50, 15]
TOO_LONG = [1, 5, 8, 10]
KEPT = [0, 2, 3, 4, 6, 7, 9, 11]


def _records() -> list[ReasoningRecord]:
    return [ReasoningRecord(f"q{i:02d}", "c" * n, "a") for i, n in enumerate(COTS)]


def _config(tmp_path, **overrides) -> TrainConfig:
    write_jsonl(_records(), tmp_path / "rows.jsonl", "cot")
    data = {"data.path": str(tmp_path / "rows.jsonl"), "data.val_fraction": DataConfig.val_fraction,
            "optim.max_steps": 1}
    return tiny_config(tmp_path, **{**data, **overrides})


def _paper_split(kept: list[int], n_val: int, seed: int, n_train: int) -> tuple[list[int], list[int]]:
    """Filtered records -> ``datasets``' ``train_test_split(test_size=n_val, seed=seed)`` -> the first n_train."""
    from datasets import Dataset

    parts = Dataset.from_dict({"index": kept}).train_test_split(test_size=n_val, seed=seed)
    return sorted(parts["train"]["index"][:n_train]), sorted(parts["test"]["index"])


PROTOCOL = {"data.max_tokens": 55, "data.val_size": 2, "data.split_seed": 42, "data.max_records": 4}


def test_a_run_trains_and_validates_on_the_papers_selection_at_file_indices(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="cotdistill")
    cfg = _config(tmp_path, **PROTOCOL)
    trainer = Trainer(cfg)
    trainer.close()
    train_indices, val_indices = _paper_split(KEPT, 2, 42, 4)
    assert sorted(e.index for e in trainer.data.examples) == train_indices
    assert sorted(e.index for e in trainer.data.val_examples) == val_indices
    # each example is the file's record at its index: a teacher cache built on the file addresses it
    records = _records()
    for e in trainer.data.examples + trainer.data.val_examples:
        assert e.input_ids == encode_record(trainer.tokenizer, records[e.index], cfg.encode, e.index).input_ids
        assert e.index not in TOO_LONG and e.full_length <= 55
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("data: "))
    assert line.startswith("data: 4 training records (cot), 4 kept:")
    assert line.endswith("; 12 records read, 4 longer than data.max_tokens 55 (dropped); validation: 2 drawn at "
                         "random (split_seed 42); training: 4 drawn at random of the 6 left (max_records)")


def test_the_run_summary_holds_the_selections_figures(tmp_path):
    summary = train(_config(tmp_path, **PROTOCOL))
    assert (summary["records_read"], summary["longer_than_max_tokens"], summary["max_tokens"]) == (12, 4, 55)
    assert (summary["validation_split"], summary["split_seed"], summary["validation_records"]) == ("random", 42, 2)
    assert (summary["records"], summary["training_records_available"]) == (4, 6)


def test_without_the_new_keys_the_split_is_the_files_tail_and_max_records_its_head(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="cotdistill")
    trainer = Trainer(_config(tmp_path, **{"data.max_records": 10, "data.val_fraction": 0.2}))
    trainer.close()
    # the first 10 records; floor(0.2 * 10) = 2 validate: records 8 and 9
    assert sorted(e.index for e in trainer.data.examples) == list(range(8))
    assert sorted(e.index for e in trainer.data.val_examples) == [8, 9]
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("data: "))
    assert line.endswith("; validation: the last 2 records")


def test_a_separate_validation_file_is_length_filtered_too(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="cotdistill")
    write_jsonl([ReasoningRecord(f"v{i:02d}", "c" * n, "a") for i, n in enumerate([10, 45, 20])],
                tmp_path / "val.jsonl", "cot")
    summary = train(_config(tmp_path, **{"data.max_tokens": 55, "data.val_path": str(tmp_path / "val.jsonl"),
                                         "data.val_fraction": 0.0}))
    assert summary["validation_longer_than_max_tokens"] == 1 and summary["validation_records"] == 2
    assert summary["longer_than_max_tokens"] == 4 and summary["records"] == 8
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("data: "))
    assert f"validation: {tmp_path / 'val.jsonl'} (1 longer than data.max_tokens, dropped)" in line


def test_the_teacher_cache_stage_holds_exactly_the_records_the_run_reads(tmp_path):
    from cotdistill.stages.teacher_cache import TeacherCacheConfig, build_teacher_cache
    from cotdistill.teacher.cache import TeacherCache

    cfg = _config(tmp_path, **PROTOCOL, teacher_cache=str(tmp_path / "cache"))
    manifest = build_teacher_cache(TeacherCacheConfig(train=cfg, top_k=4), progress=False)
    train_indices, val_indices = _paper_split(KEPT, 2, 42, 4)
    assert manifest["records"] == 6
    cache = TeacherCache.open(tmp_path / "cache")
    assert [i for i in range(len(cache.index)) if cache.index[i, 0] >= 0] == sorted(train_indices + val_indices)
    summary = train(cfg)  # the cache covers the validation records too: KD is measured there
    assert "val_kd" in summary and summary["steps"] == 1


@pytest.mark.parametrize("data, message", [
    ({"max_tokens": 0}, "data: max_tokens must be >= 1 or null, got 0"),
    ({"max_tokens": -5}, "data: max_tokens must be >= 1 or null, got -5"),
    ({"val_size": 0}, "data: val_size must be >= 1 or null (for no validation set val_fraction: 0), got 0"),
    ({"val_size": -1}, "val_size must be >= 1 or null"),
    ({"split_seed": -1}, "data: split_seed must be >= 0 or null, got -1"),
    ({"val_size": 10, "val_fraction": 0.1}, "val_size (10) and val_fraction (0.1) both set the validation size"),
    ({"val_size": 10, "val_path": "v.jsonl"}, "val_size (10) splits validation off path, and val_path (v.jsonl)"),
    ({"split_seed": 1, "val_path": "v.jsonl"}, "split_seed (1) has nothing to draw"),
    ({"max_tokens": 1.5}, "data.max_tokens must be a whole number or null"),
])
def test_bad_values_are_one_line_errors_naming_the_key(data, message):
    with pytest.raises(ConfigError) as err:
        from_dict(TrainConfig, {"data": data})
    assert message in str(err.value)


def test_what_is_read_and_a_change_of_selection_counts_as_a_change_of_what_is_computed():
    assert DataConfig(max_records=5).read_limit == 5
    assert DataConfig(max_records=5, split_seed=0).read_limit is None  # drawn after the split: all are read
    assert DataConfig(val_size=3).val_fraction == DataConfig.val_fraction  # the default is not "set"
    # a resumed run with another selection trains on other records: refused unless allow_config_change
    base = to_dict(from_dict(TrainConfig, {}))
    for key, value in (("split_seed", 42), ("val_size", 100), ("max_tokens", 4096)):
        changed = to_dict(from_dict(TrainConfig, {"data": {key: value}}))
        assert config_changes(base, changed) == [f"data.{key}: None -> {value}"]
    # a checkpoint saved before these keys existed resumes unchanged with their defaults
    old = to_dict(from_dict(TrainConfig, {}))
    for key in ("split_seed", "val_size", "max_tokens"):
        del old["data"][key]
    assert config_changes(old, base) == []
