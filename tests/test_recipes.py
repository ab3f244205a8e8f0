"""The truncation paper's recipe (recipes/truncation-paper/): every file loads and prints a config that reads back
unchanged, its settings are the authors' script's setting by setting, and the whole sweep runs end to end at tiny
scale with the hub names replaced by two tiny local models and a few rows of Bespoke-Stratos-shaped data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cotdistill.cli import main
from cotdistill.config import from_dict
from cotdistill.training.config import TrainConfig
from tests.conftest import save_teacher_and_student

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "truncation-paper"
COMMANDS = {"train-lsp0.5.yaml": "train", "train-lsp1.yaml": "train", "sweep.yaml": "sweep",
            "eval-math500.yaml": "eval", "eval-aime24.yaml": "eval", "eval-aime25.yaml": "eval"}

# examples/distillation/training.sh (github weiruichen01/distilling-the-essence) and what its Python does with each
# value: the key of the recipe that carries it, and the value it must have
AUTHORS_SETTINGS = {
    "student": "Qwen/Qwen3-4B-Base",  # model_name
    "teacher": "Qwen/Qwen3-8B",  # teacher_model_name
    "seed": 42,  # training.py: pl.seed_everything(42)
    "data.path": "bespokelabs/Bespoke-Stratos-17k",  # dataset bespoke_stratos17k
    "data.max_tokens": 4095,  # the indexes of examples with less than 4k (4,096) tokens: at most 4,095
    "data.val_size": 1000,  # n_val
    "data.split_seed": 42,  # train_test_split(test_size=n_val, seed=42)
    "data.max_records": 8000,  # n_train
    "data.system": "drop",  # only user and assistant turns are rendered
    "encode.sections": "promptcotAns",  # section_inclusion
    "loss.kind": "forward_kl",  # distill_loss
    "loss.distill_ratio": 0.5,  # distillation_loss_ratio
    "loss.temperature": 1.0,
    "loss.normalize": "sequences",  # batch_size 1: a token mean per sequence
    "optim.lr": 4e-6,  # lr
    "optim.schedule": "onecycle",  # OneCycleLR
    "optim.warmup_ratio": 0.1,  # warmup_ratio -> pct_start
    "optim.weight_decay": 0.05,  # weight_decay
    "optim.decay_all_parameters": True,  # AdamW(self.model.parameters(), ...)
    "optim.betas": (0.9, 0.999),  # AdamW's defaults
    "optim.max_grad_norm": 1.0,  # GradientClippingCallback(clip_val=1.0)
    "optim.epochs": 2,  # num_epoch
    "eval_every": 0.1,  # val_check_interval
    "keep_best": True,  # save_on_best_validation
    "best_metric": "val_ce",  # val_include_distill_loss=False: the monitored val_loss is CE alone
    "gradient_checkpointing": True,  # enable_gradient_checkpointing
}


def _value(config, dotted: str):
    for part in dotted.split("."):
        config = getattr(config, part)
    return config


def _train_config(name: str) -> TrainConfig:
    return from_dict(TrainConfig, yaml.safe_load((RECIPE / name).read_text()))


@pytest.mark.parametrize("name", ["train-lsp0.5.yaml", "train-lsp1.yaml"])
def test_recipe_matches_the_authors_script_setting_by_setting(name):
    config = _train_config(name)
    found = {key: _value(config, key) for key in AUTHORS_SETTINGS}
    assert found == AUTHORS_SETTINGS
    # effective batch 4: batch 1 on each of the script's 4 GPUs; here one device accumulates 4
    assert config.optim.batch_size * config.optim.grad_accum == 4
    assert (config.encode.truncation, config.encode.lsp) == (("lsp", 0.5) if "0.5" in name else ("none", 1.0))


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_recipe_file_prints_a_config_that_reads_back_unchanged(name, tmp_path, capsys):
    assert main([COMMANDS[name], str(RECIPE / name), "--print-config"]) == 0
    printed = capsys.readouterr().out
    (tmp_path / "printed.yaml").write_text(printed)
    assert main([COMMANDS[name], str(tmp_path / "printed.yaml"), "--print-config"]) == 0
    assert capsys.readouterr().out == printed


@pytest.mark.parametrize(("bench", "samples"), [("math500", 4), ("aime24", 64), ("aime25", 64)])
def test_eval_recipes_use_the_papers_protocol(bench, samples, capsys):
    assert main(["eval", str(RECIPE / f"eval-{bench}.yaml"), "--print-config"]) == 0
    spec = yaml.safe_load(capsys.readouterr().out)["eval"]
    assert (spec["bench"], spec["preset"], spec["samples"]) == (bench, "paper", samples)
    assert (spec["temperature"], spec["top_p"], spec["max_new_tokens"]) == (0.6, 0.95, 32768)
    assert "\\boxed{ANSWER}" in spec["prompt_template"] and "{problem}" in spec["prompt_template"]


def _sharegpt_row(a: int, b: int, steps: int) -> dict:
    thought = " ".join(f"Step {i}: {a} + {b} = {a + b}." for i in range(steps))
    answer = f"\\boxed{{{a + b}}}"
    return {"system": "Your role as an assistant involves thoroughly exploring questions.",
            "conversations": [{"from": "user", "value": f"What is {a} + {b}?"},
                              {"from": "assistant", "value": f"<|begin_of_thought|>\n\n{thought}\n\n"
                                                             "<|end_of_thought|>\n\n<|begin_of_solution|>\n\n"
                                                             f"{answer}\n\n<|end_of_solution|>"}]}


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper-kit")
    save_teacher_and_student(root)
    rows = [_sharegpt_row(a, b, 1) for a in range(2, 5) for b in range(1, 5)]  # 12 short records
    rows.insert(3, _sharegpt_row(9, 9, 40))  # one far longer than data.max_tokens: dropped, counted
    (root / "stratos.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    problems = [{"problem": f"What is {a} + {a}?", "answer": str(2 * a)} for a in range(1, 4)]
    (root / "math500.jsonl").write_text("".join(json.dumps(p) + "\n" for p in problems))
    return root


def test_the_recipe_runs_end_to_end_at_tiny_scale(kit, tmp_path):
    out = tmp_path / "sweep"
    argv = ["sweep", str(RECIPE / "sweep.yaml"), f"train_config={RECIPE / 'train-lsp0.5.yaml'}",
            f"train.student={kit}/student", f"train.teacher={kit}/teacher", f"train.data.path={kit}/stratos.jsonl",
            "train.data.max_tokens=400", "train.data.val_size=3", "train.data.max_records=6", "train.device=cpu",
            "train.progress=false", f"eval.data={kit}/math500.jsonl", "eval.split=train", "eval.max_new_tokens=6",
            "--out", str(out)]
    assert main(argv) == 0
    for point in ("lsp1", "lsp0.5"):
        summary = json.loads((out / point / "train" / "run_summary.json").read_text())
        assert summary["longer_than_max_tokens"] == 1 and summary["validation_records"] == 3
        assert summary["examples"] == 6 and summary["best_checkpoint_by"] == "val_ce"
        # 6 records, batch 1 x 4 accumulated: one step an epoch, two epochs, validated after each step
        assert summary["steps"] == 2
        results = json.loads((out / point / "eval" / "results.json").read_text())
        assert results["checkpoint"] == "best" and results["samples_per_prompt"] == 4
        assert results["generation"]["temperature"] == 0.6 and "avg@4" in results
        prompts = [json.loads(line)["prompt"] for line in (out / point / "eval" / "samples.jsonl").open()]
        assert all(p.startswith("Solve the following math problem") for p in prompts)
    table = (out / "tradeoff.md").read_text()
    assert "p_vs_ref" in table and "lsp0.5" in table
