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
    (root / "int_key.yaml").write_text("1: x\n")
    (root / "null_key.yaml").write_text("null: x\n")
    (root / "twice.yaml").write_text("seed: 1\nseed: 2\n")
    nine = ", ".join(["*b"] * 9)  # 157 bytes that expand to 729 values (each level of aliases: 9x more)
    (root / "laughs.yaml").write_text(f"data:\n  fields:\n    prompt: &a [x, x, x, x, x, x, x, x, x]\n"
                                      f"    cot: &b [{', '.join(['*a'] * 9)}]\n    answer: [{nine}]\n")
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
        "bool not a bool": ([*train, "packing=maybe"], "packing"),
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
        # issue 26: config values that got through (a traceback, or a run with nan / a cut text)
        "override through a value": ([*train, "optim.lr=1", "optim.lr.x=2"], "optim.lr.x: optim.lr is a number"),
        "yaml int key": ([*train, str(root / "int_key.yaml")], "config keys must be strings, found 1"),
        "yaml null key": ([*train, str(root / "null_key.yaml")], "config keys must be strings, found None"),
        "yaml key given twice": ([*train, str(root / "twice.yaml")], "line 2, column 1: key 'seed' is given twice"),
        "yaml aliases": ([*train, str(root / "laughs.yaml")], "laughs.yaml: line 4, column 14: an alias (*a)"),
        "fields value not a string": ([*train, "data.fields={prompt: [1, 2]}"], "data.fields.prompt must be a string"),
        "lr nan": ([*train, "optim.lr=.nan"], "optim.lr must be a finite number"),
        "epochs nan": ([*train, "optim.epochs=.nan"], "optim.epochs must be a finite number"),
        "epochs inf": ([*train, "optim.epochs=.inf"], "optim.epochs must be a finite number"),
        "max_grad_norm nan": ([*train, "optim.max_grad_norm=.nan"], "optim.max_grad_norm must be a finite number"),
        "seed past 64 bits": ([*train, f"seed={10**29}"], "seed must be a whole number in [-2**63, 2**63)"),
        "negative pad_to_multiple_of": ([*train, "pad_to_multiple_of=-3"], "pad_to_multiple_of must be >= 0"),
        "threads past the cores": ([*train, "threads=100000"], "threads must be >= 1 and at most"),
        # eval
        "eval missing model": (["eval", f"{root}/nope", "--out", str(root / "out-eval")], "nope"),
        "eval unknown bench": (["eval", s, "--bench", "nosuch"], "nosuch"),
        "eval bench without data": (["eval", s, "--bench", "gsm8k"], "--data"),
        "eval empty file": (["eval", s, "--bench", "gsm8k", "--data", str(root / "gsm8k_empty.jsonl")],
                            "gsm8k_empty.jsonl"),
        "eval null answer": (["eval", s, "--bench", "gsm8k", "--data", str(root / "gsm8k_null.jsonl")],
                             "gsm8k_null.jsonl, line 2: expected a reference answer; found None"),
        "eval zero samples": (["eval", s, "--samples", "0"], "--samples"),
        "eval temperature nan": (["eval", s, "--temperature", "nan"], "eval.temperature must be a finite number"),
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
        "select keep 1.5": (["select", good, "--teacher", s, "--student", s, "--keep", "1.5",
                             "--out", str(root / "sel.jsonl")], "keep must be > 0 and, above 1, a whole count"),
        "select keep nan": (["select", good, "--teacher", s, "--student", s, "--keep", "nan",
                             "--out", str(root / "sel.jsonl")], "keep must be a finite number"),
        "select keep past the records": (["select", good, "--teacher", s, "--student", s, "--keep", "1e9",
                                          "--out", str(root / "sel.jsonl")],
                                         "--keep (keep): keep asks for 1000000000 records but only 6 exist"),
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
        "cache kl target nan": (["teacher", "cache", good, "--teacher", s, "--kl-target", "nan", "--out",
                                 str(root / "cache")], "kl_target must be a finite number"),
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


