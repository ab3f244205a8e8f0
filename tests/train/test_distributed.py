"""Two CPU processes under torchrun (gloo) equal one process with the same global batch."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import torch
from transformers import AutoModelForCausalLM

from cotdistill.config import save_config
from tests.train.helpers import tiny_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one_with_same_global_batch(tmp_path):
    common = {"optim.max_steps": 3, "optim.batch_size": 2, "data.val_fraction": 0.25, "save_every": 2}
    single = tiny_config(tmp_path, output_dir=str(tmp_path / "single"), **common, **{"optim.grad_accum": 2})
    multi = tiny_config(tmp_path, output_dir=str(tmp_path / "multi"), **common, **{"optim.grad_accum": 1})
    save_config(single, tmp_path / "single.yaml")
    save_config(multi, tmp_path / "multi.yaml")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "cotdistill", "train", str(tmp_path / "single.yaml")], check=True, env=env,
                   capture_output=True)
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
                          "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), "-m", "cotdistill",
                          "train", str(tmp_path / "multi.yaml")], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    logs = {name: [json.loads(line) for line in open(tmp_path / name / "metrics.jsonl")]
            for name in ("single", "multi")}
    assert len(logs["multi"]) == 3  # only rank 0 writes logs
    for a, b in zip(logs["single"], logs["multi"]):
        assert abs(a["loss"] - b["loss"]) < 1e-5 and abs(a["kd"] - b["kd"]) < 1e-5
    # tolerance: gloo sums gradients in another order than one process does; 1e-5 absolute on the weights
    w1 = AutoModelForCausalLM.from_pretrained(tmp_path / "single" / "final").state_dict()
    w2 = AutoModelForCausalLM.from_pretrained(tmp_path / "multi" / "final").state_dict()
    for k in w1:
        torch.testing.assert_close(w1[k], w2[k], atol=1e-5, rtol=0, msg=k)
    s1 = json.loads((tmp_path / "single" / "run_summary.json").read_text())
    s2 = json.loads((tmp_path / "multi" / "run_summary.json").read_text())
    assert s2["world_size"] == 2 and s1["supervised_tokens"] == s2["supervised_tokens"]
    assert s1["processed_tokens"] == s2["processed_tokens"]


def test_trace_scoring_split_across_two_processes_equals_one(tmp_path):
    from cotdistill.world import world_records
    from tests.conftest import char_tokenizer, tiny_qwen
    from tests.provenance.test_scoring import _save

    tok = char_tokenizer()
    paths = [_save(tiny_qwen(len(tok), seed=s), tok, tmp_path / f"m{s}") for s in range(3)]
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps({"prompt": r.prompt, "response": r.assistant_text(), "correct": True})
                               + "\n" for r in world_records("test", "teacher", 5, min_steps=2, max_steps=2)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["-m", "cotdistill", "trace", "--samples", str(samples), "--teacher", paths[0], "--student", paths[1],
            "--distilled", paths[2], "--device", "cpu"]
    subprocess.run([sys.executable, *args, "--out", str(tmp_path / "one")], check=True, env=env, capture_output=True)
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
                          "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), *args, "--out",
                          str(tmp_path / "two")], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    assert sorted((tmp_path / "two").glob("scores-teacher.jsonl.rank*")) != []
    one = [json.loads(line) for line in open(tmp_path / "one" / "actions.jsonl")]
    two = [json.loads(line) for line in open(tmp_path / "two" / "actions.jsonl")]
    assert len(one) == len(two) > 0
    for a, b in zip(one, two):
        assert a["category"] == b["category"] and abs(a["p_teacher"] - b["p_teacher"]) < 1e-6
