"""The online teacher: the teacher model runs next to the student, on every micro-batch."""

from __future__ import annotations

import torch
from torch import nn

from cotdistill.data.encode import EncodedExample
from cotdistill.losses import OnlineRows


class OnlineTeacher(nn.Module):
    """The teacher's final hidden states at the supervised positions, plus its output matrix.

    The loss applies the output matrix chunk by chunk (and the soft-cap ``cap``, as Gemma 2/3's forward does), so
    no ``[N, V]`` teacher logits exist outside one chunk. An ``nn.Module`` so that ``training.parallel.shard`` can
    shard it (forward only): under FSDP the gathered weights are freed when the forward returns, so a sharded
    teacher hands back a copy of the output matrix.
    """

    def __init__(self, model: nn.Module, cap: float | None) -> None:
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.cap = cap

    def covers(self, examples: list[EncodedExample]) -> bool:
        return True  # it computes any record

    @torch.no_grad()
    def inputs(self, tensors: dict[str, torch.Tensor | None], indices: list[int],
               targets_mask: torch.Tensor) -> OnlineRows:
        # through __call__, so that FSDP's hooks gather the weights of a sharded teacher
        hidden, weight = self(tensors["input_ids"], tensors["attention_mask"], tensors["position_ids"],
                              targets_mask)
        return OnlineRows(hidden, weight, self.cap)

    def forward(self, input_ids, attention_mask, position_ids, targets_mask) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.model.base_model(input_ids=input_ids, attention_mask=attention_mask,
                                       position_ids=position_ids, use_cache=False).last_hidden_state
        weight = self.model.get_output_embeddings().weight
        # FSDPModule is what training.parallel.is_sharded checks; read here, so the teacher package needs nothing
        # from training
        from torch.distributed.fsdp import FSDPModule

        if isinstance(self, FSDPModule):
            weight = weight.detach().clone()
        # one-token shift: the hidden state at t predicts the label at t + 1
        return hidden[:, :-1][targets_mask], weight

