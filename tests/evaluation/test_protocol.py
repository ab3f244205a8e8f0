"""The evaluation protocol as data: a prompt template every model sees, named presets that fill only the keys not
given, and avg@n / pass@n with their intervals over n samples per problem."""

from __future__ import annotations

import json

import pytest
import yaml

from cotdistill.cli import main
from cotdistill.evaluation import benchmarks
from cotdistill.evaluation.benchmarks import BenchItem, evaluate
from cotdistill.evaluation.spec import LIGHTEVAL_MATH_TEMPLATE, EvalSpec, render_question
from cotdistill.generate import Generation, GenerationConfig, GenerationStats

LATEX = r"Find $\frac{1}{2}$ of {x} where $x = \sqrt{16}$."


def _printed(argv, capsys) -> dict:
    assert main([*argv, "--print-config"]) == 0
    return yaml.safe_load(capsys.readouterr().out)


# --- the template ----------------------------------------------------------------------------------------------------
def test_a_template_replaces_only_the_placeholder_and_keeps_every_brace():
    template = "Solve it, answer in \\boxed{}.\n{problem}\n{answer} stays"
    assert render_question(template, LATEX) == ("Solve it, answer in \\boxed{}.\n" + r"Find $\frac{1}{2}$ of {x} "
                                                r"where $x = \sqrt{16}$." + "\n{answer} stays")
    assert render_question(None, LATEX) == LATEX  # no template: the bare problem
    assert render_question("{problem} / {problem}", "a{problem}b") == "a{problem}b / a{problem}b"  # one pass


def test_a_template_is_read_from_the_file_it_names(tmp_path):
    path = tmp_path / "math.txt"
    path.write_text("Q: {problem}\nA:", encoding="utf-8")
    spec = EvalSpec(prompt_template=str(path))
    assert spec.prompt_template == str(path) and spec.template_text == "Q: {problem}\nA:"
    assert EvalSpec(prompt_template="Q: {problem}").template_text == "Q: {problem}"


