"""Two CPU processes under torchrun (gloo), DDP and FSDP, equal one process with the same global batch; a killed
two-process run resumes to the same weights."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForCausalLM

from cotdistill.config import save_config
from cotdistill.training.loop import TrainingError, train
from tests.training.helpers import tiny_config

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}

# Runs the CLI with a fault injected: rank 1 dies abruptly (no clean-up, no exception handlers) before the given step.
CRASHING_LAUNCHER = """
import os, sys
from cotdistill.cli import main
from cotdistill.training.loop import Trainer

original = Trainer._optimizer_step

def crash(self, step, state):
    if step == int(os.environ["CRASH_AT_STEP"]) and self.dist.rank == 1:
        os._exit(1)
    return original(self, step, state)

Trainer._optimizer_step = crash
sys.exit(main(sys.argv[1:]))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
                           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), *args],
                          env=env or ENV, capture_output=True, text=True)


def _final_weights(run_dir) -> dict[str, torch.Tensor]:
    return AutoModelForCausalLM.from_pretrained(run_dir / "final").state_dict()


def _logs(run_dir) -> list[dict]:
    return [json.loads(line) for line in open(run_dir / "metrics.jsonl")]


def _one_process_and_two(root, common: dict) -> None:
    """``root/single``: one process with accumulation 2; ``root/multi``: two processes under torchrun, accumulation
    1: the same global batch."""
    single = tiny_config(root, output_dir=str(root / "single"), **common, **{"optim.grad_accum": 2})
    multi = tiny_config(root, output_dir=str(root / "multi"), **common, **{"optim.grad_accum": 1})
    save_config(single, root / "single.yaml")
    save_config(multi, root / "multi.yaml")
    subprocess.run([sys.executable, "-m", "cotdistill", "train", str(root / "single.yaml")], check=True, env=ENV,
                   capture_output=True)
    run = _torchrun("-m", "cotdistill", "train", str(root / "multi.yaml"))
    assert run.returncode == 0, run.stderr[-3000:]


def test_two_processes_equal_one_with_same_global_batch(tmp_path):
    common = {"optim.max_steps": 3, "optim.batch_size": 2, "data.val_fraction": 0.25, "save_every": 2}
    _one_process_and_two(tmp_path, common)
    logs = {name: [json.loads(line) for line in open(tmp_path / name / "metrics.jsonl")]
            for name in ("single", "multi")}
    assert len(logs["multi"]) == 3  # only rank 0 writes logs
    for a, b in zip(logs["single"], logs["multi"]):
        assert abs(a["loss"] - b["loss"]) < 1e-5 and abs(a["kd"] - b["kd"]) < 1e-5
    assert abs(logs["single"][-1]["val_loss"] - logs["multi"][-1]["val_loss"]) < 1e-5  # val split across ranks
    # tolerance: gloo sums gradients in another order than one process does; 1e-5 absolute on the weights
    w1 = AutoModelForCausalLM.from_pretrained(tmp_path / "single" / "final").state_dict()
    w2 = AutoModelForCausalLM.from_pretrained(tmp_path / "multi" / "final").state_dict()
    for k in w1:
        torch.testing.assert_close(w1[k], w2[k], atol=1e-5, rtol=0, msg=k)
    s1 = json.loads((tmp_path / "single" / "run_summary.json").read_text())
    s2 = json.loads((tmp_path / "multi" / "run_summary.json").read_text())
    assert s2["world_size"] == 2 and s1["supervised_tokens"] == s2["supervised_tokens"]
    assert s1["processed_tokens"] == s2["processed_tokens"]


