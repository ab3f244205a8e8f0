"""Data as users have it: raw GSM8K rows, other column names, hub ids, dataset folders and rows in memory."""

from __future__ import annotations

import json

import pytest

from cotdistill.config import ConfigError
from cotdistill.data.formats import load_records, write_jsonl
from cotdistill.data.records import DataError, ReasoningRecord

GSM8K_ROWS = [
    {"question": "Tom has 3 apples and buys 2 more. How many?", "answer": "3 + 2 = <<3+2=5>>5\n#### 5"},
    # the last mark is the final answer: a rationale may quote one
    {"question": "Say ####?", "answer": "It reads #### here, then 7 - 3 = 4.\n#### 4"},
]


def _write(path, rows) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_raw_gsm8k_rows_are_detected_and_split_at_the_last_mark(tmp_path):
    path = tmp_path / "gsm8k.jsonl"
    _write(path, GSM8K_ROWS)
    result = load_records(path)
    assert result.format == "gsm8k"
    assert [(r.prompt, r.cot, r.answer) for r in result.records] == [
        (GSM8K_ROWS[0]["question"], "3 + 2 = <<3+2=5>>5", "5"),
        (GSM8K_ROWS[1]["question"], "It reads #### here, then 7 - 3 = 4.", "4"),
    ]


def test_gsm8k_records_round_trip(tmp_path):
    records = [ReasoningRecord("1+1?", "1 + 1 = 2.", "2", {"id": 3})]
    write_jsonl(records, tmp_path / "g.jsonl", "gsm8k")
    assert load_records(tmp_path / "g.jsonl").records == records


def test_a_gsm8k_answer_without_its_mark_is_located(tmp_path):
    path = tmp_path / "bad.jsonl"
    _write(path, [GSM8K_ROWS[0], {"question": "q", "answer": "no mark here"}])
    with pytest.raises(DataError) as err:
        load_records(path, "gsm8k")
    assert f"{path}, line 2" in str(err.value) and "####" in str(err.value)


def test_field_mapping_renames_columns_before_detection(tmp_path):
    path = tmp_path / "mine.jsonl"
    _write(path, [{"problem": "2*3?", "reasoning": "2 * 3 = 6.", "final": "6", "level": 1}])
    result = load_records(path, fields={"prompt": "problem", "cot": "reasoning", "answer": "final"})
    assert result.format == "cot"
    assert result.records == [ReasoningRecord("2*3?", "2 * 3 = 6.", "6", {"level": 1})]
    # raw GSM8K under other names maps onto the gsm8k format
    _write(path, [{"q": GSM8K_ROWS[0]["question"], "a": GSM8K_ROWS[0]["answer"]}])
    mapped = load_records(path, fields={"question": "q", "answer": "a"})
    assert mapped.format == "gsm8k" and mapped.records[0].answer == "5"


def test_field_mapping_errors_name_the_column_and_line(tmp_path):
    path = tmp_path / "mine.jsonl"
    _write(path, [{"problem": "q", "reasoning": "r.", "final": "1"}, {"problem": "q", "final": "1"}])
    with pytest.raises(DataError) as err:
        load_records(path, fields={"prompt": "problem", "cot": "reasoning", "answer": "final"})
    assert f"{path}, line 2" in str(err.value) and "'reasoning'" in str(err.value)
    with pytest.raises(ConfigError, match="our names are"):
        load_records(path, fields={"question_text": "problem"})


def test_unknown_shapes_point_to_the_field_mapping(tmp_path):
    path = tmp_path / "x.jsonl"
    _write(path, [{"problem": "q", "solution": "s"}])
    with pytest.raises(DataError, match="data.fields"):
        load_records(path)


def test_a_folder_of_data_files_loads_through_load_dataset(tmp_path):
    folder = tmp_path / "my_dataset"
    folder.mkdir()
    _write(folder / "train.jsonl", GSM8K_ROWS)
    _write(folder / "test.jsonl", GSM8K_ROWS[:1])
    assert len(load_records(folder).records) == 2
    assert len(load_records(folder, split="test").records) == 1
    with pytest.raises(DataError, match="split 'validation'") as err:
        load_records(folder, split="validation")
    assert str(folder) in str(err.value)


def test_a_saved_dataset_dict_uses_the_named_split(tmp_path):
    import datasets

    rows = [{"prompt": "p", "cot": "c.", "answer": str(i)} for i in range(3)]
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows),
                          "test": datasets.Dataset.from_list(rows[:1])}).save_to_disk(str(tmp_path / "dd"))
    assert [r.answer for r in load_records(tmp_path / "dd", split="test").records] == ["0"]
    with pytest.raises(DataError, match="'dev' split"):
        load_records(tmp_path / "dd", split="dev")


def test_hub_ids_go_to_load_dataset_with_subset_and_split(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(name, subset=None, *, split):
        calls.append((name, subset, split))
        return datasets.Dataset.from_list(GSM8K_ROWS)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    result = load_records("openai/gsm8k", subset="main", split="test")
    assert calls == [("openai/gsm8k", "main", "test")]
    assert result.format == "gsm8k" and len(result.records) == 2


def test_an_unreachable_hub_id_is_one_located_error():
    # conftest sets HF_DATASETS_OFFLINE: the hub is unreachable, as in CI
    with pytest.raises(DataError) as err:
        load_records("nobody-here/no-such-dataset", subset="main")
    message = str(err.value)
    assert message.startswith("nobody-here/no-such-dataset") and "subset 'main'" in message
    assert "\n" not in message


def test_a_missing_file_is_not_mistaken_for_a_hub_id(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("the hub was asked"))
    with pytest.raises(DataError, match="nothing at that path"):
        load_records("data/missing.jsonl")


def test_rows_in_memory(tmp_path):
    import datasets

    assert load_records(GSM8K_ROWS).records[0].answer == "5"
    assert load_records(datasets.Dataset.from_list(GSM8K_ROWS)).format == "gsm8k"
    with pytest.raises(DataError) as err:
        load_records([GSM8K_ROWS[0], "not a row"])
    assert "<in-memory list>, record 1" in str(err.value)


def test_validation_is_read_from_val_split_of_the_same_dataset(tmp_path):
    """``data.val_path`` read with ``data.split`` validated on the training split of the same hub id or folder;
    ``data.val_split`` names the split it is read from."""
    import datasets

    from cotdistill.config import from_dict
    from cotdistill.training.config import TrainConfig
    from cotdistill.training.loop import Trainer
    from cotdistill.world import world_records
    from tests.training.helpers import tiny_config

    records = world_records("train", "teacher", 10, min_steps=2, max_steps=2)
    rows = [{"prompt": r.prompt, "cot": r.cot, "answer": r.answer} for r in records]
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows[:7]),
                          "validation": datasets.Dataset.from_list(rows[7:])}).save_to_disk(tmp_path / "dd")
    config = tiny_config(tmp_path, **{"data.path": str(tmp_path / "dd"), "data.val_path": str(tmp_path / "dd"),
                                      "data.val_split": "validation"})
    trainer = Trainer(config)
    assert len(trainer.data.examples) == 7 and len(trainer.data.val_examples) == 3
    assert trainer.data.notes["validation_records_in_training"] == 0
    with pytest.raises(ConfigError, match="set val_path too"):
        from_dict(TrainConfig, {"data": {"val_split": "validation"}})
