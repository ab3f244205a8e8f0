"""``cotdistill teacher cache``: the teacher's top-k log-probs at every supervised position, for offline KD.

The cache is built from the training config that will read it (``train_config: train.yaml``): its teacher, data,
``encode`` (truncation, sections), ``loss.temperature``, ``chat_template`` and ``data.system``, for the records the
run selects (``data.max_tokens``, its validation split and ``max_records``: ``select_config_records``) — so the cache
cannot disagree with the run; a run still checks its cache against itself before training.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cotdistill.config import AT_LEAST_ONE, ConfigError, check_field_rules
from cotdistill.outputs import claim_output
from cotdistill.teacher.cache import LogpDtype
from cotdistill.training.config import TrainConfig


@dataclass
class TeacherCacheConfig:
    train_config: str | None = None  # the training YAML the cache is for (keys under train: override it)
    train: TrainConfig = field(default_factory=TrainConfig)  # teacher, data, encode, loss.temperature, chat_template
    out: str | None = None  # the cache folder (default: the training config's teacher_cache)
    top_k: int = field(default=24, metadata={"help": "most entries kept at a position", "range": AT_LEAST_ONE})
    kl_target: float | None = 1e-3  # fewest entries (<= top_k) whose reconstruction is this close (nats); null: top_k
    dtype: LogpDtype = "uint8"  # uint8: steps below each position's maximum
    batch_size: int = field(default=8, metadata={"range": AT_LEAST_ONE})

    def __post_init__(self) -> None:
        if self.kl_target is not None and self.kl_target < 0:  # the old flag's "-1: always top_k"
            self.kl_target = None
        check_field_rules(self)


def build_teacher_cache(config: TeacherCacheConfig, *, progress: bool = True) -> dict:
    from cotdistill.data.encode import encode_records
    from cotdistill.data.prepare import load_config_records, select_config_records
    from cotdistill.models import (
        load_model,
        load_tokenizer,
        model_max_positions,
        model_source,
        pick_device,
    )
    from cotdistill.teacher.cache import build_cache
    from cotdistill.teacher.cross import CrossTokenizerTeacher, align_example, row_key, shared_vocabulary
    from cotdistill.training.objective import final_logit_cap

    train = config.train
    out = config.out or train.teacher_cache
    if not out:
        raise ConfigError("teacher cache needs out (or teacher_cache in the training config): where to write it")
    if not train.teacher:
        raise ConfigError("teacher cache needs a teacher (train.teacher, or teacher in the training config)")
    data_path = train.data.path
    if not data_path:
        raise ConfigError("teacher cache needs training data (train.data.path, or data.path in the training config)")
    model_source(train.teacher, "teacher")  # a typo in the teacher's name is found before the data is read
    # with a training config, the run's own tokenizer and template (the student's unless tokenizer: is set): the
    # cache is checked against exactly these token ids, and a teacher whose template renders differently would fit
    # no run; named by flags alone, the student is unknown and the teacher's tokenizer renders
    # across tokenizers the rows are the student's, always
    for_student = config.train_config or train.loss.cross_tokenizer != "off"
    own = train.tokenizer or (train.student if for_student else train.teacher)
    # the cache being built is not one of its inputs (out is the training config's teacher_cache by default)
    inputs = [train.teacher, own, train.chat_template, data_path, train.data.val_path]
    with claim_output(out, "--out (out)" if config.out else "teacher_cache", inputs):
        records, _ = load_config_records(train.data, limit=train.data.read_limit)
        tokenizer = load_tokenizer(own, chat_template=train.chat_template)
        # the records the run trains and validates on (length filter, split, max_records), each at its file index
        chosen = select_config_records(train.data, records, tokenizer, separate_val=bool(train.data.val_path))
        indices = sorted(chosen.train + chosen.val)
        examples = encode_records(tokenizer, [records[i] for i in indices], train.encode, data_path,
                                  indices=indices).examples
        teacher_tokenizer = None
        if train.loss.cross_tokenizer != "off":  # rows are the spans the run will align, over the teacher's tokens
            teacher_tokenizer = load_tokenizer(train.teacher, role="teacher")
            reach = model_max_positions(train.teacher)
            alignments = {row_key(e): align_example(tokenizer, teacher_tokenizer, records[e.index], e, reach)
                          for e in examples}
        teacher = load_model(train.teacher, pick_device(train.device))
        if teacher_tokenizer is not None:  # "spans": the cache holds what either method reads (span log-probs too)
            teacher = CrossTokenizerTeacher.of_model(teacher, final_logit_cap(teacher), teacher_tokenizer, train.loss,
                                                     alignments, shared_vocabulary(tokenizer, teacher_tokenizer),
                                                     mode="spans")
        return build_cache(teacher, tokenizer, examples, out, top_k=config.top_k, encode_config=train.encode,
                           data_path=data_path, teacher_name=train.teacher, temperature=train.loss.temperature,
                           batch_size=config.batch_size, logp_dtype=config.dtype, kl_target=config.kl_target,
                           progress=progress, teacher_tokenizer=teacher_tokenizer)
