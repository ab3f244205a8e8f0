"""A sweep and a selection experiment on a user's own models and benchmark: two tiny HF models saved to disk (not
``world:``) and a 10-row GSM8K-format file, named by ``eval.bench=gsm8k eval.data=FILE`` on the command line.
Every point must be scored on those 10 GSM8K questions, not on the embedded world's test split."""

from __future__ import annotations

import json

import pytest

from cotdistill.cli import main
from tests.conftest import save_teacher_and_student

QUESTIONS = [(a, b) for a in (2, 3, 4, 5, 6) for b in (1, 2)]


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    save_teacher_and_student(root)
    rows = [{"question": f"Ann has {a} pens and gets {b} more. How many?",
             "answer": f"{a} + {b} = {a + b}\n#### {a + b}"} for a, b in QUESTIONS]
    (root / "gsm8k.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def _scored_on_the_file(eval_dir, file) -> None:
    results = json.loads((eval_dir / "results.json").read_text())
    assert results["bench"] == "gsm8k" and results["n"] == len(QUESTIONS)
    assert results["generation"]["max_new_tokens"] == 6
    questions = {json.loads(line)["question"] for line in file.read_text().splitlines()}
    prompts = [json.loads(line)["prompt"] for line in (eval_dir / "samples.jsonl").read_text().splitlines()]
    assert set(prompts) == questions


def test_sweep_scores_every_point_on_the_given_benchmark(own, tmp_path):
    data = own / "gsm8k.jsonl"
    argv = ["sweep", f"train.student={own}/student", f"train.teacher={own}/teacher", f"train.data.path={data}",
            "train.data.val_fraction=0", "train.optim.max_steps=1", "train.optim.batch_size=5", "train.progress=false",
            "train.device=cpu", "train.save_every=0", "train.eval_every=0",
            "eval.bench=gsm8k", f"eval.data={data}", "eval.max_new_tokens=6", "--lsp", "1,0.5",
            "--out", str(tmp_path / "sweep")]
    assert main(argv) == 0
    for point in ("lsp1", "lsp0.5"):
        _scored_on_the_file(tmp_path / "sweep" / point / "eval", data)
    rows = [line for line in (tmp_path / "sweep" / "tradeoff.csv").read_text().splitlines()[1:]]
    assert len(rows) == 2


def test_select_experiment_scores_every_cell_on_the_given_benchmark(own, tmp_path):
    data = own / "gsm8k.jsonl"
    argv = ["select-experiment", f"data={data}", f"teacher={own}/teacher", f"student={own}/student",
            "methods=[teacher,random]", "seeds=[0]", "train.optim.max_steps=1", "train.progress=false",
            "train.device=cpu", "eval.bench=gsm8k", f"eval.data={data}", "eval.max_new_tokens=6",
            "--out", str(tmp_path / "select")]
    assert main(argv) == 0
    for cell in ("teacher-seed0", "random-seed0"):
        _scored_on_the_file(tmp_path / "select" / cell / "eval", data)
