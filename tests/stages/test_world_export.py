"""``cotdistill world export``: the world's problems as a data file in the messages format."""

from __future__ import annotations

import json

from cotdistill.cli import main


def test_export_writes_messages_records(tmp_path):
    out = tmp_path / "w.jsonl"
    assert main(["world", "export", "--split", "validation", "--style", "student", "--n", "5", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in open(out)]
    assert len(rows) == 5 and rows[0]["messages"][1]["content"].startswith("<think>\nStart:")
