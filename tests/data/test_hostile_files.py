"""Data files a careless or hostile user hands over: each is read as written or refused with its file (and line),
never half-read (issue 26, cases 11 and 14)."""

from __future__ import annotations

import json

import pytest

from cotdistill.data.formats import load_records
from cotdistill.data.records import DataError

GOOD_GSM8K = {"question": "2+2?", "answer": "2+2=4\n#### 4"}


@pytest.mark.parametrize("answer, found", [(["2+2=4 #### 4"], "list"), ({"text": "2+2=4 #### 4"}, "dict")])
def test_a_gsm8k_answer_that_is_not_text_is_refused(tmp_path, answer, found):
    """``str()`` of a list or dict was split at its ``####``: the answer ``4']`` or ``4'}``."""
    path = tmp_path / "g.jsonl"
    path.write_text(json.dumps(GOOD_GSM8K) + "\n" + json.dumps({"question": "q", "answer": answer}) + "\n")
    with pytest.raises(DataError) as err:
        load_records(path)
    assert str(err.value) == f"{path}, line 2: expected a string answer; found {found}"
    with pytest.raises(DataError, match="line 1: expected a string answer; found list"):  # detected from this row
        path.write_text(json.dumps({"question": "q", "answer": ["2+2=4 #### 4"]}) + "\n")
        load_records(path)


def test_json_nested_past_the_recursion_limit_is_a_located_error(tmp_path):
    path = tmp_path / "deep.jsonl"
    path.write_text(json.dumps(GOOD_GSM8K) + "\n" + '{"a": ' + "[" * 200_000 + "]" * 200_000 + "}\n")
    with pytest.raises(DataError) as err:
        load_records(path)
    assert str(err.value).startswith(f"{path}, line 2: expected one JSON object per line; found JSON nested deeper")
    assert len(load_records(path, on_error="skip").records) == 1


@pytest.mark.parametrize("name, expected", [("fake.parquet", "a Parquet file"), ("fake.arrow", "an Arrow file")])
def test_a_file_that_only_claims_to_be_parquet_or_arrow_is_a_located_error(tmp_path, name, expected):
    path = tmp_path / name
    path.write_text('{"prompt": "p", "cot": "c", "answer": "a"}\n')
    with pytest.raises(DataError) as err:
        load_records(path)
    message = str(err.value)
    assert message.startswith(f"{path}: expected {expected}; found ArrowInvalid: ") and "\n" not in message


def test_a_folder_with_files_of_several_kinds_is_refused_not_half_read(tmp_path):
    """``datasets.load_dataset`` reads the most common kind of file in a folder and silently skips the others."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "a.jsonl").write_text(json.dumps({"prompt": "p", "cot": "c", "answer": "a"}) + "\n")
    (folder / "b.csv").write_text("prompt,cot,answer\np2,c2,a2\n")
    (folder / "c.txt").write_text("hello\n")
    with pytest.raises(DataError) as err:
        load_records(folder)
    assert str(err.value).startswith(f"{folder}: expected a folder whose every data file datasets.load_dataset reads")
    assert str(err.value).endswith("; found b.csv, c.txt skipped (files of another kind)")


def test_a_file_outside_the_split_names_is_refused_too(tmp_path):
    """Once a file is named ``train*``, ``load_dataset`` reads only the files named after a split."""
    folder = tmp_path / "splits"
    folder.mkdir()
    (folder / "train.jsonl").write_text(json.dumps(GOOD_GSM8K) + "\n")
    (folder / "more.jsonl").write_text(json.dumps(GOOD_GSM8K) + "\n")
    with pytest.raises(DataError, match=r"found more.jsonl skipped \(not named after a split"):
        load_records(folder)


def test_a_folder_of_one_kind_with_its_dataset_card_still_loads(tmp_path):
    folder = tmp_path / "card"
    (folder / "data").mkdir(parents=True)
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# my data\n")
    (folder / ".gitattributes").write_text("*.jsonl filter=lfs\n")
    (folder / "data" / "train.jsonl").write_text(json.dumps(GOOD_GSM8K) + "\n")
    (folder / "data" / "train-2.json").write_text(json.dumps(GOOD_GSM8K) + "\n")  # .json and .jsonl: one reader
    (folder / "data" / "test.jsonl").write_text(json.dumps(GOOD_GSM8K) + "\n")
    assert len(load_records(folder).records) == 2
    assert len(load_records(folder, split="test").records) == 1
