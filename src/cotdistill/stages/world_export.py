"""``cotdistill world export``: the embedded world's records written as a dataset in a format people use."""

from __future__ import annotations

from dataclasses import dataclass

from cotdistill.config import ConfigError
from cotdistill.outputs import check_output
from cotdistill.world import DEFAULT_SIZES


@dataclass
class WorldExportConfig:
    split: str = "train"  # train | validation | test
    style: str = "teacher"  # teacher | student: whose way of writing the chain of thought
    n: int | None = None  # the first N problems (null: the whole split)
    format: str = "messages"  # cot | messages | sharegpt
    out: str = ""

    def __post_init__(self) -> None:
        if self.split not in DEFAULT_SIZES or self.style not in ("teacher", "student"):
            raise ValueError(f"split must be one of {sorted(DEFAULT_SIZES)} and style teacher or student, got "
                             f"{self.split!r}, {self.style!r}")
        if self.format not in ("cot", "messages", "sharegpt"):
            raise ValueError(f"format must be cot, messages or sharegpt, got {self.format!r}")
        if self.n is not None and self.n < 1:
            raise ValueError(f"n must be >= 1 or null, got {self.n}")


def export_world(config: WorldExportConfig) -> int:
    from cotdistill.data.formats import write_jsonl
    from cotdistill.world import world_records

    if not config.out:
        raise ConfigError("world export needs out: the file to write")
    check_output(config.out, "--out (out)", [], is_file=True)  # a folder, or a folder it cannot write in
    records = world_records(config.split, config.style, config.n)
    write_jsonl(records, config.out, config.format)
    return len(records)