def test_two_processes_sample_their_own_prompts_and_equal_one_on_policy(tmp_path):
    """Each rank samples its own micro-batch's prompts, seeded by the micro-batch's place in the plan: two processes
    draw the samples one process with twice the accumulation draws, and train the same weights."""
    common = {"optim.max_steps": 2, "optim.batch_size": 2, "data.val_fraction": 0.25, "loss.on_policy": 1.0,
              "loss.distill_ratio": 1.0, "loss.kind": "reverse_kl", "rollout.max_new_tokens": 10}
    _one_process_and_two(tmp_path, common)
    for a, b in zip(_logs(tmp_path / "single"), _logs(tmp_path / "multi"), strict=True):
        assert a["on_policy"] == b["on_policy"] == 1
        assert abs(a["loss"] - b["loss"]) < 1e-5
    s1 = json.loads((tmp_path / "single" / "run_summary.json").read_text())
    s2 = json.loads((tmp_path / "multi" / "run_summary.json").read_text())
    for key in ("rollout_samples", "rollout_tokens", "sampling_flops", "supervised_tokens", "processed_tokens"):
        assert s1[key] == s2[key], key  # summed over both ranks: the same samples were drawn
    w1, w2 = _final_weights(tmp_path / "single"), _final_weights(tmp_path / "multi")
    for k in w1:
        torch.testing.assert_close(w1[k], w2[k], atol=1e-5, rtol=0, msg=k)


def test_trace_scoring_split_across_two_processes_equals_one(tmp_path):
    from cotdistill.world import world_records
    from tests.conftest import char_tokenizer, tiny_qwen
    from tests.provenance.test_scoring import _save

    tok = char_tokenizer()
    paths = [_save(tiny_qwen(len(tok), seed=s), tok, tmp_path / f"m{s}") for s in range(3)]
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps({"prompt": r.prompt, "response": r.assistant_text(), "correct": True})
                               + "\n" for r in world_records("test", "teacher", 5, min_steps=2, max_steps=2)))
    args = ["-m", "cotdistill", "trace", "--samples", str(samples), "--teacher", paths[0], "--student", paths[1],
            "--distilled", paths[2], "--device", "cpu"]
    subprocess.run([sys.executable, *args, "--out", str(tmp_path / "one")], check=True, env=ENV, capture_output=True)
    run = _torchrun(*args, "--out", str(tmp_path / "two"))
    assert run.returncode == 0, run.stderr[-3000:]
    assert sorted((tmp_path / "two").glob("scores-teacher.jsonl.rank*")) != []
    one = [json.loads(line) for line in open(tmp_path / "one" / "actions.jsonl")]
    two = [json.loads(line) for line in open(tmp_path / "two" / "actions.jsonl")]
    assert len(one) == len(two) > 0
    for a, b in zip(one, two):
        assert a["category"] == b["category"] and abs(a["p_teacher"] - b["p_teacher"]) < 1e-6


def test_select_scoring_split_across_two_processes_equals_one(tmp_path):
    from cotdistill.data.formats import write_jsonl
    from cotdistill.world import world_records

    data = tmp_path / "cands.jsonl"
    write_jsonl(world_records("train", "teacher", 5, min_steps=2, max_steps=2)
                + world_records("train", "student", 4, min_steps=2, max_steps=2), data, "messages")
    args = ["-m", "cotdistill", "select", str(data), "--teacher", "world:teacher", "--student", "world:student",
            "--keep", "4", "--device", "cpu"]
    subprocess.run([sys.executable, *args, "--out", str(tmp_path / "one.jsonl")], check=True, env=ENV,
                   capture_output=True)
    run = _torchrun(*args, "--out", str(tmp_path / "two.jsonl"))
    assert run.returncode == 0, run.stderr[-3000:]
    assert len(list((tmp_path / "two.score-cache").glob("*.rank1"))) > 0  # rank 1 really scored a share
    one = [json.loads(line) for line in open(tmp_path / "one.scores.jsonl")]
    two = [json.loads(line) for line in open(tmp_path / "two.scores.jsonl")]
    assert len(one) == len(two) == 9
    assert [r["selected"] for r in one] == [r["selected"] for r in two] and sum(r["selected"] for r in two) == 4
    for a, b in zip(one, two):
        assert abs(a["method_score"] - b["method_score"]) < 1e-5

