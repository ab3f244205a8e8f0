"""``loss.normalize: sequences``: each sequence's supervised-token mean, averaged over the sequences of a step (the
truncation paper's code), against a hand computation with plain ``log_softmax``/``gather`` on each record alone."""

from __future__ import annotations

import pytest
import torch

from cotdistill.config import ConfigError, from_dict
from cotdistill.data.batching import Batch
from cotdistill.data.encode import IGNORE_INDEX, EncodedExample
from cotdistill.losses import LossConfig, sequence_weights
from cotdistill.training import loop
from cotdistill.training.config import TrainConfig
from cotdistill.training.loop import Trainer
from cotdistill.training.reporting import fresh_state
from tests.training.helpers import tiny_config

TAU = 2.0


def _trainer(tmp_path, **overrides) -> Trainer:
    trainer = Trainer(tiny_config(tmp_path, **{"loss.normalize": "sequences", "loss.temperature": TAU,
                                                "optim.max_grad_norm": 0.0, **overrides}))
    # random models are nearly uniform: larger logits make CE and KD vary from token to token, so that a token mean
    # and a mean of sequence means differ
    with torch.no_grad():
        trainer.student.get_output_embeddings().weight.mul_(8.0)
        if trainer.teacher is not None:
            trainer.teacher.model.get_output_embeddings().weight.mul_(20.0)
    return trainer


def _per_token(trainer: Trainer, example: EncodedExample) -> tuple[torch.Tensor, torch.Tensor]:
    """CE and forward KL (at τ) at each supervised position of one record, run alone (no padding, no packing)."""
    ids = torch.tensor([example.input_ids])
    labels = torch.tensor(example.labels[1:])  # the label of token t + 1 is predicted at t
    mask = labels != IGNORE_INDEX
    student = trainer.student(input_ids=ids).logits[0, :-1][mask][:, :trainer.vocab].double()
    ce = -torch.log_softmax(student, -1).gather(1, labels[mask][:, None])[:, 0]
    if trainer.teacher is None:
        return ce, torch.zeros_like(ce)
    with torch.no_grad():
        teacher = trainer.teacher.model(input_ids=ids).logits[0, :-1][mask][:, :trainer.vocab].double()
    log_ps, log_pt = torch.log_softmax(student / TAU, -1), torch.log_softmax(teacher / TAU, -1)
    return ce, (log_pt.exp() * (log_pt - log_ps)).sum(-1)


def _hand(trainer: Trainer, examples: list[EncodedExample]) -> dict[str, torch.Tensor]:
    per_record = [_per_token(trainer, e) for e in examples]
    ce = torch.stack([c.mean() for c, _ in per_record]).mean()
    kd = torch.stack([k.mean() for _, k in per_record]).mean()
    r = trainer.cfg.loss.distill_ratio
    token_ce = torch.cat([c for c, _ in per_record]).mean()
    return {"ce": ce, "kd": kd, "loss": (1 - r) * ce + r * TAU**2 * kd, "token_ce": token_ce}


def _cut(example: EncodedExample, supervised: int) -> EncodedExample:
    """The record cut after its first ``supervised`` supervised tokens."""
    first = next(i for i, label in enumerate(example.labels) if i > 0 and label != IGNORE_INDEX)
    n = first + supervised
    return EncodedExample(example.input_ids[:n], example.labels[:n], example.segments[:n], example.index, n)


def _step_grads(trainer: Trainer) -> tuple[dict, dict[str, torch.Tensor]]:
    """Run optimizer step 0 and return its log and the gradients it applied (taken just before the clip)."""
    grads, clip = {}, loop.clip_gradients

    def capture(module, max_norm) -> float:
        grads.update({n: p.grad.clone() for n, p in trainer.student.named_parameters() if p.grad is not None})
        return clip(module, max_norm)

    loop.clip_gradients = capture
    state = fresh_state()
    try:
        return trainer._optimizer_step(0, state), grads
    finally:  # the trainer holds its output folder until closed: a test's next trainer may use the same one
        loop.clip_gradients = clip
        trainer.close()


