"""One config shape for every command: YAML + ``key=value`` + flags, and ``--print-config`` round-trips."""

from __future__ import annotations

import logging

import pytest
import yaml

from cotdistill.cli import COMMANDS, main

COMMAND_WORDS = [list(c.words) for c in COMMANDS]


def _printed(argv, capsys) -> str:
    assert main([*argv, "--print-config"]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("words", COMMAND_WORDS, ids=" ".join)
def test_every_printed_config_reads_back_unchanged(words, tmp_path, capsys):
    printed = _printed(words, capsys)
    assert yaml.safe_load(printed)  # a mapping with every key
    path = tmp_path / "config.yaml"
    path.write_text(printed)
    assert _printed([*words, str(path)], capsys) == printed


def test_flags_overrides_and_yaml_are_one_config(tmp_path, capsys):
    (tmp_path / "e.yaml").write_text("eval: {bench: gsm8k, limit: 5}\nout: runs/x\n")
    got = yaml.safe_load(_printed(["eval", "some/model", str(tmp_path / "e.yaml"), "eval.limit=7",
                                   "--data", "rows.jsonl"], capsys))
    assert got["model"] == "some/model" and got["out"] == "runs/x"
    assert (got["eval"]["bench"], got["eval"]["limit"], got["eval"]["data"]) == ("gsm8k", 7, "rows.jsonl")
    got = yaml.safe_load(_printed(["sweep", "--lsp", "0.5,1", "eval.bench=gsm8k", "--eval-limit", "3",
                                   "train.optim.lr=1e-3"], capsys))  # words and flags in any order
    assert got["lsps"] == [0.5, 1.0] and got["eval"]["limit"] == 3 and got["train"]["optim"]["lr"] == 1e-3
    assert got["eval"]["bench"] == "gsm8k"


def test_a_training_yaml_is_the_base_of_a_stages_train_section(tmp_path, capsys):
    run = tmp_path / "run.yaml"
    run.write_text("student: my/student\nteacher_cache: caches/c\nencode: {truncation: lsp, lsp: 0.5}\n"
                   "loss: {temperature: 2.0}\n")
    for words in (["sweep"], ["teacher", "cache"]):
        got = yaml.safe_load(_printed([*words, f"train_config={run}", "train.optim.lr=1e-4"], capsys))
        train = got["train"]
        assert train["student"] == "my/student" and train["encode"]["lsp"] == 0.5
        assert train["loss"]["temperature"] == 2.0 and train["optim"]["lr"] == 1e-4
        assert train["optim"]["batch_size"] == 8  # the rest: the training defaults


def test_a_stages_own_defaults_for_its_train_section_are_printed_and_kept(capsys):
    """select-experiment fine-tunes with SFT for two epochs: its defaults, not TrainConfig's, and a YAML that
    changes one key keeps the others."""
    got = yaml.safe_load(_printed(["select-experiment", "train.optim.lr=1e-4"], capsys))
    assert got["train"]["loss"]["distill_ratio"] == 0.0 and got["train"]["teacher"] is None
    assert got["train"]["optim"]["epochs"] == 2 and got["train"]["optim"]["lr"] == 1e-4


def test_the_benchmark_decides_max_new_tokens_unless_given():
    from cotdistill.evaluation.spec import EvalSpec
    from cotdistill.world import WORLD_MAX_NEW_TOKENS

    assert EvalSpec().new_tokens == WORLD_MAX_NEW_TOKENS
    assert EvalSpec(bench="math500").new_tokens == 8192 and EvalSpec(bench="aime24").new_tokens == 16384
    assert EvalSpec(bench="gsm8k", max_new_tokens=300).generation().max_new_tokens == 300


def test_beta_is_a_deprecated_name_of_the_provenance_margin(capsys, caplog):
    with caplog.at_level(logging.WARNING, logger="cotdistill.config"):
        got = yaml.safe_load(_printed(["trace", "--beta", "0.2"], capsys))
    assert got["margin"] == 0.2 and "beta" not in got
    assert any("beta is deprecated" in r.getMessage() for r in caplog.records)
    assert yaml.safe_load(_printed(["select-experiment", "beta=0.15"], capsys))["margin"] == 0.15
    assert main(["trace", "beta=0.2", "margin=0.3", "--print-config"]) == 2
    assert "give only margin" in capsys.readouterr().err


def test_a_word_that_is_neither_yaml_nor_key_value_is_refused(capsys):
    assert main(["train", "oops"]) == 2
    assert "unexpected word 'oops'" in capsys.readouterr().err
    assert main(["eval", "model-a", "model-b"]) == 2
    assert "one model expected" in capsys.readouterr().err
