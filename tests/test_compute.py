"""The analytic FLOP count agrees with torch's FlopCounterMode; the memory monitor sees an allocation.

Models run with eager attention here: FlopCounterMode has no formula for the CPU flash-attention kernel that SDPA
uses on CPU, so under SDPA it silently counts attention as zero.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from cotdistill.compute import ModelShape, forward_flops, training_flops
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


MONITORED_ALLOCATION = """
import torch
from cotdistill.compute import MemoryMonitor
monitor = MemoryMonitor(torch.device("cpu"), interval=0.001).start()
block = torch.ones(64 * 1024 * 1024 // 4)  # 64 MiB
block += 1
print(monitor.stop())
"""


def test_memory_monitor_sees_allocation():
    # in a fresh process, as the trainer measures and as MemoryMonitor's docstring asks: in the test process the
    # allocator may hand back pages earlier tests freed, which are resident already (a full CI run measured 4 KiB)
    run = subprocess.run([sys.executable, "-c", MONITORED_ALLOCATION], capture_output=True, text=True, check=True)
    assert int(run.stdout.split()[-1]) > 32 * 1024 * 1024


def _gpt2(vocab: int = 500):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=vocab, n_embd=64, n_layer=2, n_head=4, n_positions=256)
    config._attn_implementation = "eager"
    return GPT2LMHeadModel(config).eval()


def _from_config(name: str, **extra):
    import transformers

    config = getattr(transformers, f"{name}Config")(vocab_size=500, hidden_size=64, intermediate_size=96,
                                                   num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                                   **extra)
    return getattr(transformers, f"{name}ForCausalLM")(config)


ARCHITECTURES = {
    "qwen2": lambda: tiny_qwen(500, hidden=64, layers=2),
    "llama": lambda: _from_config("Llama"),
    "phi3": lambda: _from_config("Phi3", pad_token_id=0),  # fused qkv and gate_up projections
    "gemma": lambda: _from_config("Gemma", head_dim=32),  # head_dim not hidden / heads
    "gpt2": _gpt2,
}


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_layer_matmul_params_equal_the_models_own_weights(name):
    """Counted from the weights themselves: every 2-D weight inside the decoder layers (GPT-2 has a plain two-matrix
    MLP; its config has no intermediate_size, which made training a GPT-2 student fail)."""
    model = ARCHITECTURES[name]()
    shape = ModelShape.from_config(model.config)
    in_layers = sum(p.numel() for name, p in model.named_parameters()
                    if p.ndim == 2 and (".layers." in name or ".h." in name))
    assert shape.layers * shape.layer_matmul_params == in_layers


@pytest.mark.parametrize("batch, seq", [(1, 16), (2, 100)])
def test_gpt2_forward_flops_match_flop_counter(batch, seq):
    model = _gpt2()
    x = torch.randint(0, 500, (batch, seq))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(input_ids=x)
    assert forward_flops(ModelShape.from_config(model.config), batch, seq) == pytest.approx(
        counter.get_total_flops(), rel=0.10)
