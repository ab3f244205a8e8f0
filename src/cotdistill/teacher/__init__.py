"""The teacher a distillation run reads, behind one interface.

Two kinds implement it: :class:`cotdistill.teacher.online.OnlineTeacher` runs the teacher model next to the student
(any record; an ``nn.Module``, so FSDP can shard it), and :class:`cotdistill.teacher.cache.TeacherCache` reads the
distributions stored by ``cotdistill teacher cache`` (only the records it was built on). The trainer holds one
teacher, or none for plain SFT, and hands what :meth:`Teacher.inputs` returns (one typed ``TeacherRows``: the online
teacher's ``OnlineRows`` or the cache's ``CachedRows``) to the loss as one argument.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import torch

    from cotdistill.data.encode import EncodedExample
    from cotdistill.losses import TeacherRows



class Teacher(Protocol):
    def covers(self, examples: list[EncodedExample]) -> bool:
        """Whether :meth:`inputs` can answer for these records (a cache holds only the records it was built on)."""
        ...

    def inputs(self, tensors: dict[str, torch.Tensor | None], indices: list[int],
               targets_mask: torch.Tensor) -> TeacherRows:
        """The teacher at a micro-batch's supervised positions, in the order of ``tensors["labels"][:, 1:][mask]``.

        ``tensors``: the collated batch (``input_ids``, ``attention_mask``, ``position_ids``); ``indices``: its
        records' indices, in row order; ``targets_mask [B, T - 1]``: the supervised positions (label shift applied).
        """
        ...
