"""The student side of the objective: the head the loss reproduces (soft-cap included, checked against the model's
own logits) and the one forward DDP/FSDP see, which returns a micro-batch's ``[objective, CE, KD]`` sums."""

from __future__ import annotations

import torch
from torch import nn

from cotdistill.errors import TrainingError
from cotdistill.losses import TeacherRows, fused_objective_sums, sequence_weights, softcap
from cotdistill.losses_cross import CrossRows, cross_objective_sums


def final_logit_cap(model: nn.Module) -> float | None:
    """Gemma 2/3 soft-cap their logits after the output matrix; the loss applies the matrix itself, so it must
    apply the cap too."""
    return getattr(model.config, "final_logit_softcapping", None)


@torch.no_grad()
def check_head_is_reproduced(model: nn.Module, role: str, vocab: int) -> None:
    """The loss computes logits as ``softcap(last_hidden @ output_matrix.T)`` without calling the model's own
    forward (so no chunk's logits outlive it). A family that does more to its logits (a head bias as in Phi-2,
    Cohere's ``logit_scale``, Granite's ``logits_scaling``) would silently train another objective: compare the
    two on a few tokens and refuse the model if they differ."""
    was_training = model.training
    model.eval()
    ids = torch.arange(1, 9, device=model.device).remainder(vocab).unsqueeze(0)
    own = model(input_ids=ids, use_cache=False).logits[0, :, :vocab].float()
    hidden = model.base_model(input_ids=ids, use_cache=False).last_hidden_state[0]
    ours = softcap((hidden @ model.get_output_embeddings().weight.T)[:, :vocab], final_logit_cap(model)).float()
    model.train(was_training)
    scale = own.abs().max().clamp_min(1.0)
    if not torch.allclose(ours, own, atol=1e-3 * scale.item(), rtol=1e-3):
        raise TrainingError(f"the {role} ({type(model).__name__}) computes its logits in a way cotdistill's loss "
                            f"does not reproduce (largest difference {(ours - own).abs().max().item():.3g}: a head "
                            "bias or a logit scale?); training it would optimise another objective")


class StudentLoss(nn.Module):
    """Wraps the student so that DDP/FSDP see one forward that returns ``[objective, CE, KD]`` sums of a
    micro-batch: the objective ``combine(CE, KD)`` carries the gradient (computed chunk by chunk inside the forward,
    see ``losses.fused_objective_sums``), CE and KD are detached figures for the log. ``teacher``: what
    ``Teacher.inputs`` returned (a dataclass of tensors, which DDP/FSDP pass through); ``None``: KD 0."""

    def __init__(self, student: nn.Module, config, vocab: int) -> None:
        super().__init__()
        self.student, self.config, self.vocab = student, config, vocab

    def forward(self, input_ids, attention_mask, position_ids, targets_mask, targets,
                teacher: TeacherRows | CrossRows | None = None) -> torch.Tensor:
        # per-sequence token means: the loss weights each position by its sequence; the trainer divides by sequences
        weights = sequence_weights(targets_mask, position_ids) if self.config.normalize == "sequences" else None
        hidden = self.student.base_model(input_ids=input_ids, attention_mask=attention_mask,
                                         position_ids=position_ids, use_cache=False).last_hidden_state
        # one-token shift: the hidden state at t predicts the label at t + 1
        selected = hidden[:, :-1][targets_mask]
        weight = self.student.get_output_embeddings().weight
        # a teacher with another tokenizer is compared at aligned spans, not position by position
        sums = cross_objective_sums if isinstance(teacher, CrossRows) else fused_objective_sums
        objective, ce, kd = sums(selected, weight, targets, self.config, vocab=self.vocab,
                                 cap=final_logit_cap(self.student), weights=weights, teacher=teacher)
        return torch.stack([objective, ce, kd])