def test_fsdp_with_sharded_teacher_equals_one_process(tmp_path):
    """FSDP2 over 2 gloo processes (student and teacher sharded, checkpoints gathered) vs 1 process, same global
    batch. Tolerance as for DDP: 1e-5 on per-step losses and final weights (reduction order differs)."""
    # 6 validation records in batches of 2: 3 batches over 2 ranks, so one rank runs a discarded repeat
    common = {"optim.max_steps": 3, "optim.batch_size": 2, "data.val_fraction": 0.375, "save_every": 2,
              "eval_every": 2}
    single = tiny_config(tmp_path, output_dir=str(tmp_path / "single"), **common, **{"optim.grad_accum": 2})
    sharded = tiny_config(tmp_path, output_dir=str(tmp_path / "fsdp"), **common, fsdp=True,
                          teacher_sharding="shard")
    save_config(sharded, tmp_path / "fsdp.yaml")
    train(single)
    run = _torchrun("-m", "cotdistill", "train", str(tmp_path / "fsdp.yaml"))
    assert run.returncode == 0, run.stderr[-3000:]
    one, two = _logs(tmp_path / "single"), _logs(tmp_path / "fsdp")
    assert len(two) == 3
    summary = json.loads((tmp_path / "fsdp" / "run_summary.json").read_text())
    assert summary["parallel"] == "fsdp" and summary["teacher_sharded"] and summary["world_size"] == 2
    for a, b in zip(one, two):
        assert abs(a["loss"] - b["loss"]) < 1e-5 and abs(a["kd"] - b["kd"]) < 1e-5
        assert abs(a["grad_norm"] - b["grad_norm"]) < 1e-4
    assert abs(one[1]["val_loss"] - two[1]["val_loss"]) < 1e-5 and abs(one[2]["val_kd"] - two[2]["val_kd"]) < 1e-5
    w1, w2 = _final_weights(tmp_path / "single"), _final_weights(tmp_path / "fsdp")
    assert w1.keys() == w2.keys()
    for k in w1:
        torch.testing.assert_close(w1[k], w2[k], atol=1e-5, rtol=0, msg=k)
    # the step-2 checkpoint holds full (gathered) weights that a plain from_pretrained reads
    ckpt = AutoModelForCausalLM.from_pretrained(tmp_path / "fsdp" / "checkpoints" / "step-0000002")
    assert ckpt.state_dict().keys() == w1.keys()


@pytest.mark.parametrize("fsdp", [False, True], ids=["ddp", "fsdp"])
def test_killed_two_process_run_resumes_to_the_same_weights(tmp_path, fsdp):
    common = {"optim.max_steps": 5, "optim.batch_size": 2, "data.val_fraction": 0.25, "save_every": 2, "fsdp": fsdp}
    for name in ("straight", "resumed"):
        save_config(tiny_config(tmp_path, output_dir=str(tmp_path / name), **common), tmp_path / f"{name}.yaml")
    straight = _torchrun("-m", "cotdistill", "train", str(tmp_path / "straight.yaml"))
    assert straight.returncode == 0, straight.stderr[-3000:]
    launcher = tmp_path / "crashing_launcher.py"
    launcher.write_text(CRASHING_LAUNCHER)
    killed = _torchrun(str(launcher), "train", str(tmp_path / "resumed.yaml"), env={**ENV, "CRASH_AT_STEP": "3"})
    assert killed.returncode != 0
    assert not (tmp_path / "resumed" / "final").exists()
    assert (tmp_path / "resumed" / "checkpoints" / "latest").read_text() == "step-0000002"
    resumed = _torchrun("-m", "cotdistill", "train", str(tmp_path / "resumed.yaml"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads((tmp_path / "resumed" / "run_summary.json").read_text())
    assert summary["resumed_from"].endswith("step-0000002") and summary["steps"] == 5
    # same world size, same reduction order: the resumed run is bit-identical to the straight one
    w1, w2 = _final_weights(tmp_path / "straight"), _final_weights(tmp_path / "resumed")
    for k in w1:
        torch.testing.assert_close(w1[k], w2[k], atol=0, rtol=0, msg=k)
    after_resume = [r["loss"] for r in _logs(tmp_path / "resumed")][-3:]
    assert after_resume == [r["loss"] for r in _logs(tmp_path / "straight")][2:]
    assert summary["parallel"] == ("fsdp" if fsdp else "ddp")

    # one process cannot continue what two started: a clear error, not a silently different run
    with pytest.raises(TrainingError, match="2 process"):
        train(tiny_config(tmp_path, output_dir=str(tmp_path / "resumed"), **{**common, "fsdp": False,
                                                                              "optim.max_steps": 6}))
