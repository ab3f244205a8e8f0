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


def test_implied_defaults_never_override_a_key_the_user_named(capsys):
    got = yaml.safe_load(_printed(["data", "stats", "--truncation", "window"], capsys))["encode"]
    assert (got["truncation"], got["lsp"]) == ("window", 0.5)  # a window over half the tokens, as before
    got = yaml.safe_load(_printed(["data", "stats", "encode.lsp=0.3", "--window", "middle"], capsys))["encode"]
    assert (got["truncation"], got["lsp"], got["window"]) == ("window", 0.3, "middle")
    got = yaml.safe_load(_printed(["data", "stats", "--lsp", "0.25"], capsys))["encode"]
    assert (got["truncation"], got["lsp"]) == ("lsp", 0.25)
    got = yaml.safe_load(_printed(["demo", "--quick", "eval.limit=50", "train_records=100"], capsys))
    assert (got["eval"]["limit"], got["train_records"], got["eval"]["max_new_tokens"]) == (50, 100, 96)


def test_old_keys_of_the_stages_are_read_with_a_warning(capsys, caplog):
    with caplog.at_level(logging.WARNING, logger="cotdistill.config"):
        got = yaml.safe_load(_printed(["select-experiment", "student=my/student", "eval_limit=30"], capsys))
        demo = yaml.safe_load(_printed(["demo", "max_new_tokens=64"], capsys))
    assert got["train"]["student"] == "my/student" and got["eval"]["limit"] == 30
    assert demo["eval"]["max_new_tokens"] == 64
    assert sum("deprecated" in r.getMessage() for r in caplog.records) == 3


def test_training_keys_at_the_top_of_a_sweep_say_where_they_belong(capsys):
    assert main(["sweep", "student=x", "data.path=y", "--print-config"]) == 2
    assert "put them under train:, or name the file as train_config" in capsys.readouterr().err


def test_the_python_beta_keyword_still_works_with_a_warning():
    from cotdistill.provenance.classify import classify, classify_pair

    with pytest.warns(DeprecationWarning, match="margin"):
        assert classify(0.5, 0.5, 0.57, beta=0.1) == "boosted"
    with pytest.warns(DeprecationWarning, match="margin"):
        assert classify_pair(0.6, 0.45, beta=0.2) == "common"


def test_a_benchmark_is_read_from_its_test_split_where_it_has_one(tmp_path):
    import datasets

    from cotdistill.evaluation.benchmarks import default_split, load_benchmark

    rows = {"question": ["q1", "q2"], "answer": ["#### 1", "#### 2"]}
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({k: v[:1] for k, v in rows.items()}),
                          "test": datasets.Dataset.from_dict(rows)}).save_to_disk(tmp_path / "dd")
    assert default_split(str(tmp_path / "dd")) == "test" and len(load_benchmark("gsm8k", str(tmp_path / "dd"))) == 2
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "data.jsonl").write_text('{"question": "q", "answer": "#### 3"}\n')
    assert default_split(str(tmp_path / "files")) == "train"  # a folder of data files has only that split
    assert load_benchmark("gsm8k", str(tmp_path / "files"))[0].gold == "3"
    assert default_split("HuggingFaceH4/MATH-500") == "test" and default_split([{"a": 1}]) == "train"


def _flag_actions(words: list[str]) -> dict:
    """The command's parsed flags by option name (its parser adds them when it parses)."""
    from cotdistill.cli import build_parser

    parser = build_parser()
    parser.parse_known_args([*words, "--print-config"])
    cmd = parser
    for word in words:
        sub = next(a for a in cmd._actions if a.dest.endswith("command"))
        cmd = sub.choices[word]
    return {option: action for action in cmd._actions for option in action.option_strings}


@pytest.mark.parametrize("words, flag, key", [
    (["data", "stats"], "--truncation", "encode.truncation"), (["data", "stats"], "--window", "encode.window"),
    (["data", "stats"], "--format", "data.format"), (["data", "stats"], "--on-error", "data.on_error"),
    (["teacher", "cache"], "--device", "train.device"), (["teacher", "cache"], "--dtype", "dtype"),
    (["world", "build"], "--only", "only"), (["trace"], "--context", "context"), (["trace"], "--unit", "unit"),
    (["select"], "--method", "method"),
])
def test_a_flags_choices_are_its_keys_literal(words, flag, key):
    from cotdistill.config import literal_choices

    command = next(c for c in COMMANDS if list(c.words) == words)
    choices = literal_choices(command.config(), key)
    assert choices and _flag_actions(words)[flag].choices == choices


def test_a_flag_without_help_shows_its_fields_and_print_config_comments_each_key(capsys):
    assert _flag_actions(["train"])  # builds
    with pytest.raises(SystemExit):
        main(["data", "stats", "--help"])
    usage = " ".join(capsys.readouterr().out.split())
    assert "--on-error ON_ERROR a record that cannot be read: stop, or skip it; one of raise, skip (= data.on_error)" \
        in usage
    printed = _printed(["train"], capsys).splitlines()
    assert printed[printed.index("  lr: 0.0005") - 1] == "  # the peak learning rate; > 0"
    assert "  # the truncation protocol; one of none, lsp, window, cut_after_think, lsp_keep_answer, lsp_keep_tail" \
        in printed


def test_the_top_level_help_imports_no_config(capsys):
    import subprocess
    import sys

    code = ("import sys\nfrom cotdistill.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules and 'cotdistill.training.config' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
