"""``cotdistill data stats``: token statistics of a dataset before and after truncation, read with the same
``data`` and ``encode`` sections a training config has (so a training YAML's sections can be pasted here)."""

from __future__ import annotations

from dataclasses import dataclass, field

from cotdistill.config import AT_LEAST_ONE, ConfigError, check_field_rules
from cotdistill.data.encode import EncodeConfig
from cotdistill.training.config import DataConfig


@dataclass
class DataStatsConfig:
    data: DataConfig = field(default_factory=DataConfig)
    encode: EncodeConfig = field(default_factory=EncodeConfig)
    tokenizer: str = "world:tokenizer"  # path or hub id
    max_length: int | None = field(default=None, metadata={
        "help": "count rows longer than this (null: the positions of the tokenizer's model)", "range": AT_LEAST_ONE})
    json: bool = False  # one JSON object instead of the table

    def __post_init__(self) -> None:
        check_field_rules(self)


def data_stats(config: DataStatsConfig) -> dict:
    from cotdistill.data.prepare import read_any_records
    from cotdistill.data.records import apply_system_policy, repeated_positions
    from cotdistill.data.stats import before_after, system_token_share
    from cotdistill.models import load_tokenizer, model_max_positions

    data = config.data
    if not data.path:
        raise ConfigError("data stats needs a dataset: data.path (a file, dataset folder or hub id)")
    # read as train reads (world: specs included), before the system policy: its token share is reported
    result = read_any_records(data.path, data.format, data.on_error, fields=data.fields, split=data.split,
                              subset=data.subset)
    tokenizer = load_tokenizer(config.tokenizer, role="tokenizer")
    as_given = result.records
    records = apply_system_policy(result.records, data.system)
    # a model folder given as tokenizer tells its positions; the world tokenizer's models have 1024
    model = "world:student" if config.tokenizer == "world:tokenizer" else config.tokenizer
    max_length = config.max_length or model_max_positions(model)
    stats = before_after(tokenizer, records, config.encode, max_length, str(data.path))
    stats.update(format=result.format, skipped=len(result.skipped), tokenizer=config.tokenizer,
                 duplicate_records=len(repeated_positions(records)), max_length=max_length, system=data.system,
                 system_token_share=system_token_share(tokenizer, as_given, config.encode, str(data.path)))
    if data.max_tokens is not None:  # what train drops before its split; the stats above still cover every record
        from cotdistill.data.split import templated_lengths

        stats.update(max_tokens=data.max_tokens, longer_than_max_tokens=sum(
            n > data.max_tokens for n in templated_lengths(tokenizer, records)))
    return stats