def test_sequence_weights_by_hand():
    # row 0: 3 supervised targets, row 1: none (neither weighted nor counted), row 2: 1
    mask = torch.tensor([[1, 1, 0, 1], [0, 0, 0, 0], [0, 1, 0, 0]], dtype=torch.bool)
    assert sequence_weights(mask).tolist() == pytest.approx([1 / 3] * 3 + [1.0])
    # one packed row of 6 tokens: records [0, 1, 2] and [3, 4, 5]; target t labels token t + 1
    positions = torch.tensor([[0, 1, 2, 0, 1, 2]])
    packed = torch.tensor([[1, 1, 0, 1, 1]], dtype=torch.bool)  # record 1: targets 0, 1; record 2: 3, 4
    assert sequence_weights(packed, positions).tolist() == pytest.approx([0.5] * 4)
    lopsided = torch.tensor([[1, 1, 0, 0, 1]], dtype=torch.bool)
    assert sequence_weights(lopsided, positions).tolist() == pytest.approx([0.5, 0.5, 1.0])
    assert sequence_weights(torch.zeros(2, 3, dtype=torch.bool)).numel() == 0


def test_a_record_without_supervised_tokens_is_not_counted():
    none = EncodedExample([1, 2, 3], [IGNORE_INDEX] * 3, [0, 0, 0], 0, 3)
    some = EncodedExample([1, 2, 3], [IGNORE_INDEX, 2, 3], [0, 1, 1], 1, 3)
    batch = Batch.of({}, [none, some])
    assert (batch.num_supervised, batch.num_sequences) == (2, 1)
    assert (batch.divisor("tokens"), batch.divisor("sequences")) == (2, 1)


def test_a_step_under_sequences_is_the_mean_of_sequence_means_with_its_gradient(tmp_path):
    """CE and KD (logged) and the gradient applied equal the mean over the step's records of each record's token
    mean, computed by hand; the records' supervised lengths differ, so a global token mean is another number."""
    trainer = _trainer(tmp_path)
    examples = [_cut(trainer.data.examples[0], 2), _cut(trainer.data.examples[1], 9), trainer.data.examples[2]]
    assert [e.num_supervised for e in examples][:2] == [2, 9] and examples[2].num_supervised > 50
    batch = trainer.collator.batch
    trainer.plan.step_batches = lambda step: [batch(examples[:2]), batch(examples[2:])]
    hand = _hand(trainer, examples)
    assert abs(hand["ce"] - hand["token_ce"]) > 0.05  # the two means differ on these records
    assert hand["kd"] > 0.05
    hand["loss"].backward()
    expected = {n: p.grad.clone() for n, p in trainer.student.named_parameters()}
    trainer.student.zero_grad(set_to_none=True)
    log, grads = _step_grads(trainer)
    for key in ("ce", "kd", "loss"):
        assert log[key] == pytest.approx(hand[key].item(), rel=1e-5), key
    assert grads.keys() == expected.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grad, expected[name].float(), atol=1e-6, rtol=1e-4, msg=name)


def test_validation_follows_the_sequence_mean(tmp_path):
    trainer = _trainer(tmp_path)
    val = trainer.evaluate()
    with torch.no_grad():
        hand = _hand(trainer, trainer.data.val_examples)
    assert len(trainer.data.val_examples) > 1
    for key in ("ce", "kd", "loss"):
        assert val[f"val_{key}"] == pytest.approx(hand[key].item(), rel=1e-5), key


