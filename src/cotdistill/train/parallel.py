"""Wrapping the student for several processes: DDP everywhere, FSDP2 (``fully_shard``) on CUDA by config.

The teacher stays a plain replicated module in eval mode (it has no gradients to synchronise).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from cotdistill.train.distributed import DistInfo


def wrap_distributed(module: nn.Module, config, device: torch.device, dist_info: DistInfo) -> nn.Module:
    if config.fsdp:
        if device.type != "cuda":
            raise ValueError("fsdp: true needs CUDA; on CPU use DDP (the default)")
        from torch.distributed.fsdp import fully_shard

        for layer in module.student.base_model.layers:
            fully_shard(layer)
        fully_shard(module)
        return module
    device_ids = [dist_info.local_rank] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids)
