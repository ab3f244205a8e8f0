"""Each input format round-trips; each bad input gives a located error (or is skipped and counted)."""

from __future__ import annotations

import json

import pytest

from cotdistill.data.formats import load_records, record_to_row, write_jsonl
from cotdistill.data.records import DataError, ReasoningRecord

RECORDS = [
    ReasoningRecord("What is 2+3?", "2 + 3 = 5.", "\\boxed{5}", {"id": 1}),
    ReasoningRecord("Find x: x*2=8", "x = 8 / 2 = 4.", "The answer is 4.", {"id": 2}, system="Be brief."),
]


@pytest.mark.parametrize("fmt", ["cot", "messages", "sharegpt"])
def test_jsonl_round_trip_and_detection(tmp_path, fmt):
    path = tmp_path / "data.jsonl"
    write_jsonl(RECORDS, path, fmt)
    result = load_records(path)
    assert result.format == fmt
    expected = RECORDS if fmt != "cot" else [ReasoningRecord(r.prompt, r.cot, r.answer, r.metadata) for r in RECORDS]
    assert result.records == expected


def test_bespoke_stratos_shape(tmp_path):
    row = {"system": "Your role as an assistant...",
           "conversations": [{"from": "user", "value": "Return your final response within \\boxed{}. 1+1?"},
                             {"from": "assistant", "value": "<|begin_of_thought|>\n\nOne plus one is two.\n\n"
                              "<|end_of_thought|>\n\n<|begin_of_solution|>\n\n\\boxed{2}\n\n<|end_of_solution|>"}]}
    path = tmp_path / "stratos.jsonl"
    path.write_text(json.dumps(row) + "\n")
    rec = load_records(path).records[0]
    assert (rec.cot, rec.answer, rec.system) == ("One plus one is two.", "\\boxed{2}", "Your role as an assistant...")


@pytest.mark.parametrize("fmt", ["messages", "sharegpt"])
def test_hf_dataset_directory_and_parquet(tmp_path, fmt):
    import datasets

    ds = datasets.Dataset.from_list([record_to_row(r, fmt) for r in RECORDS])
    ds.save_to_disk(str(tmp_path / "ds"))
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "dsd"))
    ds.to_parquet(str(tmp_path / "d.parquet"))
    for source in ("ds", "dsd", "d.parquet"):
        result = load_records(tmp_path / source)
        assert result.format == fmt
        assert [(r.prompt, r.cot, r.answer) for r in result.records] == [(r.prompt, r.cot, r.answer) for r in RECORDS]


def _write_lines(path, lines):
    with open(path, "wb") as fh:
        for line in lines:
            fh.write(line if isinstance(line, bytes) else line.encode())
            fh.write(b"\n")


@pytest.mark.parametrize("bad, message", [
    (json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "<think>c a"}]}),
     "line 2: expected an assistant turn containing </think>"),
    (json.dumps({"prompt": "p", "cot": "  ", "answer": "a"}), "line 2: expected a non-empty cot"),
    (json.dumps({"prompt": "p", "answer": "a"}), "line 2: expected fields prompt, cot, answer"),
    ('{"prompt": "p", "cot": ', "line 2: expected one JSON object per line"),
    (b'{"prompt": "p\xff", "cot": "c", "answer": "a"}', "line 2: expected UTF-8 text; found byte 0xff"),
])
def test_bad_input_is_located(tmp_path, bad, message):
    path = tmp_path / "bad.jsonl"
    fmt = "messages" if "messages" in str(bad) else "cot"
    good = json.dumps(record_to_row(ReasoningRecord("p", "c", "a"), fmt))
    _write_lines(path, [good, bad, good])
    with pytest.raises(DataError) as err:
        load_records(path, fmt)
    assert str(path) in str(err.value) and message in str(err.value)
    skipped = load_records(path, fmt, on_error="skip")
    assert len(skipped.records) == 2 and len(skipped.skipped) == 1


def test_unknown_shape_and_missing_file(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps({"text": "hello"}) + "\n")
    with pytest.raises(DataError, match="keys of one format"):
        load_records(path)
    with pytest.raises(DataError, match="nothing at that path"):
        load_records(tmp_path / "missing.jsonl")


def test_nested_think_markers_are_rejected(tmp_path):
    path = tmp_path / "n.jsonl"
    row = {"messages": [{"role": "user", "content": "q"},
                        {"role": "assistant", "content": "<think>a <think> b</think>answer"}]}
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(DataError, match="line 1: expected a cot without think markers"):
        load_records(path)
