"""The analytic FLOP count agrees with torch's FlopCounterMode; the memory monitor sees an allocation.

Models run with eager attention here: FlopCounterMode has no formula for the CPU flash-attention kernel that SDPA
uses on CPU, so under SDPA it silently counts attention as zero.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from cotdistill.compute import MemoryMonitor, ModelShape, forward_flops, training_flops
from tests.conftest import tiny_qwen


@pytest.mark.parametrize("batch, seq", [(1, 16), (4, 64), (2, 200)])
def test_forward_flops_match_flop_counter(batch, seq):
    model = tiny_qwen(500, hidden=64, layers=2, attn="eager")
    shape = ModelShape.from_config(model.config)
    x = torch.randint(0, 500, (batch, seq))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(input_ids=x)
    measured = counter.get_total_flops()
    assert forward_flops(shape, batch, seq) == pytest.approx(measured, rel=0.10)


def test_training_flops_match_flop_counter_forward_and_backward():
    model = tiny_qwen(300, hidden=32, layers=2, attn="eager").train()
    shape = ModelShape.from_config(model.config)
    x = torch.randint(0, 300, (2, 48))
    with FlopCounterMode(display=False) as counter:
        model(input_ids=x, labels=x).loss.backward()
    assert training_flops(shape, None, 2, 48) == pytest.approx(counter.get_total_flops(), rel=0.10)


def test_memory_monitor_sees_allocation():
    monitor = MemoryMonitor(torch.device("cpu"), interval=0.001).start()
    block = torch.ones(64 * 1024 * 1024 // 4)  # 64 MiB
    block += 1
    peak = monitor.stop()
    assert peak > 32 * 1024 * 1024
    del block
