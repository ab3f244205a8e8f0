"""Benchmarks from local files, and the evaluation that writes ``results.json`` and ``samples.jsonl``.

The benchmark definitions (:data:`~cotdistill.evaluation.spec.BENCHMARKS`) live with the spec that names them.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cotdistill.config import ConfigError
from cotdistill.data.formats import iter_rows, source_name
from cotdistill.data.records import DataError
from cotdistill.evaluation.endings import ending_counts, gold_stated_counts
from cotdistill.evaluation.extract import extract_answer, extract_gsm8k
from cotdistill.evaluation.grade import GRADER, answers_match
from cotdistill.evaluation.spec import BENCHMARKS, Benchmark, EvalSpec, render_question
from cotdistill.generate import GenerationConfig, generate
from cotdistill.sources import world_benchmark


@dataclass
class BenchItem:
    prompt: str
    gold: str
    meta: dict[str, Any] = field(default_factory=dict)


def _pick(row: dict[str, Any], names: tuple[str, ...], source: str, index: int, what: str) -> Any:
    for name in names:
        if name in row:
            return row[name]
    raise DataError(source, index, f"a {what} field (one of {list(names)})", f"keys {sorted(row)}")


def _check_gold_type(raw_gold: Any, bench: Benchmark, source: str, index: int) -> None:
    """A gold answer is text, or a number where the benchmark reads it as given; ``str()`` of a list or dict was
    graded as if it were one (a GSM8K ``["… #### 5"]`` had the gold ``5']``)."""
    if bench.gold_from_solution:
        if not isinstance(raw_gold, str):
            raise DataError(source, index, "a string answer (a worked solution ending in '#### <number>')",
                            type(raw_gold).__name__)
    elif not isinstance(raw_gold, (str, int, float)) or isinstance(raw_gold, bool):
        raise DataError(source, index, "a string or number answer", type(raw_gold).__name__)


def load_benchmark(name: str, data_path: str | None = None, *, limit: int | None = None,
                   prompt_field: str | None = None, answer_field: str | None = None, split: str | None = None,
                   subset: str | None = None) -> list[BenchItem]:
    if name not in BENCHMARKS:
        raise ConfigError(f"benchmark must be one of {sorted(BENCHMARKS)}, got {name!r}")
    if limit is not None and limit < 1:  # 0 used to mean "all" for the world and "one item" for files
        raise ConfigError(f"limit must be >= 1 or None, got {limit}")
    if name == "world" and data_path is None:
        return [BenchItem(r.prompt, r.metadata["gold"], {"difficulty": r.metadata["difficulty"],
                                                          "uid": r.metadata["uid"]})
                for r in world_benchmark(limit)]
    if data_path is None:
        raise ConfigError(f"benchmark {name!r} needs --data / eval.data (a file, dataset folder or hub id)")
    bench = BENCHMARKS[name]
    prompts = (prompt_field,) if prompt_field else bench.prompt_fields
    answers = (answer_field,) if answer_field else bench.answer_fields
    items, source = [], source_name(data_path)
    for index, row in iter_rows(data_path, split=split or default_split(data_path), subset=subset):
        prompt = _pick(row, prompts, source, index, "prompt")
        if not isinstance(prompt, str):  # an int or a list failed inside the chat template, after the model loaded
            raise DataError(source, index, "a string prompt", type(prompt).__name__)
        raw_gold = _pick(row, answers, source, index, "answer")
        if raw_gold is None or not str(raw_gold).strip():  # was graded against the string "None"
            raise DataError(source, index, "a reference answer", f"{raw_gold!r}")
        _check_gold_type(raw_gold, bench, source, index)
        gold = str(raw_gold)
        if bench.gold_from_solution:
            gold = extract_gsm8k(gold)
            if gold is None:
                raise DataError(source, index, "an answer ending in '#### <number>'", "no #### line")
        meta = {k: v for k, v in row.items() if isinstance(v, (int, float, str)) and k not in prompts + answers}
        items.append(BenchItem(prompt, gold, meta))
        if limit is not None and len(items) >= limit:
            break
    if not items:
        raise DataError(source, None, f"at least one {name} problem", "no rows")
    return items


Z95 = 1.96


def wilson_ci(values: list[float]) -> tuple[float, float]:
    """Wilson's 95% score interval of the share of 1s among 0/1 ``values``: it stays honest near 0 and 1, where
    the normal interval collapses to a point."""
    n = len(values)
    if n == 0:
        return float("nan"), float("nan")
    mean, z = sum(values) / n, Z95
    centre = (mean + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(mean * (1 - mean) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def normal_ci(values: list[float]) -> tuple[float, float]:
    """Normal 95% interval of the mean: mean ± 1.96 · sd / √n (sd with n - 1), clipped to [0, 1]."""
    n = len(values)
    if n == 0:
        return float("nan"), float("nan")
    mean = sum(values) / n
    if n < 2:
        return mean, mean
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    half = Z95 * math.sqrt(var / n)
    return max(0.0, mean - half), min(1.0, mean + half)


def ci95(values: list[float]) -> tuple[float, float]:
    """95% interval of the mean of per-prompt scores: Wilson's when every score is 0 or 1, else the normal one."""
    return wilson_ci(values) if all(v in (0, 1) for v in values) else normal_ci(values)


def default_split(data) -> str:
    """The split a benchmark is read from when none is named: ``test`` where the data has one (a hub benchmark such
    as HuggingFaceH4/MATH-500, a saved DatasetDict, a folder with test files), else ``train`` (the only split of a
    folder of data files; a single file or rows in memory have no splits)."""
    if not isinstance(data, (str, Path)):
        return "train"
    path = Path(data)
    if not path.exists():
        return "test"  # a hub id
    if not path.is_dir():
        return "train"
    listing = path / "dataset_dict.json"
    if listing.exists():
        splits = json.loads(listing.read_text()).get("splits", [])
        return "test" if "test" in splits or not splits else splits[0]
    return "test" if any(f.name.startswith("test") for f in path.iterdir()) else "train"


def spec_items(spec: EvalSpec, rows=None) -> list[BenchItem]:
    """The problems ``spec`` names (``rows``: given in memory instead of ``spec.data``)."""
    return load_benchmark(spec.bench, spec.data if rows is None else rows, limit=spec.limit,
                          prompt_field=spec.prompt_field,
                          answer_field=spec.answer_field, split=spec.split, subset=spec.subset)


def evaluate(model, tokenizer, items: list[BenchItem], gen: GenerationConfig, *, bench: str = "custom",
             model_path: str | None = None, progress: bool = True, system: str | None = None,
             extraction: str = "strict", prompt_template: str | None = None) -> tuple[dict, list[dict]]:
    """Generate, extract, grade; return (results, samples). ``system``: the system prompt of every question (the
    one the model was trained with; see ``data.system``). ``extraction``: which grading is ``accuracy`` (both are
    reported; strict by default). ``prompt_template``: the template's text; each problem is rendered through it,
    and the rendered question is what the model sees and what a sample's ``prompt`` holds (``problem``: the raw
    problem), so provenance tracing scores the text the model saw."""
    questions = [render_question(prompt_template, it.prompt) for it in items]
    generations, stats = generate(model, tokenizer, questions, gen, model_path=model_path, system=system,
                                  progress=progress)
    samples, strict, flexible = [], defaultdict(list), defaultdict(list)
    for g in generations:
        item = items[g.prompt_index]
        # strict: only an answer the model gave (boxed, ####, "the answer is"); the last number in the text is a
        # separate, labelled column and the score only by choice (an unfinished "... maybe 7 or 9" is not an answer)
        found = extract_answer(g.text, flexible=False)
        loose = found if found.answer is not None else extract_answer(g.text)
        strict[g.prompt_index].append(answers_match(item.gold, found.answer))
        flexible[g.prompt_index].append(answers_match(item.gold, loose.answer))
        correct = (strict if extraction == "strict" else flexible)[g.prompt_index][-1]
        sample = {"bench": bench, "prompt_index": g.prompt_index, "sample_index": g.sample_index,
                  "prompt": questions[g.prompt_index], "problem": item.prompt, "response": g.text,
                  "extracted": found.answer, "extraction": found.method, "gold": item.gold, "correct": correct,
                  "correct_strict": strict[g.prompt_index][-1], "correct_flexible": flexible[g.prompt_index][-1],
                  "extracted_flexible": loose.answer, "response_tokens": g.num_tokens,
                  "hit_max_tokens": g.hit_max_tokens}
        # a dataset's other columns ride along, but never over a key of the evaluation (a column named "problem"
        # next to a "question" prompt, or one named "correct")
        samples.append(sample | {k: v for k, v in item.meta.items() if k not in sample})
    per_prompt = strict if extraction == "strict" else flexible  # the scores `accuracy`, its interval and pass@k use
    # per problem, the share of its n samples that are correct. Their mean is `accuracy`, which is also `pass@1`
    # (the unbiased pass@1 estimate from n samples) and `avg@n` (lighteval's "pass@1 over n samples"): three
    # names of one number, the first two kept for readers of older results, and one interval for it: `ci95` =
    # `avg@n_ci95`, Wilson's when every per-problem score is 0 or 1 (at n > 1 too: the normal interval of 64-sample
    # means that are all 0 on AIME would be [0, 0], a certainty no 30 problems give), else the normal one
    pass1 = [sum(v) / len(v) for v in per_prompt.values()]
    solved = [float(any(v)) for v in per_prompt.values()]  # pass@n: some sample of the problem is correct
    low, high = ci95(pass1)
    n = gen.samples
    by_difficulty: dict[str, list[float]] = defaultdict(list)
    for i, v in per_prompt.items():
        if "difficulty" in items[i].meta:
            by_difficulty[str(items[i].meta["difficulty"])].append(sum(v) / len(v))
    levels = difficulty_levels(by_difficulty)
    results = {
        "bench": bench, "benchmark_version": BENCHMARKS.get(bench, BENCHMARKS["jsonl"]).version,
        "grader": GRADER, "extractor": "strict: boxed > #### > answer-is; flexible adds the last number",
        "extraction": extraction, "n": len(items), "samples_per_prompt": gen.samples,
        "accuracy": sum(pass1) / len(pass1), "pass@1": sum(pass1) / len(pass1),
        "accuracy_strict": sum(sum(v) / len(v) for v in strict.values()) / len(strict),
        "accuracy_flexible": sum(sum(v) / len(v) for v in flexible.values()) / len(flexible),
        "ci95": [low, high],
        f"avg@{n}": sum(pass1) / len(pass1), f"avg@{n}_ci95": [low, high],
        f"pass@{n}": sum(solved) / len(solved), f"pass@{n}_ci95": list(wilson_ci(solved)),
        "prompt_template": prompt_template,
        "mean_response_tokens": sum(g.num_tokens for g in generations) / len(generations),
        "truncated_responses": sum(g.hit_max_tokens for g in generations),
        "endings": ending_counts([(g.text, g.hit_max_tokens) for g in generations]),
        "gold_stated": gold_stated_counts([(g.text, g.prompt_index) for g in generations],
                                          [str(it.gold) for it in items]),
        "by_difficulty": {k: sum(by_difficulty[k]) / len(by_difficulty[k]) for k in levels},
        "by_difficulty_ci95": {k: list(ci95(by_difficulty[k])) for k in levels},
        "generation_seconds": stats.seconds, "tokens_per_s": stats.tokens_per_s,
        "generation": {"temperature": gen.temperature, "top_p": gen.top_p, "max_new_tokens": gen.max_new_tokens},
    }
    return results, samples


def difficulty_levels(levels: Iterable[str]) -> list[str]:
    """Difficulty labels in order: as numbers when every label is one ("1.5" < "2" < "10"), else as text (a
    dataset's "easy" / "hard", or a mix). Any labels have an order, so none can fail an evaluation that has already
    generated every answer."""
    levels = list(levels)
    try:
        numbers = {level: float(level) for level in levels}
    except ValueError:
        return sorted(levels)
    if any(math.isnan(v) for v in numbers.values()):
        return sorted(levels)
    return sorted(levels, key=numbers.__getitem__)


def write_eval(out_dir: str | Path, results: dict, samples: list[dict]) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    with open(out / "samples.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(s, ensure_ascii=False) + "\n" for s in samples)


def evaluate_model(model, spec: EvalSpec | str | None = None, *, tokenizer=None, rows=None,
                   out_dir: str | Path | None = None, progress: bool = True, device: str = "auto") -> dict:
    """Evaluate ``model`` as ``spec`` says (a benchmark name: its defaults); ``results.json`` and
    ``samples.jsonl`` go to ``out_dir`` when given.

    ``model``: a path, hub id or ``world:``/``real:`` name (loaded here, with its own tokenizer unless
    ``tokenizer`` names or is one), or a loaded model (then ``tokenizer`` is needed); ``rows``: the benchmark's
    problems as rows in memory instead of ``spec.data``."""
    from cotdistill.models import (
        check_chat_template,
        load_model,
        load_tokenizer,
        pick_device,
        read_chat_template,
        resolve,
    )

    spec = EvalSpec(bench=spec) if isinstance(spec, str) else spec or EvalSpec()
    items = spec_items(spec, rows)  # a bad bench or file is found before the model loads
    named = isinstance(model, str)
    if tokenizer is None and not named:
        raise ConfigError("a model passed as an object needs its tokenizer: evaluate(model, tokenizer, …)")
    if tokenizer is None or isinstance(tokenizer, str):
        tokenizer = load_tokenizer(tokenizer or model, chat_template=spec.chat_template)
    elif spec.chat_template is not None:
        tokenizer.chat_template = read_chat_template(spec.chat_template)
        check_chat_template(tokenizer, spec.chat_template)
    if named:
        model_name, model = model, load_model(model, pick_device(device))
    else:
        model_name = getattr(model, "name_or_path", "") or f"<in-memory {type(model).__name__}>"
    # a path lets vLLM reload the model from disk; an object is generated with directly
    results, sample_rows = evaluate(model, tokenizer, items, spec.generation(), bench=spec.bench,
                                    model_path=resolve(model_name) if named else None, progress=progress,
                                    system=spec.system, extraction=spec.extraction, prompt_template=spec.template_text)
    results["model"], results["system"], results["preset"] = model_name, spec.system, spec.preset
    if out_dir is not None:
        write_eval(out_dir, results, sample_rows)
    return results
