"""The output guard (issue 26, cases 1-4): no command writes over, into or around one of its own inputs — the same
file or folder however the path reaches it (hard link, symlink, ``..``) — and one writer per output folder; both
refused before any model loads, with one line naming the key."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import cotdistill.outputs as outputs
from cotdistill.cli import main
from cotdistill.outputs import OutputInUseError, output_lock
from tests.conftest import char_tokenizer, tiny_qwen

OUT = "--out (out)"


# --- the guard ------------------------------------------------------------------------------------------------------
def test_an_output_that_is_an_input_is_refused_however_the_path_reaches_it(tmp_path):
    data = tmp_path / "d" / "in.jsonl"
    data.parent.mkdir()
    data.write_text("x\n")
    os.link(data, tmp_path / "hard.jsonl")
    (tmp_path / "soft.jsonl").symlink_to(data)
    for alias in (tmp_path / "hard.jsonl", tmp_path / "soft.jsonl", tmp_path / "d" / ".." / "d" / "in.jsonl"):
        with pytest.raises(outputs.OutputError, match=rf"^--out \(out\): {alias} is the input {data} "):
            outputs.check_output(alias, OUT, [str(data)], is_file=True)
    with pytest.raises(outputs.OutputError, match="is the input"):  # a folder given as both
        outputs.check_output(tmp_path / "d", "output_dir", [str(tmp_path / "d")])


def test_an_output_folder_holding_an_input_and_an_input_folder_holding_the_output_are_refused(tmp_path):
    model = tmp_path / "runs" / "x" / "final"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    (tmp_path / "alias").symlink_to(tmp_path / "runs", target_is_directory=True)
    with pytest.raises(outputs.OutputError, match=rf"^output_dir: {tmp_path}/alias/x holds the input {model}"):
        outputs.check_output(tmp_path / "alias" / "x", "output_dir", [str(model)])
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.jsonl").write_text("x\n")
    with pytest.raises(outputs.OutputError, match=rf"^--out \(out\): {data}/a.jsonl is inside the input {data}"):
        outputs.check_output(data / "a.jsonl", OUT, [str(data)], is_file=True)
    with pytest.raises(outputs.OutputError, match="is inside the input"):  # folders not made yet: still inside
        outputs.check_output(data / "new" / "eval", OUT, [str(data)])
    out = tmp_path / "out"
    out.mkdir()
    os.link(data / "a.jsonl", out / "samples.jsonl")  # eval would write samples.jsonl through the link
    with pytest.raises(outputs.OutputError, match=rf"holds {out}/samples.jsonl, a hard link of the input"):
        outputs.check_output(out, OUT, [str(data / "a.jsonl")])


def test_names_that_are_not_local_paths_and_inputs_beside_the_output_pass(tmp_path):
    (tmp_path / "in.jsonl").write_text("x\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.json").write_text("{}")
    names = ["world:teacher", "Qwen/Qwen2.5-0.5B", None, "", "Solve {problem}", "x" * 5000, str(tmp_path / "in.jsonl")]
    outputs.check_output(tmp_path / "out", OUT, names)
    outputs.check_output(tmp_path / "sel.jsonl", OUT, names, is_file=True)


def test_an_output_of_the_wrong_kind_is_refused(tmp_path):
    (tmp_path / "file").write_text("keep")
    with pytest.raises(outputs.OutputError, match=rf"^--out \(out\): {tmp_path}/file is a file; expected a folder"):
        outputs.check_output(tmp_path / "file", OUT, [])
    with pytest.raises(outputs.OutputError, match=rf"^--out \(out\): {tmp_path} is a folder; expected a file"):
        outputs.check_output(tmp_path, OUT, [], is_file=True)


def test_a_claim_holds_through_symlinks_and_removes_only_a_folder_it_made_that_stayed_empty(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    busy = pytest.raises(OutputInUseError, match=r"being written by another run \(pid \d+\)")
    with outputs.claim_output(tmp_path / "link", OUT, []), busy, outputs.claim_output(real, OUT, []):
        pass
    with outputs.claim_output(real, OUT, []):  # released
        pass
    assert real.is_dir()  # not made by the claim: kept
    made = tmp_path / "new" / "out"
    with outputs.claim_output(made, OUT, []):
        assert made.is_dir()
    assert not made.exists() and (tmp_path / "new").is_dir()  # a failed run leaves no empty folder behind
    with outputs.claim_output(made, OUT, []):
        (made / "results.json").write_text("{}")
    assert (made / "results.json").exists()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom cotdistill.outputs import output_lock\n"
                               f"with output_lock({str(tmp_path)!r}):\n    print('held', flush=True)\n"
                               "    time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputInUseError, match=rf"\(pid {holder.pid}\)"), outputs.claim_output(tmp_path, OUT, []):
            pass
    finally:
        holder.kill()
        holder.wait()
    with outputs.claim_output(tmp_path, OUT, []):
        pass


# --- the commands: issue 26's reproductions -------------------------------------------------------------------------
ROWS = [{"prompt": "What is 2 + 3?", "cot": "2 + 3 = 5", "answer": "5"},
        {"prompt": "What is 4 + 1?", "cot": "4 + 1 = 5", "answer": "5"}]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    tok = char_tokenizer()
    tiny_qwen(len(tok), hidden=16, layers=1).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _write_rows(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path.read_bytes()


@pytest.fixture
def nothing_loads(monkeypatch):
    """Loading a model or generating fails the test: every refusal here must come before either."""
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded or generation ran before the output was checked")

    for target in ("cotdistill.models.load_model", "cotdistill.evaluation.benchmarks.generate",
                   "cotdistill.training.setup.load_model", "cotdistill.stages.select.score_candidates"):
        monkeypatch.setattr(target, refuse)


def _one_error_line(capsys, *parts: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    for part in parts:
        assert part in err, err
    return err


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_eval_runs_and_writes_into_a_new_folder(model, tmp_path):
    """The control: the guard leaves a plain evaluation alone (and its lock file is the only addition)."""
    data = tmp_path / "mydata" / "samples.jsonl"
    _write_rows(data)
    argv = ["eval", str(model), "--bench", "jsonl", "--data", str(data), "--max-new-tokens", "3", "--device", "cpu"]
    assert main([*argv, "--out", str(tmp_path / "ev")]) == 0
    assert sorted(os.listdir(tmp_path / "ev")) == [".cotdistill.lock", "results.json", "samples.jsonl"]


def test_case1_eval_into_the_folder_of_its_data_is_refused(model, tmp_path, nothing_loads, capsys):
    data = tmp_path / "mydata" / "samples.jsonl"
    before = _write_rows(data)
    argv = ["eval", str(model), "--bench", "jsonl", "--data", str(data), "--max-new-tokens", "3", "--device", "cpu"]
    assert main([*argv, "--out", str(tmp_path / "mydata")]) == 2
    _one_error_line(capsys, f"--out (out): {tmp_path}/mydata holds the input {data}")
    assert data.read_bytes() == before and os.listdir(data.parent) == ["samples.jsonl"]


def test_case2_train_into_the_folder_holding_its_student_is_refused(tmp_path, nothing_loads, capsys):
    from cotdistill.config import save_config
    from tests.training.helpers import tiny_config

    save_config(tiny_config(tmp_path), tmp_path / "train.yaml")
    x = tmp_path / "runs" / "x"
    shutil.copytree(tmp_path / "student", x / "final")
    before = _digest(x / "final")
    assert main(["train", str(tmp_path / "train.yaml"), f"student={x}/final", f"output_dir={x}"]) == 2
    _one_error_line(capsys, f"output_dir: {x} holds the input {x}/final")
    assert _digest(x / "final") == before and os.listdir(x) == ["final"]


def test_case3_select_into_its_data_folder_or_a_hard_link_of_its_data_is_refused(tmp_path, nothing_loads, capsys):
    data = tmp_path / "cands"
    before = _write_rows(data / "a.jsonl")
    _write_rows(data / "b.jsonl")
    models = ["--teacher", "world:teacher", "--student", "world:student", "--per-question", "--device", "cpu"]
    assert main(["select", str(data), *models, "--out", str(data / "a.jsonl")]) == 2
    _one_error_line(capsys, f"--out (out): {data}/a.jsonl is inside the input {data}")
    os.link(data / "a.jsonl", tmp_path / "link.jsonl")
    assert main(["select", str(data / "a.jsonl"), *models, "--out", str(tmp_path / "link.jsonl")]) == 2
    _one_error_line(capsys, f"--out (out): {tmp_path}/link.jsonl is the input {data}/a.jsonl")
    assert (data / "a.jsonl").read_bytes() == before and sorted(os.listdir(data)) == ["a.jsonl", "b.jsonl"]
    assert sorted(os.listdir(tmp_path)) == ["cands", "link.jsonl"]  # no score cache either


def test_case4_eval_into_an_existing_file_is_refused_before_generation(model, tmp_path, nothing_loads, capsys):
    (tmp_path / "results.txt").write_text("keep")
    assert main(["eval", str(model), "--out", str(tmp_path / "results.txt")]) == 2
    _one_error_line(capsys, f"--out (out): {tmp_path}/results.txt is a file; expected a folder")
    assert (tmp_path / "results.txt").read_text() == "keep"


def _writable(folder: Path) -> bool:
    try:
        (folder / ".probe").write_text("")
    except OSError:
        return False
    (folder / ".probe").unlink()
    return True


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder this process cannot write in: read-only by mode, and immutable where root writes past the mode."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    immutable = _writable(folder) and shutil.which("chattr") is not None and subprocess.run(
        ["chattr", "+i", str(folder)], capture_output=True).returncode == 0
    try:
        if _writable(folder):
            pytest.skip("this process writes even into a read-only folder (root without chattr)")
        yield folder
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


def test_case4_eval_into_a_read_only_folder_is_refused_before_generation(model, read_only_folder, nothing_loads,
                                                                         capsys):
    assert main(["eval", str(model), "--out", str(read_only_folder)]) == 2
    _one_error_line(capsys, f"--out (out): cannot write in {read_only_folder}")
    assert os.listdir(read_only_folder) == []


def test_case4_a_second_eval_or_teacher_cache_into_a_held_folder_is_refused(model, tmp_path, nothing_loads, capsys):
    data = tmp_path / "train.jsonl"
    _write_rows(data)
    with output_lock(tmp_path / "ev"):  # another eval is writing there
        assert main(["eval", str(model), "--out", str(tmp_path / "ev")]) == 2
    _one_error_line(capsys, f"{tmp_path}/ev is being written by another run (pid {os.getpid()})")
    with output_lock(tmp_path / "cache"):
        assert main(["teacher", "cache", str(data), "--teacher", str(model), "--out", str(tmp_path / "cache"),
                     "--device", "cpu"]) == 2
    _one_error_line(capsys, f"{tmp_path}/cache is being written by another run")
    assert os.listdir(tmp_path / "cache") == [".cotdistill.lock"]


def test_teacher_cache_into_the_folder_of_its_data_is_refused(model, tmp_path, nothing_loads, capsys):
    data = tmp_path / "d" / "train.jsonl"
    before = _write_rows(data)
    assert main(["teacher", "cache", str(data), "--teacher", str(model), "--out", str(tmp_path / "d")]) == 2
    _one_error_line(capsys, f"--out (out): {tmp_path}/d holds the input {data}")
    assert data.read_bytes() == before


def test_train_on_a_held_folder_is_refused_before_any_model_loads(tmp_path, nothing_loads):
    from cotdistill.training.loop import train
    from tests.training.helpers import tiny_config

    cfg = tiny_config(tmp_path)
    with output_lock(cfg.output_dir), pytest.raises(OutputInUseError, match="being written by another run"):
        train(cfg)


@pytest.mark.parametrize("command", ["sweep", "select-experiment", "trace", "demo", "world export"])
def test_every_other_command_that_writes_refuses_an_output_holding_its_input(model, tmp_path, nothing_loads, capsys,
                                                                             command):
    data, out = tmp_path / "d" / "train.jsonl", tmp_path / "d"
    before = _write_rows(data)
    m = str(model)
    argv = {"sweep": ["sweep", f"train.student={m}", f"train.teacher={m}", f"train.data.path={data}"],
            "select-experiment": ["select-experiment", f"data={data}", f"train.student={m}", f"teacher={m}"],
            "trace": ["trace", "--samples", str(data), "--teacher", m, "--student", m, "--distilled", m],
            "demo": ["demo", "eval.bench=jsonl", f"eval.data={data}"],
            "world export": ["world", "export"]}[command]
    assert main([*argv, "--out", str(out)]) == 2
    if command == "world export":  # it reads no file: its output is a file, and a folder is not one
        _one_error_line(capsys, f"--out (out): {out} is a folder; expected a file")
    else:
        _one_error_line(capsys, f"--out (out): {out} holds the input {data}")
    assert data.read_bytes() == before and os.listdir(out) == ["train.jsonl"]
