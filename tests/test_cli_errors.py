"""Every user error, on every command: one line ``error: …`` on stderr, exit code 2, no traceback — and found
before any model's weights are loaded (a mistake should cost seconds, not a model load and a scoring pass)."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM

from cotdistill.cli import main
from cotdistill.data.formats import write_jsonl
from cotdistill.world import world_records
from tests.conftest import char_tokenizer, tiny_qwen


class WeightsLoaded(BaseException):
    """Raised instead of loading weights: a BaseException, so no ``except Exception`` in the code can swallow it."""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-inputs")
    for name, tok in (("student", char_tokenizer()), ("other_vocab", char_tokenizer(think_special=False)),
                      ("no_template", char_tokenizer(template=None))):
        tiny_qwen(len(tok), hidden=16, layers=1).save_pretrained(root / name)
        tok.save_pretrained(root / name)
    write_jsonl(world_records("train", "teacher", 6, min_steps=2, max_steps=2), root / "good.jsonl", "messages")
    (root / "empty.jsonl").write_text("")
    (root / "malformed.jsonl").write_text('{"prompt": "p", "response": "r"}\n{"prompt": \n')
    (root / "samples.jsonl").write_text('{"prompt": "p", "response": "r. s."}\n')
    (root / "no_response.jsonl").write_text('{"prompt": "p", "answer": "1"}\n')
    (root / "surrogate.jsonl").write_text('{"prompt": "p \\ud800", "cot": "c", "answer": "a"}\n')
    (root / "broken.yaml").write_text("optim:\n  lr: [1e-3\n")
    (root / "gsm8k_empty.jsonl").write_text("")
    (root / "gsm8k_null.jsonl").write_text('{"question": "q", "answer": "#### 4"}\n{"question": "q", "answer": null}\n')
    return root


def _cases(root):
    s, good = str(root / "student"), str(root / "good.jsonl")
    train = ["train", f"student={s}", f"teacher={s}", f"data.path={good}", f"output_dir={root}/out-train",
             "progress=false"]
    trace = ["trace", "--teacher", s, "--student", s, "--distilled", s, "--out", str(root / "out-trace")]
    return {
        # train: config values, YAML, paths, models and data
        "override not an int": ([*train, "optim.batch_size=2.5"], "optim.batch_size"),
        "seed not an int": ([*train, "seed=abc"], "seed"),
        "bool not a bool": ([*train, "bf16=maybe"], "bf16"),
        "negative weight decay": ([*train, "optim.weight_decay=-1"], "weight_decay"),
        "min_lr_ratio above 1": ([*train, "optim.min_lr_ratio=5"], "min_lr_ratio"),
        "negative warmup": ([*train, "optim.warmup_steps=-1"], "warmup_steps"),
        "lsp without truncation": ([*train, "encode.lsp=0.5"], "truncation"),
        "yaml syntax error": (["train", str(root / "broken.yaml")], "broken.yaml"),
        "missing config file": (["train", str(root / "nope.yaml")], "nope.yaml"),
        "missing student path": ([*train, f"student={root}/nope"], "nope"),
        "teacher of another vocabulary": ([*train, f"teacher={root}/other_vocab"], "vocabular"),
        "tokenizer without chat template": ([*train, f"student={root}/no_template",
                                             f"teacher={root}/no_template"], "chat template"),
        "kd without teacher": ([*train, "teacher=null"], "teacher"),
        "missing data": ([*train, f"data.path={root}/nope.jsonl"], "nope.jsonl"),
        "empty data": ([*train, f"data.path={root}/empty.jsonl"], "empty.jsonl"),
        "lone surrogate in data": ([*train, f"data.path={root}/surrogate.jsonl"], "surrogate.jsonl"),
        # eval
        "eval missing model": (["eval", f"{root}/nope", "--out", str(root / "out-eval")], "nope"),
        "eval unknown bench": (["eval", s, "--bench", "nosuch"], "nosuch"),
        "eval bench without data": (["eval", s, "--bench", "gsm8k"], "--data"),
        "eval empty file": (["eval", s, "--bench", "gsm8k", "--data", str(root / "gsm8k_empty.jsonl")],
                            "gsm8k_empty.jsonl"),
        "eval null answer": (["eval", s, "--bench", "gsm8k", "--data", str(root / "gsm8k_null.jsonl")],
                             "gsm8k_null.jsonl, line 2: expected a reference answer; found None"),
        "eval zero samples": (["eval", s, "--samples", "0"], "--samples"),
        # trace
        "trace missing samples": ([*trace, "--samples", str(root / "nope.jsonl")], "nope.jsonl"),
        "trace malformed line": ([*trace, "--samples", str(root / "malformed.jsonl")], "line 2"),
        "trace missing field": ([*trace, "--samples", str(root / "no_response.jsonl")], "response"),
        "trace missing model": (["trace", "--samples", str(root / "samples.jsonl"), "--teacher", f"{root}/nope",
                                 "--student", s, "--distilled", s], "nope"),
        "trace without a teacher": (["trace", "--samples", str(root / "samples.jsonl"), "--student", s,
                                     "--distilled", s], "teacher (--teacher)"),
        "trace alpha above beta": ([*trace, "--samples", str(root / "samples.jsonl"), "--alpha", "0.3"], "alpha"),
        # select
        "select unknown method": (["select", good, "--teacher", s, "--student", s, "--method", "grap",
                                   "--per-question", "--out", str(root / "sel.jsonl")], "grap"),
        "select missing data": (["select", f"{root}/nope.jsonl", "--teacher", s, "--student", s, "--per-question",
                                 "--out", str(root / "sel.jsonl")], "nope.jsonl"),
        "select without models": (["select", good, "--per-question", "--out", str(root / "sel.jsonl")], "--teacher"),
        "select keep zero": (["select", good, "--teacher", s, "--student", s, "--keep", "0",
                              "--out", str(root / "sel.jsonl")], "keep"),
        # data stats
        "stats lsp above 1": (["data", "stats", good, "--lsp", "1.5"], "lsp"),
        "stats lsp zero": (["data", "stats", good, "--lsp", "0"], "lsp"),
        "stats missing tokenizer": (["data", "stats", good, "--tokenizer", f"{root}/nope"], "nope"),
        # teacher cache
        "cache missing data": (["teacher", "cache", f"{root}/nope.jsonl", "--teacher", s, "--out",
                                str(root / "cache")], "nope.jsonl"),
        "cache missing teacher": (["teacher", "cache", good, "--teacher", f"{root}/nope", "--out",
                                   str(root / "cache")], "nope"),
        "cache over its input": (["teacher", "cache", good, "--teacher", s, "--out", good], "--out"),
        # sweep, select-experiment, correlate, world export
        "sweep lsp not a number": (["sweep", f"train.student={s}", "--lsp", "0.5,abc"], "abc"),
        "sweep unknown window": (["sweep", f"train.student={s}", "--window", "up"], "up"),
        "sweep teacher of another vocabulary": (["sweep", f"train.student={s}", f"train.teacher={root}/other_vocab",
                                                 f"train.data.path={good}", "--out", str(root / "out-sweep")],
                                                "vocabular"),
        "sweep training keys at the top": (["sweep", f"student={s}"], "unknown config key: student"),
        "sweep bench without data": (["sweep", f"train.student={s}", f"train.teacher={s}", f"train.data.path={good}",
                                      "eval.bench=gsm8k", "--out", str(root / "out-sweep2")], "eval.data"),
        "select-experiment unknown method": (["select-experiment", "methods=[grap]"], "grap"),
        "select-experiment no seeds": (["select-experiment", "seeds=[]"], "seeds"),
        "correlate pair without colon": (["correlate", "nodir"], "nodir"),
        "correlate missing dir": (["correlate", f"{root}/nope:{root}/nope.json"], "nope"),
        "export zero records": (["world", "export", "--n", "0", "--out", str(root / "x.jsonl")], "--n"),
    }


CASE_NAMES = list(_cases(Path("/r")))


@pytest.mark.parametrize("name", CASE_NAMES)
def test_a_user_error_is_one_line_with_exit_code_2_before_any_model_loads(name, files, capsys, monkeypatch):
    argv, expected = _cases(files)[name]

    def refuse(*args, **kwargs):
        raise WeightsLoaded(f"weights loaded for {args[1:2]} before the error was found")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", classmethod(refuse))
    monkeypatch.chdir(files)
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's own refusals exit 2 with usage + one error line
        code = stop.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in err
    last = lines[-1]
    assert last.startswith(("error:", "cotdistill")) and expected in last, err
    if not last.startswith("cotdistill"):  # not argparse (which prints its usage first): the error alone
        assert len(lines) == 1, err


def test_debug_shows_the_traceback(files, capsys):
    with pytest.raises(Exception, match="nope"):
        main(["--debug", "eval", f"{files}/nope"])


def test_a_bug_is_not_dressed_as_a_user_error(monkeypatch):
    """Only user errors become exit 2; an unexpected exception keeps its traceback (exit 1 from Python)."""
    def broken(config):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("cotdistill.stages.evaluate.run_eval", broken)
    with pytest.raises(ZeroDivisionError):
        main(["eval", "world:student"])


def test_the_error_table_has_one_case_per_command():
    commands = {argv[0] if argv[0] not in ("data", "world", "teacher") else " ".join(argv[:2])
                for argv, _ in _cases(Path("/r")).values()}
    assert commands == {"train", "eval", "trace", "select", "data stats", "teacher cache", "sweep",
                        "select-experiment", "correlate", "world export"}
