"""Which arithmetic a run computes in: ``precision: auto | fp32 | bf16``, decided here once per device.

``auto`` picks bf16 autocast where the device has bf16 units: CUDA devices that support it, and CPUs that report
them (x86 ``avx512_bf16`` or ``amx_bf16``, Arm's ``bf16`` feature, read from ``/proc/cpuinfo``). On this project's
2-core EPYC, measured one process each: a 2048² matmul runs 4.3× faster in bf16, a world-student train step 1.5×
and a world-teacher step 1.6× (issue 38; ``python bench/precision.py``). A CPU that reports none (or a system
without ``/proc/cpuinfo``, such as macOS) stays in fp32: there bf16 is emulated and slower. Training keeps fp32
master weights and optimizer state either way: autocast only changes the matmuls' inputs, and the losses upcast to
fp32 inside.
"""

from __future__ import annotations

import typing
from functools import lru_cache
from pathlib import Path
from typing import Literal

import torch

Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS = typing.get_args(Precision)
Resolved = Literal["fp32", "bf16"]
# CPU feature names that mean native bf16 arithmetic (x86 dot products or AMX tiles; Arm's BFDOT/BFMMLA)
CPU_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def cpu_bf16_flags(cpuinfo: str) -> set[str]:
    """The bf16 feature names in ``/proc/cpuinfo`` text: the ``flags`` line on x86, ``Features`` on Arm."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split()) & CPU_BF16_FLAGS
    return set()


@lru_cache(maxsize=1)
def this_cpu_bf16_flags() -> frozenset[str]:
    try:
        return frozenset(cpu_bf16_flags(Path("/proc/cpuinfo").read_text()))
    except OSError:
        return frozenset()


def resolve_precision(setting: Precision, device: torch.device, cpu_flags: set[str] | None = None) -> Resolved:
    """The precision a run on ``device`` computes in; ``cpu_flags``: the CPU's bf16 feature names (read from this
    machine when ``None``)."""
    if setting != "auto":
        return setting
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        return "bf16" if (this_cpu_bf16_flags() if cpu_flags is None else cpu_flags) else "fp32"
    return "fp32"


def precision_note(setting: Precision, device: torch.device, resolved: Resolved) -> str:
    """Why a run computes in ``resolved``: for the run summary and the start-of-run line."""
    if setting != "auto":
        return f"{resolved} (set)"
    if device.type == "cpu":
        flags = sorted(this_cpu_bf16_flags())
        return (f"bf16 (auto: this CPU reports {', '.join(flags)})" if resolved == "bf16"
                else "fp32 (auto: this CPU reports no bf16 units)")
    return f"{resolved} (auto on {device.type})"


def autocast(device: torch.device, precision: Resolved):
    """The context every forward of a run at ``precision`` runs in."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