# --- issue 26, case 14: input files that raised a traceback (exit 1) --------------------------------------------------
@pytest.fixture(scope="module")
def hostile(files):
    """Input files of every shape a user can hand over, beside the ``files`` fixture's models."""
    import json

    root = files / "hostile"
    root.mkdir()
    (root / "empty_folder").mkdir()
    (root / "deep.jsonl").write_text('{"a": ' + "[" * 200_000 + "]" * 200_000 + "}\n")
    (root / "fake.parquet").write_text('{"prompt": "p", "cot": "c", "answer": "a"}\n')
    (root / "gsm8k_list.jsonl").write_text(json.dumps({"question": "q", "answer": ["r #### 4"]}) + "\n")
    (root / "mixed").mkdir()
    (root / "mixed" / "a.jsonl").write_text((files / "good.jsonl").read_text())
    (root / "mixed" / "b.csv").write_text("prompt,cot,answer\np,c,a\n")
    (root / "int_prompt.jsonl").write_text(json.dumps({"prompt": 5, "answer": "2"}) + "\n")
    (root / "list_prompt.jsonl").write_text(json.dumps({"prompt": ["1+1?"], "answer": "2"}) + "\n")
    (root / "bench_list.jsonl").write_text(json.dumps({"prompt": "p", "response": "r. s.", "bench": ["a"]}) + "\n")
    (root / "correct_text.jsonl").write_text(json.dumps({"prompt": "p", "response": "r.", "correct": "false"}) + "\n")
    (root / "trace").mkdir()
    (root / "trace" / "summary.json").write_text(json.dumps({"overall": {"teacher": 0.2, "boosted": 0.1}}))
    (root / "no_accuracy.json").write_text(json.dumps({"n": 3}))
    (root / "text_accuracy.json").write_text(json.dumps({"accuracy": "0.5"}))
    (root / "broken.json").write_text('{"accuracy": 0.5')
    bad_config = json.loads((files / "student" / "config.json").read_text()) | {"num_hidden_layers": "two"}
    (root / "bad_config").mkdir()
    for item in (files / "student").iterdir():
        (root / "bad_config" / item.name).write_bytes(item.read_bytes())
    (root / "bad_config" / "config.json").write_text(json.dumps(bad_config))
    (root / "unclosed.jinja").write_text("{% for m in messages %}{{ m.content }}{% endfor")
    return root


def _input_cases(root, h):
    s, good = str(root / "student"), str(root / "good.jsonl")
    train = ["train", f"student={s}", f"teacher={s}", f"data.path={good}", f"output_dir={root}/out-train26",
             "progress=false"]
    trace = ["trace", "--teacher", s, "--student", s, "--distilled", s, "--out", str(root / "out-trace26")]
    empty = h / "empty_folder"
    return {
        "json nested 200,000 deep": ([*train, f"data.path={h}/deep.jsonl"],
                                     "deep.jsonl, line 1: expected one JSON object per line; found JSON nested"),
        "a fake parquet": ([*train, f"data.path={h}/fake.parquet"],
                           "fake.parquet: expected a Parquet file; found ArrowInvalid"),
        "a gsm8k answer that is a list": ([*train, f"data.path={h}/gsm8k_list.jsonl"],
                                          "gsm8k_list.jsonl, line 1: expected a string answer; found list"),
        "a data folder of two kinds": ([*train, f"data.path={h}/mixed"], "b.csv skipped (files of another kind)"),
        "empty folder as student": ([*train, f"student={empty}"], f"student {empty}: no config.json / tokenizer"),
        "empty folder as teacher": ([*train, f"teacher={empty}"], f"teacher {empty}: no config.json / tokenizer"),
        "empty folder as tokenizer": ([*train, f"tokenizer={empty}"], f"tokenizer {empty}: no config.json / token"),
        "empty folder as eval model": (["eval", str(empty), "--out", str(root / "out-eval26")],
                                       f"model {empty}: no config.json / tokenizer files found"),
        "config.json field of the wrong type": ([*train, f"student={h}/bad_config"],
                                                f"student {h}/bad_config: config.json: Validation error for field "
                                                "'num_hidden_layers': TypeError"),
        "a chat template that is not Jinja": ([*train, f"chat_template={h}/unclosed.jinja"],
                                              f"chat template {h}/unclosed.jinja: TemplateSyntaxError"),
        "eval prompt an int": (["eval", s, "--bench", "jsonl", "--data", f"{h}/int_prompt.jsonl"],
                               "int_prompt.jsonl, line 1: expected a string prompt; found int"),
        "eval prompt a list": (["eval", s, "--bench", "jsonl", "--data", f"{h}/list_prompt.jsonl"],
                               "list_prompt.jsonl, line 1: expected a string prompt; found list"),
        "trace bench a list": ([*trace, "--samples", f"{h}/bench_list.jsonl"],
                               "bench_list.jsonl, line 1: expected bench as a string; found list"),
        "trace correct a string": ([*trace, "--samples", f"{h}/correct_text.jsonl"],
                                   "correct_text.jsonl, line 1: expected correct as true/false (or 1/0); found "
                                   "'false'"),
        "correlate without accuracy": (["correlate", f"{h}/trace:{h}/no_accuracy.json"],
                                       "no_accuracy.json: expected an accuracy"),
        "correlate text accuracy": (["correlate", f"{h}/trace:{h}/text_accuracy.json"],
                                    "text_accuracy.json: expected accuracy as a number; found accuracy '0.5'"),
        "correlate broken json": (["correlate", f"{h}/trace:{h}/broken.json"],
                                  "broken.json: expected a JSON object; found invalid JSON"),
        "correlate one trace twice": (["correlate", f"{h}/trace:{h}/text_accuracy.json",
                                       f"{h}/trace/:{h}/no_accuracy.json"], "trace/: given twice"),
    }


