"""Wrapping models for several processes: DDP by default, FSDP2 (``fully_shard``) by config.

FSDP shards each decoder layer and then the root (embeddings, final norm, head), so a layer's full weights exist
only while it runs. It works under NCCL on CUDA and under gloo on CPU, where the tests check it against one
process. The online teacher (``teacher.online.OnlineTeacher``) is replicated by default; ``teacher_sharding: shard``
shards it the same way (forward only).
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from cotdistill.distributed import DistInfo


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The list of transformer blocks of a HF causal LM (``layers`` in Llama/Qwen/Mistral, ``h`` in GPT-2)."""
    base = model.base_model
    for name in ("layers", "h", "blocks"):
        layers = getattr(base, name, None)
        if isinstance(layers, nn.ModuleList):
            return layers
    raise ValueError(f"cannot find the decoder layers of {type(model).__name__} to shard; use DDP (fsdp: false)")


def shard(root: nn.Module, model: nn.Module) -> nn.Module:
    """``fully_shard`` every decoder layer of ``model``, then ``root`` (which owns ``model``) for the rest."""
    from torch.distributed.fsdp import fully_shard

    for layer in decoder_layers(model):
        fully_shard(layer)
    fully_shard(root)
    return root


def wrap_distributed(module: nn.Module, config, device: torch.device, dist_info: DistInfo) -> nn.Module:
    if config.fsdp:
        return shard(module, module.student)
    device_ids = [dist_info.local_rank] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids)


def is_sharded(module: object) -> bool:
    """Whether ``fully_shard`` was applied to it (any object: a teacher cache, or ``None``, is not)."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(module, FSDPModule)


@contextmanager
def gradient_sync(model: nn.Module, enabled: bool):
    """Skip the gradient all-reduce (DDP) or reduce-scatter (FSDP) on all but the last micro-batch of a step."""
    if enabled:
        yield
    elif isinstance(model, DistributedDataParallel):
        with model.no_sync():
            yield
    elif is_sharded(model):
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)
    else:
        yield


def full_tensor(value: torch.Tensor) -> torch.Tensor:
    """A DTensor's full value (a collective: every rank must call it); a plain tensor as it is."""
    from torch.distributed.tensor import DTensor

    return value.full_tensor() if isinstance(value, DTensor) else value



def clip_gradients(module: nn.Module, max_norm: float) -> float:
    """Clip to ``max_norm`` and return the global gradient norm (gathered under FSDP). With clipping off (0) the
    norm is still computed: an infinite bound scales every gradient by exactly 1."""
    params = [p for p in module.parameters() if p.grad is not None]
    bound = max_norm if max_norm > 0 else math.inf
    return float(full_tensor(torch.nn.utils.clip_grad_norm_(params, bound)))
