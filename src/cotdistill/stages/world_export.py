"""``cotdistill world export``: the embedded world's records written as a dataset in a format people use."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from cotdistill.config import AT_LEAST_ONE, ConfigError, check_field_rules
from cotdistill.outputs import check_output
from cotdistill.world import DEFAULT_SIZES

Style = Literal["teacher", "student"]
ExportFormat = Literal["cot", "messages", "sharegpt"]  # the formats a record is written in (gsm8k is read only)


@dataclass
class WorldExportConfig:
    split: str = "train"  # train | validation | test
    style: Style = "teacher"  # whose way of writing the chain of thought
    n: int | None = field(default=None, metadata={"help": "the first N problems (null: the whole split)",
                                                  "range": AT_LEAST_ONE})
    format: ExportFormat = "messages"
    out: str = ""

    def __post_init__(self) -> None:
        check_field_rules(self)
        if self.split not in DEFAULT_SIZES:
            raise ValueError(f"split must be one of {sorted(DEFAULT_SIZES)}, got {self.split!r}")


def export_world(config: WorldExportConfig) -> int:
    from cotdistill.data.formats import write_jsonl
    from cotdistill.world import world_records

    if not config.out:
        raise ConfigError("world export needs out: the file to write")
    check_output(config.out, "--out (out)", [], is_file=True)  # a folder, or a folder it cannot write in
    records = world_records(config.split, config.style, config.n)
    write_jsonl(records, config.out, config.format)
    return len(records)