@pytest.mark.parametrize("name", list(_input_cases(Path("/r"), Path("/h"))))
def test_an_input_file_of_the_wrong_shape_is_one_line_before_any_model_loads(name, files, hostile, capsys,
                                                                             monkeypatch):
    argv, expected = _input_cases(files, hostile)[name]

    def refuse(*args, **kwargs):
        raise WeightsLoaded(f"weights loaded for {args[1:2]} before the error was found")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", classmethod(refuse))
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], err


def test_ctrl_c_is_one_line_and_exit_code_130(monkeypatch, capsys):
    def interrupted(config):
        raise KeyboardInterrupt

    monkeypatch.setattr("cotdistill.stages.evaluate.run_eval", interrupted)
    try:
        code = main(["eval", "world:student"])
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C left main as a KeyboardInterrupt traceback")
    assert code == 130
    err = capsys.readouterr().err
    assert err.splitlines() == ["interrupted"], err


def test_ctrl_c_with_debug_keeps_the_traceback(monkeypatch):
    def interrupted(config):
        raise KeyboardInterrupt

    monkeypatch.setattr("cotdistill.stages.evaluate.run_eval", interrupted)
    with pytest.raises(KeyboardInterrupt):
        main(["--debug", "eval", "world:student"])


def test_a_reader_that_leaves_the_pipe_early_ends_the_command_quietly_with_141():
    """``cotdistill … | head``: the writer meets a closed pipe; no traceback, not even the interpreter's last flush."""
    import subprocess
    import sys

    code = "import sys\nfrom cotdistill.cli import main\nsys.exit(main(['eval', 'world:student', '--print-config']))"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    child.stdout.close()  # the reader is gone before the first line is written
    err = child.stderr.read().decode()
    assert child.wait() == 141, err
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_a_truncated_teacher_cache_shard_is_one_line(files, tmp_path, capsys):
    s, good = str(files / "student"), str(files / "good.jsonl")
    cache = tmp_path / "cache"
    assert main(["teacher", "cache", good, "--teacher", s, "--out", str(cache), "--top-k", "4"]) == 0
    from cotdistill.teacher.cache import CacheMismatchError, TeacherCache

    opened = TeacherCache.open(cache)
    shard = sorted(cache.glob("shard-*/logp.npy"))[0]
    shard.write_bytes(shard.read_bytes()[:-7])  # cut short, as by a full disk or a copy that stopped
    with pytest.raises(CacheMismatchError, match=f"{shard.parent.name} cannot be read"):  # cut after it was opened
        opened.rows([0])
    capsys.readouterr()
    code = main(["train", f"student={s}", "teacher=null", f"teacher_cache={cache}", f"data.path={good}",
                 f"output_dir={tmp_path}/run", "progress=false", "optim.max_steps=1"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and line.startswith("error")]
    assert code == 2 and "Traceback" not in err, err
    assert len(lines) == 1 and str(cache) in lines[0], err