@pytest.mark.parametrize("teacher", [True, False], ids=["kd", "sft"])
def test_batch_4_equals_batch_1_times_accumulation_4(tmp_path, teacher):
    common = {"data.val_fraction": 0.0, "data.max_records": 4, "optim.max_steps": 1}
    if not teacher:
        common.update({"teacher": None, "loss.distill_ratio": 0.0})
    whole = _step_grads(_trainer(tmp_path, **common, **{"optim.batch_size": 4}))[1]
    accumulated = _step_grads(_trainer(tmp_path, **common, **{"optim.batch_size": 1, "optim.grad_accum": 4}))[1]
    tokens = _step_grads(_trainer(tmp_path, **common, **{"optim.batch_size": 4, "loss.normalize": "tokens"}))[1]
    assert whole.keys() == accumulated.keys()
    for name, grad in whole.items():
        torch.testing.assert_close(accumulated[name], grad, atol=1e-6, rtol=1e-4, msg=name)
    # the test can fail: the global token mean gives another gradient on the same records
    assert max((tokens[n] - g).abs().max().item() for n, g in whole.items()) > 1e-4


def test_packed_rows_give_the_same_sequence_mean_as_padded_batches(tmp_path):
    """Weights follow the records of a packed row, not the row."""
    trainer = _trainer(tmp_path)
    examples = trainer.data.examples[:6]
    padded_batch = trainer.collator.batch(examples)
    packed_batch = trainer.collator.packed_batch([examples[:4], examples[4:]])
    assert padded_batch.num_sequences == packed_batch.num_sequences == 6
    padded = trainer._loss_sums(padded_batch, trainer.loss_module)
    packed = trainer._loss_sums(packed_batch, trainer.loss_module)
    torch.testing.assert_close(packed, padded, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        hand = _hand(trainer, examples)
    assert padded[1].item() / 6 == pytest.approx(hand["ce"].item(), rel=1e-5)
    assert padded[2].item() / 6 == pytest.approx(hand["kd"].item(), rel=1e-5)


def test_an_unknown_normalize_is_a_one_line_error():
    with pytest.raises(ValueError, match="normalize must be one of tokens, sequences, found 'mean'"):
        LossConfig(normalize="mean")
    with pytest.raises(ConfigError) as err:
        from_dict(TrainConfig, {"loss": {"normalize": "per_sequence"}})
    assert "normalize" in str(err.value) and "per_sequence" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.slow  # two torchrun processes start up: ~20 s on 2 CPU cores
def test_two_processes_equal_one_under_sequences(tmp_path):
    """The sequence count is all-reduced like the token count: 2 processes × batch 2 equal 1 × batch 2 × 2."""
    import json
    import subprocess
    import sys

    from transformers import AutoModelForCausalLM

    from cotdistill.config import save_config
    from tests.training.test_distributed import ENV, _torchrun

    common = {"optim.max_steps": 2, "optim.batch_size": 2, "data.val_fraction": 0.25, "loss.normalize": "sequences"}
    save_config(tiny_config(tmp_path, output_dir=str(tmp_path / "single"), **common, **{"optim.grad_accum": 2}),
                tmp_path / "single.yaml")
    save_config(tiny_config(tmp_path, output_dir=str(tmp_path / "multi"), **common), tmp_path / "multi.yaml")
    subprocess.run([sys.executable, "-m", "cotdistill", "train", str(tmp_path / "single.yaml")], check=True, env=ENV,
                   capture_output=True)
    run = _torchrun("-m", "cotdistill", "train", str(tmp_path / "multi.yaml"))
    assert run.returncode == 0, run.stderr[-3000:]
    logs = [[json.loads(line) for line in open(tmp_path / name / "metrics.jsonl")] for name in ("single", "multi")]
    for a, b in zip(*logs):
        assert abs(a["loss"] - b["loss"]) < 1e-5 and abs(a["kd"] - b["kd"]) < 1e-5
    assert abs(logs[0][-1]["val_loss"] - logs[1][-1]["val_loss"]) < 1e-5
    w1, w2 = (AutoModelForCausalLM.from_pretrained(tmp_path / name / "final").state_dict()
              for name in ("single", "multi"))
    for k in w1:
        torch.testing.assert_close(w1[k], w2[k], atol=1e-5, rtol=0, msg=k)
