"""torch.distributed set-up for ``torchrun``: gloo on CPU, NCCL on CUDA. A single process needs none of it."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment; no-op for one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    if device_type == "cuda":
        torch.cuda.set_device(info.local_rank)
    return info


def current_dist() -> DistInfo:
    """The process group this process already belongs to (none: a single process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistInfo()
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def all_reduce_sum(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum over processes, in place. NCCL only reduces CUDA tensors, so a CPU tensor makes a round trip."""
    if not info.enabled:
        return value
    if dist.get_backend() == "nccl" and not value.is_cuda:
        on_device = value.cuda()
        dist.all_reduce(on_device, op=dist.ReduceOp.SUM)
        value.copy_(on_device.cpu())
    else:
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        # every rank must be out of its last collective before any rank tears its connections down
        dist.barrier()
        dist.destroy_process_group()


def exit_launched_process(code: int) -> None:
    """End a process that ``torchrun`` launched, once its outputs are written: leave the process group (if a stage
    joined one), flush, and exit without interpreter finalisation. Finalising while gloo's worker threads are still
    being torn down aborted a rank now and then ("terminate called without an active exception", SIGABRT, seen in
    CI after an FSDP run had written everything), which turned a finished run into a failed launch."""
    import sys

    if dist.is_available() and dist.is_initialized():
        if code == 0:
            dist.barrier()
        dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
