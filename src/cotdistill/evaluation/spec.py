"""What to evaluate and how: one spec shared by ``eval``, ``sweep``, ``select-experiment`` and ``demo``.

A sweep on Qwen + MATH-500 is then one YAML section away (``eval: {bench: math500, data: math500.jsonl}``), and
every stage reads the same keys. Defaults that depend on the benchmark (how many new tokens a reasoning trace
needs) live in the benchmark's definition; ``max_new_tokens: null`` takes them.

The protocol is data: ``prompt_template`` wraps each problem in an instruction (the rendered question is what the
model sees), and ``preset`` names a whole protocol (``paper``: the truncation paper's lighteval settings). A
preset fills only the keys that were not given. Those keys default to null, meaning "the preset's value, else the
built-in default", and ``__post_init__`` fills them: ``EvalSpec(preset="paper", temperature=0.0)`` keeps its
0.0, ``EvalSpec(preset="paper")`` gets the preset's 0.6. The config loader lays a section over its field's default
instance, whose keys are all filled already: there ``preset_layer`` puts the preset's values between that default
and the keys the user gave (so ``--print-config`` shows them, and its output reads back unchanged).

The benchmark table is here too, beside the spec that checks its ``bench`` against it: each definition names its
fields, how the gold answer is read, how many new tokens its answers need by default, and a version (bump it when
the definition changes, so old results are not compared with new ones).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cotdistill.config import check_field_rules
from cotdistill.world import WORLD_MAX_NEW_TOKENS


@dataclass(frozen=True)
class Benchmark:
    name: str
    version: str
    prompt_fields: tuple[str, ...]
    answer_fields: tuple[str, ...]
    max_new_tokens: int  # the default budget: a distilled reasoner's trace runs to thousands of tokens on MATH/AIME
    gold_from_solution: bool = False  # GSM8K: the gold is the "#### n" line of a worked solution


# budgets: long enough that a reasoning model's usual trace ends on its own (R1-distill models write ~1-4k tokens on
# GSM8K, ~4-8k on MATH-500, 10k+ on AIME); `truncated_responses` in results.json says when one did not
BENCHMARKS = {
    "gsm8k": Benchmark("gsm8k", "2", ("question",), ("answer",), 4096, gold_from_solution=True),
    "math500": Benchmark("math500", "2", ("problem",), ("answer",), 8192),
    "aime24": Benchmark("aime24", "2", ("problem", "Problem"), ("answer", "Answer"), 16384),
    "aime25": Benchmark("aime25", "2", ("problem", "Problem"), ("answer", "Answer"), 16384),
    "jsonl": Benchmark("jsonl", "2", ("prompt", "question", "problem"), ("answer", "gold", "solution"), 4096),
    "world": Benchmark("world", "2", ("prompt",), ("gold",), WORLD_MAX_NEW_TOKENS),
}

# strict: an answer given (boxed, ####, "the answer is"); flexible: + the last number in the text
Extraction = Literal["strict", "flexible"]
EXTRACTIONS = typing.get_args(Extraction)
PLACEHOLDER = "{problem}"

# lighteval 0.10.0 (the version the truncation paper's requirements_eval.txt pins), src/lighteval/tasks/
# default_prompts.py: `math_500` and `aime_prompt_fn` wrap each problem in this instruction (two spaces after
# "clearly." as there; their format string's doubled braces render as single ones), then a blank line, then the
# problem. math-verify, which grades both there and here, reads the \boxed{} answer it asks for.
LIGHTEVAL_MATH_TEMPLATE = (
    "Solve the following math problem efficiently and clearly.  The last line of your response should be of the "
    "following format: 'Therefore, the final answer is: $\\boxed{ANSWER}$. I hope it is correct' (without quotes) "
    "where ANSWER is just the final number or expression that solves the problem. Think step by step before "
    "answering.\n\n" + PLACEHOLDER
)

PRESETS: dict[str, dict[str, Any]] = {
    "lighteval-math": {"prompt_template": LIGHTEVAL_MATH_TEMPLATE},
    # examples/distillation/evaluate.sh of github weiruichen01/distilling-the-essence: lighteval + vLLM with
    # generation_parameters={max_new_tokens:32768,temperature:0.6,top_p:0.95} and --use-chat-template
    "paper": {"prompt_template": LIGHTEVAL_MATH_TEMPLATE, "temperature": 0.6, "top_p": 0.95,
              "max_new_tokens": 32768},
}
# samples per problem a preset draws on a benchmark. lighteval 0.10.0 generates, per problem, the largest n among
# a task's metrics (lighteval_task.py: num_samples = max over extract_num_samples(metric name)); in
# default_tasks.py aime24 and aime25 list math_pass@1 over 1, 4, 8, 16, 32 and 64 samples (so 64 are drawn and
# pass@1 is averaged over them) and math_500 over 1 and 4 samples
PRESET_SAMPLES: dict[str, dict[str, int]] = {"paper": {"aime24": 64, "aime25": 64, "math500": 4}}


def preset_values(name: str, bench: str) -> dict[str, Any]:
    """The keys preset ``name`` sets on benchmark ``bench``; an unknown name is a one-line error listing them."""
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)} or null, got {name!r}")
    values = dict(PRESETS[name])
    samples = PRESET_SAMPLES.get(name, {}).get(bench)
    if samples is not None:
        values["samples"] = samples
    return values


def read_prompt_template(value: str) -> str:
    """The template text: ``value`` itself when it holds ``{problem}``, else the text of the file it names, which
    must hold ``{problem}``. (Text is tried first: a long instruction is not a valid file name to look up.)"""
    if PLACEHOLDER in value:
        return value
    path = Path(value).expanduser()
    if not path.is_file():
        raise ValueError(f"prompt_template must be text holding {PLACEHOLDER} or a file whose text does; "
                         f"found {value!r}: no {PLACEHOLDER} in it and no such file")
    text = path.read_text(encoding="utf-8")
    if PLACEHOLDER not in text:
        raise ValueError(f"prompt_template {value}: the file's text holds no {PLACEHOLDER}")
    return text


def render_question(template: str | None, problem: str) -> str:
    """The question a model sees: ``template`` with ``{problem}`` replaced by the problem, or the bare problem.
    A literal replace, not ``str.format``: LaTeX braces in problems and templates stay as written."""
    return problem if template is None else template.replace(PLACEHOLDER, problem)


@dataclass
class EvalSpec:
    bench: str = "world"  # world | gsm8k | math500 | aime24 | aime25 | jsonl
    data: str | None = None  # file, dataset folder or hub id (null for world: its test split)
    split: str | None = None  # null: "test" where the dataset has one (hub ids, DatasetDicts), else "train"
    subset: str | None = None  # a hub dataset's configuration ("main" for openai/gsm8k)
    prompt_field: str | None = None  # the column holding the question (null: the benchmark's usual names)
    answer_field: str | None = None  # the column holding the reference answer
    limit: int | None = None  # the first N problems (null: all)
    # lighteval-math | paper (null: none): fills those of the next five keys that were not given (null)
    preset: str | None = None
    # text holding {problem}, or a file whose text does: the question every model sees (null: the bare problem)
    prompt_template: str | None = None
    samples: int | None = None  # completions per problem (null: 1); avg@n and pass@n are reported with n = samples
    temperature: float | None = None  # null: 0, greedy
    top_p: float | None = None  # null: 1
    max_new_tokens: int | None = None  # null: the benchmark's default (thousands for reasoning traces on MATH/AIME)
    batch_size: int = 32
    extraction: Extraction = "strict"  # strict: an answer given; flexible: + the last number (see Extraction)
    system: str | None = None  # system prompt of every question: the one the model was trained with (data.system)
    chat_template: str | None = None  # a Jinja file or text replacing the model's chat template

    def __post_init__(self) -> None:
        check_field_rules(self)
        if self.bench not in BENCHMARKS:
            raise ValueError(f"bench must be one of {sorted(BENCHMARKS)}, got {self.bench!r}")
        self._fill_unset()
        if self.prompt_template is not None:
            read_prompt_template(self.prompt_template)
        if self.limit is not None and self.limit < 1:  # 0 used to mean "all" for the world, "one item" for files
            raise ValueError(f"limit must be >= 1 or null, got {self.limit}")
        if self.samples < 1 or self.batch_size < 1:
            raise ValueError(f"samples and batch_size must be >= 1, got {self.samples}, {self.batch_size}")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1 or null (the benchmark's default), got "
                             f"{self.max_new_tokens}")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError(f"temperature must be >= 0 and top_p in (0, 1], got {self.temperature}, {self.top_p}")
        if self.samples > 1 and self.temperature == 0:  # greedy decoding gives n identical samples
            raise ValueError(f"samples > 1 needs temperature > 0 (greedy samples are identical, so pass@n would be "
                             f"pass@1), got samples {self.samples} at temperature 0")

    def _fill_unset(self) -> None:
        """Each null key a preset may set: the preset's value, else the built-in default written here (null
        ``max_new_tokens`` stays null: the benchmark's default, read by ``new_tokens``)."""
        preset = preset_values(self.preset, self.bench) if self.preset is not None else {}
        if self.prompt_template is None:
            self.prompt_template = preset.get("prompt_template")
        if self.samples is None:
            self.samples = preset.get("samples", 1)
        if self.temperature is None:
            self.temperature = preset.get("temperature", 0.0)
        if self.top_p is None:
            self.top_p = preset.get("top_p", 1.0)
        if self.max_new_tokens is None:
            self.max_new_tokens = preset.get("max_new_tokens")

    @classmethod
    def preset_layer(cls, section: dict[str, Any]) -> dict[str, Any]:
        """The values the preset named in a config section (the field's default laid under the user's keys) gives
        on its benchmark, for the loader to put under the user's keys; an unknown name gives none here and is
        refused, with the list, by ``__post_init__``."""
        name, bench = section.get("preset"), section.get("bench")
        if not isinstance(name, str) or name not in PRESETS:
            return {}
        return preset_values(name, bench if isinstance(bench, str) else "")

    @property
    def template_text(self) -> str | None:
        """The prompt template's text (read from its file when it names one), or None."""
        return None if self.prompt_template is None else read_prompt_template(self.prompt_template)

    @property
    def new_tokens(self) -> int:
        """``max_new_tokens``, or the benchmark's default when it is null."""
        return self.max_new_tokens or BENCHMARKS[self.bench].max_new_tokens

    def generation(self):
        from cotdistill.generate import GenerationConfig

        return GenerationConfig(max_new_tokens=self.new_tokens, temperature=self.temperature, top_p=self.top_p,
                                samples=self.samples, batch_size=self.batch_size)
