"""On-policy steps (``loss.on_policy``): the student's own samples, scored by the teacher, in the same trainer."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from cotdistill.compute import ModelShape, forward_flops, sampling_flops
from cotdistill.config import ConfigError, from_dict
from cotdistill.training import rollout as rollout_module
from cotdistill.training.config import TrainConfig
from cotdistill.training.loop import Trainer, train
from cotdistill.training.reporting import fresh_state
from cotdistill.training.rollout import prompt_ids, rollout_budget, rollout_seed
from tests.training.helpers import killed_at, tiny_config
from tests.training.test_trainer import _assert_same, _weights

ON_POLICY = {"loss.on_policy": 1.0, "loss.distill_ratio": 1.0, "loss.kind": "reverse_kl",
             "rollout.max_new_tokens": 12}


def test_the_share_of_on_policy_steps_is_exact_and_spread(tmp_path):
    trainer = Trainer(tiny_config(tmp_path, **{**ON_POLICY, "loss.on_policy": 0.25}))
    try:
        chosen = [trainer.rollouts.on_policy(s) for s in range(12)]
        assert chosen == [False, False, False, True] * 3  # every fourth step, not a coin per step
        for share in (0.1, 0.5, 1 / 3, 1.0):
            trainer.rollouts.share = share
            for steps in (7, 30, 100):
                assert sum(trainer.rollouts.on_policy(s) for s in range(steps)) == math.floor(share * steps + 1e-9)
    finally:
        trainer.close()


def test_lambda_zero_never_samples_and_rollout_settings_change_nothing(tmp_path):
    common = {"optim.max_steps": 3, "loss.on_policy": 0.0}
    plain = train(tiny_config(tmp_path, **common, output_dir=str(tmp_path / "plain")))
    other = train(tiny_config(tmp_path, **common, output_dir=str(tmp_path / "other"),
                              **{"rollout.max_new_tokens": 3, "rollout.temperature": 0.3, "rollout.samples": 2}))
    _assert_same(_weights(tmp_path / "plain" / "final"), _weights(tmp_path / "other" / "final"), atol=0)
    assert plain["on_policy_steps"] == 0 and plain["sampling_flops"] == 0 and plain["rollout_eos_share"] is None
    assert all("on_policy" not in json.loads(line) for line in open(tmp_path / "plain" / "metrics.jsonl"))
    assert other["flops"] == plain["flops"]


def test_samples_come_from_the_current_weights_and_repeat_for_the_same_weights(tmp_path):
    trainer = Trainer(tiny_config(tmp_path, **ON_POLICY))
    trainer.loss_module.train()  # as during training
    try:
        def sampled(step):
            batches, stats = trainer.rollouts.step_batches(trainer.student, trainer.plan, step, trainer.student_shape)
            return batches[0].tensors["input_ids"].clone(), stats

        first, stats = sampled(0)
        again, _ = sampled(0)
        assert torch.equal(first, again)  # same weights, same micro-batch: the same draw (seeded, forked RNG)
        assert stats.samples == 4 and 0 < stats.tokens <= 4 * 12 and stats.flops > 0
        assert trainer.student.training  # sampled in eval mode, handed back in train mode
        with torch.no_grad():
            for p in trainer.student.parameters():
                p.add_(torch.randn_like(p) * 0.5)
        changed, _ = sampled(0)
        assert not torch.equal(first, changed)
        assert not torch.equal(first, sampled(1)[0])  # another step, another micro-batch and seed
    finally:
        trainer.close()


def _reverse_kl_by_hand(student, teacher, prompt: list[int], sample: list[int], vocab: int) -> float:
    ids = torch.tensor([prompt + sample])
    with torch.no_grad():
        s = F.log_softmax(student(input_ids=ids).logits[0, :, :vocab].float(), -1)
        t = F.log_softmax(teacher(input_ids=ids).logits[0, :, :vocab].float(), -1)
    # position t predicts token t + 1: the sampled tokens are predicted from len(prompt) - 1 on, the prompt never
    rows = slice(len(prompt) - 1, len(prompt) - 1 + len(sample))
    return float((s[rows].exp() * (s[rows] - t[rows])).sum())


def test_the_on_policy_loss_is_the_divergence_over_the_sampled_lead_only(tmp_path, monkeypatch):
    """Hand-built samples in place of sampling; LSP 0.5 of 10 new tokens is a budget of 5: one sample ends at EOS
    within it (supervised whole, EOS included), the others fill it."""
    cfg = tiny_config(tmp_path, **{**ON_POLICY, "rollout.max_new_tokens": 10, "encode.truncation": "lsp",
                                   "encode.lsp": 0.5})
    trainer = Trainer(cfg)
    try:
        eos = trainer.tokenizer.eos_token_id
        hand = [[7, 8, eos], [9, 10, 11, 12, 13], [14, 15, 16, 17, 18], [19, 20, 21, 22, 23]]
        asked = {}

        def fake_sample(model, prompts, **kwargs):
            asked.update(kwargs, prompts=prompts, training=model.training)
            return [list(h) for h in hand[:len(prompts)]]

        monkeypatch.setattr(rollout_module, "sample_continuations", fake_sample)
        trainer.loss_module.train()
        state = fresh_state()
        batches, _ = trainer._step_batches(0, state)  # what the trainer's step reads, counted into its state
        assert not asked["training"] and trainer.student.training  # sampled without dropout, then handed back
        assert state["flops"] == state["sampling_flops"] > 0 and state["rollout_samples"] == 4  # in the total
        batches, stats = trainer.rollouts.step_batches(trainer.student, trainer.plan, 0, trainer.student_shape)
        assert asked["max_new_tokens"] == 5 == rollout_budget(cfg.rollout, cfg.encode)
        examples = [e for row in trainer.plan.micro_rows(0) for e in row]
        records = trainer.data.records
        assert asked["prompts"] == [prompt_ids(trainer.tokenizer, records[e.index]) for e in examples]
        assert (stats.samples, stats.ended, stats.tokens) == (4, 1, 18)
        batch = batches[0]
        assert batch.num_supervised == 18  # every sampled token, no prompt token, no padding
        sums = trainer._loss_sums(batch, trainer.loss_module)
        teacher = trainer.teacher.model
        expected = sum(_reverse_kl_by_hand(trainer.student, teacher, p, s, len(trainer.tokenizer))
                       for p, s in zip(asked["prompts"], hand))
        assert sums[2].item() == pytest.approx(expected, rel=1e-4)
        assert sums[0].item() == pytest.approx(expected, rel=1e-4)  # distill_ratio 1: the objective is the KD sum
    finally:
        trainer.close()


def test_a_killed_on_policy_run_resumes_to_the_same_weights(tmp_path, monkeypatch):
    cfg = {**ON_POLICY, "loss.on_policy": 0.5, "optim.max_steps": 6, "save_every": 3}
    straight = train(tiny_config(tmp_path, **cfg, output_dir=str(tmp_path / "straight")))
    killed_at(tmp_path, monkeypatch, 4, **cfg, output_dir=str(tmp_path / "resumed"))
    resumed = train(tiny_config(tmp_path, **cfg, output_dir=str(tmp_path / "resumed")))
    assert resumed["resumed_from"].endswith("step-0000003")
    _assert_same(_weights(tmp_path / "straight" / "final"), _weights(tmp_path / "resumed" / "final"), atol=0)
    for key in ("on_policy_steps", "rollout_samples", "rollout_tokens", "sampling_flops", "flops"):
        assert resumed[key] == straight[key], key
    logs = [json.loads(line) for line in open(tmp_path / "straight" / "metrics.jsonl")]
    assert [line["on_policy"] for line in logs] == [0, 1, 0, 1, 0, 1]
    assert all(0 < line["rollout_tokens"] <= 12 and 0 <= line["rollout_eos"] <= 1 and "rollout_kd" in line
               for line in logs if line["on_policy"])
    assert straight["on_policy_steps"] == 3 and straight["sampling_flops"] > 0
    assert straight["flops"] > straight["sampling_flops"] + straight["teacher_flops"]


def test_an_offline_teacher_cache_or_no_teacher_is_refused_with_on_policy():
    with pytest.raises((ConfigError, ValueError), match="cannot score samples"):
        from_dict(TrainConfig, {"teacher_cache": "some/cache", "loss": {"on_policy": 0.5}})
    with pytest.raises((ConfigError, ValueError), match="needs a teacher"):
        from_dict(TrainConfig, {"loss": {"on_policy": 1.0, "distill_ratio": 0.0}})


def test_a_prompt_that_leaves_no_room_for_the_budget_is_refused_before_weights_load(tmp_path):
    from cotdistill.errors import TrainingError

    with pytest.raises(TrainingError, match="rollout budget"):
        Trainer(tiny_config(tmp_path, **{**ON_POLICY, "rollout.max_new_tokens": 100_000}))


def test_sampling_flops_are_the_sum_of_one_token_forwards_with_a_growing_context():
    shape = ModelShape(hidden=32, layers=2, heads=4, kv_heads=2, head_dim=8, intermediate=64, vocab=50)
    batch, prompt, new = 3, 7, 5
    naive = forward_flops(shape, batch, prompt, head_positions=batch)
    for i in range(1, new + 1):
        one = forward_flops(shape, batch, 1)  # its attention term counts a context of 1
        naive += one - 4 * shape.layers * batch * shape.heads * shape.head_dim
        naive += 4 * shape.layers * batch * shape.heads * (prompt + i) * shape.head_dim
    assert sampling_flops(shape, batch, prompt, new) == naive


def test_on_policy_training_runs_on_the_embedded_world_from_the_command_line(tmp_path):
    from cotdistill.cli import main

    assert main(["train", "data.path=world:train:teacher:16", "loss.on_policy=0.5", "loss.distill_ratio=1",
                 "loss.kind=reverse_kl", "rollout.max_new_tokens=24", "optim.batch_size=4", "optim.max_steps=2",
                 "eval_every=0", "save_every=0", "progress=false", f"output_dir={tmp_path / 'run'}"]) == 0
    summary = json.loads((tmp_path / "run" / "run_summary.json").read_text())
    assert summary["on_policy_steps"] == 1 and summary["rollout_samples"] == 4
    assert summary["flops"] > summary["sampling_flops"] > 0


def test_the_command_line_refuses_a_teacher_cache_with_on_policy_in_one_line(tmp_path, capsys):
    from cotdistill.cli import main

    assert main(["train", f"teacher_cache={tmp_path}", "loss.on_policy=0.5", f"output_dir={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot score samples" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_each_micro_batch_samples_with_its_own_seed(tmp_path, monkeypatch):
    """The seed is (seed, the micro-batch's place in the plan): distinct micro-batches draw independently, and the
    same micro-batch draws the same on any world size."""
    trainer = Trainer(tiny_config(tmp_path, **ON_POLICY, **{"optim.grad_accum": 2, "optim.batch_size": 2}))
    seeds = []

    def fake_sample(model, prompts, **kwargs):
        seeds.append(kwargs["seed"])
        return [[5, 6] for _ in prompts]

    monkeypatch.setattr(rollout_module, "sample_continuations", fake_sample)
    try:
        for step in range(3):
            trainer.rollouts.step_batches(trainer.student, trainer.plan, step, trainer.student_shape)
        assert seeds == [rollout_seed(trainer.cfg.seed, g) for s in range(3) for g in trainer.plan.step_indices(s)]
        assert len(set(seeds)) == 6
    finally:
        trainer.close()
