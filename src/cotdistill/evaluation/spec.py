"""What to evaluate and how: one spec shared by ``eval``, ``sweep``, ``select-experiment`` and ``demo``.

A sweep on Qwen + MATH-500 is then one YAML section away (``eval: {bench: math500, data: math500.jsonl}``), and
every stage reads the same keys. Defaults that depend on the benchmark (how many new tokens a reasoning trace
needs) live in the benchmark's definition; ``max_new_tokens: null`` takes them.
"""

from __future__ import annotations

from dataclasses import dataclass

EXTRACTIONS = ("strict", "flexible")


@dataclass
class EvalSpec:
    bench: str = "world"  # world | gsm8k | math500 | aime24 | aime25 | jsonl
    data: str | None = None  # file, dataset folder or hub id (null for world: its test split)
    split: str | None = None  # null: "test" where the dataset has one (hub ids, DatasetDicts), else "train"
    subset: str | None = None  # a hub dataset's configuration ("main" for openai/gsm8k)
    prompt_field: str | None = None  # the column holding the question (null: the benchmark's usual names)
    answer_field: str | None = None  # the column holding the reference answer
    limit: int | None = None  # the first N problems (null: all)
    samples: int = 1  # completions per problem; pass@k is reported with k = samples
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    max_new_tokens: int | None = None  # null: the benchmark's default (thousands for reasoning traces on MATH/AIME)
    batch_size: int = 32
    extraction: str = "strict"  # strict: an answer given (boxed, ####, "the answer is"); flexible: + the last number
    system: str | None = None  # system prompt of every question: the one the model was trained with (data.system)
    chat_template: str | None = None  # a Jinja file or text replacing the model's chat template

    def __post_init__(self) -> None:
        from cotdistill.evaluation.benchmarks import BENCHMARKS

        if self.bench not in BENCHMARKS:
            raise ValueError(f"bench must be one of {sorted(BENCHMARKS)}, got {self.bench!r}")
        if self.limit is not None and self.limit < 1:  # 0 used to mean "all" for the world, "one item" for files
            raise ValueError(f"limit must be >= 1 or null, got {self.limit}")
        if self.samples < 1 or self.batch_size < 1:
            raise ValueError(f"samples and batch_size must be >= 1, got {self.samples}, {self.batch_size}")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1 or null (the benchmark's default), got "
                             f"{self.max_new_tokens}")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError(f"temperature must be >= 0 and top_p in (0, 1], got {self.temperature}, {self.top_p}")
        if self.extraction not in EXTRACTIONS:
            raise ValueError(f"extraction must be one of {EXTRACTIONS}, got {self.extraction!r}")

    @property
    def new_tokens(self) -> int:
        """``max_new_tokens``, or the benchmark's default when it is null."""
        from cotdistill.evaluation.benchmarks import BENCHMARKS

        return self.max_new_tokens or BENCHMARKS[self.bench].max_new_tokens

    def generation(self):
        from cotdistill.generate import GenerationConfig

        return GenerationConfig(max_new_tokens=self.new_tokens, temperature=self.temperature, top_p=self.top_p,
                                samples=self.samples, batch_size=self.batch_size)