def test_a_template_without_the_placeholder_is_refused(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"prompt_template must be text holding \{problem\}.*'Answer:'"):
        EvalSpec(prompt_template="Answer:")
    empty = tmp_path / "t.txt"
    empty.write_text("no placeholder here")
    with pytest.raises(ValueError, match="the file's text holds no"):
        EvalSpec(prompt_template=str(empty))
    assert main(["eval", "some/model", "--prompt-template", "Answer:", "--print-config"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: eval: prompt_template must") and err.count("\n") == 1


# --- presets ---------------------------------------------------------------------------------------------------------
def test_the_paper_preset_sets_the_lighteval_protocol_per_benchmark():
    spec = EvalSpec(preset="paper", bench="aime24")
    assert (spec.temperature, spec.top_p, spec.max_new_tokens, spec.samples) == (0.6, 0.95, 32768, 64)
    assert spec.prompt_template == LIGHTEVAL_MATH_TEMPLATE
    assert EvalSpec(preset="paper", bench="math500").samples == 4 and EvalSpec(preset="paper").samples == 1
    math = EvalSpec(preset="lighteval-math", bench="math500")  # the template only
    assert math.prompt_template == LIGHTEVAL_MATH_TEMPLATE
    assert (math.temperature, math.top_p, math.samples, math.max_new_tokens) == (0.0, 1.0, 1, None)
    assert render_question(LIGHTEVAL_MATH_TEMPLATE, "1+1?").endswith("Think step by step before answering.\n\n1+1?")
    assert "$\\boxed{ANSWER}$" in LIGHTEVAL_MATH_TEMPLATE


def test_keys_the_user_gives_win_over_the_preset(tmp_path, capsys):
    spec = EvalSpec(preset="paper", bench="aime25", temperature=0.0, samples=1, prompt_template="{problem}")
    assert (spec.temperature, spec.samples, spec.prompt_template, spec.top_p) == (0.0, 1, "{problem}", 0.95)
    (tmp_path / "e.yaml").write_text("eval: {preset: paper, bench: aime24, top_p: 0.9}\n")
    got = _printed(["eval", "m", str(tmp_path / "e.yaml"), "eval.samples=8", "--temperature", "1.0"], capsys)["eval"]
    assert (got["top_p"], got["samples"], got["temperature"]) == (0.9, 8, 1.0)  # YAML, key=value and flag win
    assert (got["max_new_tokens"], got["prompt_template"]) == (32768, LIGHTEVAL_MATH_TEMPLATE)  # the preset fills
    # a stage's own eval defaults that the preset does not set stay (demo evaluates 300 world problems)
    demo = _printed(["demo", "eval.preset=paper"], capsys)["eval"]
    assert (demo["limit"], demo["temperature"], demo["samples"]) == (300, 0.6, 1)


def test_a_config_with_a_preset_prints_and_reads_back_unchanged(tmp_path, capsys):
    for words in (["eval", "m", "--preset", "paper", "--bench", "aime24"], ["sweep", "eval.preset=lighteval-math"]):
        assert main([*words, "--print-config"]) == 0
        printed = capsys.readouterr().out
        (tmp_path / "c.yaml").write_text(printed)
        assert main([words[0], str(tmp_path / "c.yaml"), "--print-config"]) == 0
        assert capsys.readouterr().out == printed


def test_an_unknown_preset_is_one_line_naming_the_presets(capsys):
    with pytest.raises(ValueError, match=r"preset must be one of \['lighteval-math', 'paper'\] or null, got 'lsp'"):
        EvalSpec(preset="lsp")
    assert main(["eval", "m", "--preset", "lsp", "--print-config"]) == 2
    err = capsys.readouterr().err
    assert "eval: preset must be one of ['lighteval-math', 'paper']" in err and err.count("\n") == 1


def test_several_samples_at_temperature_zero_are_refused(capsys):
    with pytest.raises(ValueError, match="samples > 1 needs temperature > 0"):
        EvalSpec(samples=4)
    with pytest.raises(ValueError, match="samples > 1 needs temperature > 0"):
        EvalSpec(preset="paper", bench="aime24", temperature=0.0)  # the preset's 64 samples, greedy
    assert EvalSpec(samples=4, temperature=0.5).samples == 4
    assert main(["eval", "m", "--samples", "4", "--print-config"]) == 2
    assert "samples > 1 needs temperature > 0" in capsys.readouterr().err


# --- avg@n and pass@n on fixed generations ---------------------------------------------------------------------------
def _fixed_generations(monkeypatch, right: list[list[bool]]) -> list[str]:
    """``generate`` answers problem i's sample s with the gold 7 when ``right[i][s]``, else 8; returns the list the
    questions the model was given are appended to."""
    seen: list[str] = []

    def fake(model, tokenizer, questions, gen, **kwargs):
        seen.extend(questions)
        out = [Generation(i, s, f"so the answer is \\boxed{{{7 if right[i][s] else 8}}}", 5, False)
               for i in range(len(questions)) for s in range(gen.samples)]
        return out, GenerationStats(1.0, 5 * len(out))

    monkeypatch.setattr(benchmarks, "generate", fake)
    return seen


def test_avg_and_pass_at_n_and_their_intervals_by_hand(monkeypatch):
    right = [[True] * 4, [True, True, True, False], [False] * 4, [False, True, False, False], [True, False] * 2]
    seen = _fixed_generations(monkeypatch, right)
    items = [BenchItem(f"problem {i}: {{x}}", "7") for i in range(5)]
    template = "Solve. \\boxed{} please.\n{problem}"
    results, samples = evaluate(None, None, items, GenerationConfig(samples=4, temperature=1.0), bench="gsm8k",
                                prompt_template=template)
    assert seen == [f"Solve. \\boxed{{}} please.\nproblem {i}: {{x}}" for i in range(5)]  # what the model saw
    assert [s["prompt"] for s in samples[:4]] == [seen[0]] * 4 and samples[0]["problem"] == "problem 0: {x}"
    assert results["prompt_template"] == template
    # per-problem means 1, 3/4, 0, 1/4, 1/2: avg@4 = 2.5 / 5 = 0.5; their sd (n - 1) = sqrt(0.625 / 4), so the
    # half-width is 1.96 * sqrt(0.15625 / 5) = 1.96 * sqrt(0.03125) = 0.3464823
    assert results["avg@4"] == results["accuracy"] == results["pass@1"] == 0.5
    assert results["avg@4_ci95"] == pytest.approx([0.5 - 0.3464823228, 0.5 + 0.3464823228], abs=1e-9)
    # pass@4: 4 of 5 problems have a correct sample. Wilson, z = 1.96, n = 5, p = 0.8: centre =
    # (0.8 + 3.8416 / 10) / (1 + 3.8416 / 5) = 1.18416 / 1.76832; half = 1.96 * sqrt(0.16 / 5 + 3.8416 / 100) / 1.76832
    assert results["pass@4"] == 0.8
    centre, half = 1.18416 / 1.76832, 1.96 * 0.070416 ** 0.5 / 1.76832
    assert results["pass@4_ci95"] == pytest.approx([centre - half, centre + half], abs=1e-12)
    assert results["pass@4_ci95"] == pytest.approx([0.3755283, 0.9637768], abs=1e-7)
    from scipy.stats import binomtest  # scipy's Wilson uses z = 1.95996...: equal to 1e-5

    assert results["pass@4_ci95"] == pytest.approx(list(binomtest(4, 5).proportion_ci(method="wilson")), abs=1e-4)


def test_avg_at_n_takes_wilsons_interval_when_every_problem_is_all_right_or_all_wrong(monkeypatch):
    _fixed_generations(monkeypatch, [[True, True], [False, False], [True, True], [True, True]])
    results, _ = evaluate(None, None, [BenchItem(f"q{i}", "7") for i in range(4)],
                          GenerationConfig(samples=2, temperature=1.0))
    # means 1, 0, 1, 1: one figure, one interval: Wilson at p = 0.75, n = 4 (the normal one would be [0.26, 1.0])
    assert results["avg@2"] == 0.75
    assert results["avg@2_ci95"] == results["ci95"] == pytest.approx([0.3006361, 0.9544139], abs=1e-7)


def test_avg_at_n_of_a_model_that_never_answers_is_not_certain(monkeypatch):
    # 64 samples on each of 3 problems, all wrong: the normal interval would be [0, 0]; Wilson's is [0, 0.56]
    _fixed_generations(monkeypatch, [[False] * 64] * 3)
    results, _ = evaluate(None, None, [BenchItem(f"q{i}", "7") for i in range(3)],
                          GenerationConfig(samples=64, temperature=1.0))
    low, high = results["avg@64_ci95"]
    assert results["avg@64"] == 0.0 and low == 0.0 and high == pytest.approx(3.8416 / (3 + 3.8416), abs=1e-9)


def test_one_sample_reports_avg_at_1_with_wilsons_interval(monkeypatch):
    _fixed_generations(monkeypatch, [[True], [False], [True], [True]])
    results, samples = evaluate(None, None, [BenchItem(f"q{i}", "7") for i in range(4)], GenerationConfig())
    # Wilson, n = 4, p = 0.75: centre = (0.75 + 3.8416 / 8) / (1 + 3.8416 / 4) = 1.2302 / 1.9604
    centre, half = 1.2302 / 1.9604, 1.96 * (0.1875 / 4 + 3.8416 / 64) ** 0.5 / 1.9604
    assert results["avg@1"] == results["pass@1"] == 0.75
    assert results["avg@1_ci95"] == results["pass@1_ci95"] == results["ci95"]
    assert results["avg@1_ci95"] == pytest.approx([centre - half, centre + half], abs=1e-12)
    assert results["prompt_template"] is None and samples[0]["prompt"] == samples[0]["problem"] == "q0"


def test_the_python_entry_point_renders_the_template_too(monkeypatch):
    import cotdistill
    from tests.conftest import char_tokenizer, tiny_qwen

    seen = _fixed_generations(monkeypatch, [[True], [False]])
    tok = char_tokenizer()
    rows = [{"question": "1+6?", "answer": "#### 7"}, {"question": "2+6?", "answer": "#### 8"}]
    results = cotdistill.evaluate(tiny_qwen(len(tok), hidden=16, layers=1), tok, data=rows,
                                  spec={"bench": "gsm8k", "preset": "lighteval-math"})
    assert seen == [render_question(LIGHTEVAL_MATH_TEMPLATE, r["question"]) for r in rows]
    assert results["preset"] == "lighteval-math" and results["prompt_template"] == LIGHTEVAL_MATH_TEMPLATE


# --- done when: `cotdistill eval` with a template and 4 samples on GSM8K rows, a tiny local model -----------------
def test_eval_with_a_template_and_four_samples_reports_avg_and_pass_at_4(tmp_path):
    from tests.conftest import char_tokenizer, tiny_qwen

    tok = char_tokenizer()
    tiny_qwen(len(tok), hidden=16, layers=1).save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    rows = [{"question": f"Ann has {a} pens and gets {{1}} more. How many?", "answer": f"#### {a + 1}"}
            for a in (2, 3, 4)]
    (tmp_path / "gsm8k.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "eval"
    assert main(["eval", str(tmp_path / "model"), "--bench", "gsm8k", "--data", str(tmp_path / "gsm8k.jsonl"),
                 "--prompt-template", "Q: {problem}\nPut the answer in \\boxed{}.", "--samples", "4",
                 "--temperature", "1.0", "--max-new-tokens", "4", "--device", "cpu", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert results["n"] == 3 and len(samples) == 12
    assert results["prompt_template"] == "Q: {problem}\nPut the answer in \\boxed{}."
    assert {s["prompt"] for s in samples} == {f"Q: {r['question']}\nPut the answer in \\boxed{{}}." for r in rows}
    assert {s["problem"] for s in samples} == {r["question"] for r in rows}
    per_problem = [[s["correct"] for s in samples if s["prompt_index"] == i] for i in range(3)]
    assert results["avg@4"] == sum(sum(p) / 4 for p in per_problem) / 3
    assert results["pass@4"] == sum(any(p) for p in per_problem) / 3
    for key in ("avg@4_ci95", "pass@4_ci95"):
        low, high = results[key]
        assert 0.0 <= low <= results[key[:-5]] <= high <= 1.0
    assert results["pass@4_ci95"][1] > 0.4  # Wilson on 3 problems is wide even at 0 of 3 (upper 0.56)


def test_results_count_the_responses_that_state_their_gold_and_the_chance_rate(monkeypatch):
    _fixed_generations(monkeypatch, [[True], [False], [False], [True]])  # responses: boxed 7, 8, 8, 7
    items = [BenchItem(f"q{i}", gold) for i, gold in enumerate(["7", "8", "7", "9"])]
    results, _ = evaluate(None, None, items, GenerationConfig())
    # own gold: q0 (7) and q1 (8) state theirs; by chance: q3's 7 is the next problem's (q0, wrapping round) gold
    assert results["gold_stated"] == {"gold_checked": 4, "gold_stated": 2, "chance_checked": 4,
                                      "gold_stated_by_chance": 1}
