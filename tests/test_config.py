from __future__ import annotations

import dataclasses

import pytest

from cotdistill.config import ConfigError, from_dict, load_config, save_config
from cotdistill.training.config import TrainConfig


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("encode:\n  truncation: lsp\n  lsp: 0.5\noptim:\n  lr: 1e-3\n")  # YAML 1.1 reads 1e-3 as str
    cfg = load_config(TrainConfig, path, ["loss.kind=jsd", "optim.batch_size=4", "encode.sections=[cot, answer]"])
    assert (cfg.encode.lsp, cfg.optim.lr, cfg.loss.kind, cfg.optim.batch_size) == (0.5, 0.001, "jsd", 4)
    assert cfg.encode.sections == ["cot", "answer"]
    save_config(cfg, tmp_path / "saved.yaml")
    assert load_config(TrainConfig, tmp_path / "saved.yaml") == cfg


def test_unknown_key_names_key_and_allowed():
    with pytest.raises(ConfigError, match=r"unknown config key in 'encode': lspp \(allowed: .*lsp"):
        load_config(TrainConfig, None, ["encode.lspp=0.5"])


def test_out_of_range_names_key_and_range():
    with pytest.raises(ConfigError, match=r"encode: lsp must be in \(0, 1\], got 1.5"):
        load_config(TrainConfig, None, ["encode.lsp=1.5"])
    with pytest.raises(ConfigError, match=r"loss: distill_ratio must be in \[0, 1\]"):
        load_config(TrainConfig, None, ["loss.distill_ratio=2"])


def test_non_number_for_a_float_field():
    with pytest.raises(ConfigError, match="optim.lr must be a number, found 'fast'"):
        load_config(TrainConfig, None, ["optim.lr=fast"])


@pytest.mark.parametrize("override, message", [
    ("optim.batch_size=2.5", "optim.batch_size must be a whole number, found 2.5"),
    ("seed=abc", "seed must be a whole number, found 'abc'"),
    ("bf16=maybe", "bf16 must be true or false, found 'maybe'"),
    ("seed=true", "seed must be a whole number, found True"),  # bool is an int in Python, never in a config
    ("optim.betas=[0.9]", "optim.betas must have 2 items, found 1"),
    ("optim.betas=[0.9, x]", r"optim.betas\[1\] must be a number, found 'x'"),
    ("optim.max_steps=[3]", "optim.max_steps must be a whole number or null, found \\[3\\]"),
    ("teacher=3", "teacher must be a string or null, found 3"),
    ("encode.sections=[cot, 7]", "encode.sections must be a string or a list, found"),
])
def test_a_value_of_the_wrong_type_names_key_type_and_value(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(TrainConfig, None, [override])


def test_values_of_the_right_type_arrive_as_the_field_type():
    cfg = load_config(TrainConfig, None, ["optim.lr=1", "optim.betas=[0.8, 0.9]", "optim.max_steps=null",
                                          "teacher=null", "encode.sections=cot"])
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert cfg.optim.betas == (0.8, 0.9) and cfg.optim.max_steps is None and cfg.teacher is None
    assert cfg.encode.sections == "cot"


@pytest.mark.parametrize("override, message", [
    ("optim.weight_decay=-0.1", "weight_decay must be >= 0"), ("optim.min_lr_ratio=5", "min_lr_ratio must be in"),
    ("optim.warmup_steps=-1", "warmup_steps must be >= 0"), ("optim.max_grad_norm=-1", "max_grad_norm must be"),
    ("optim.betas=[0.9, 1.0]", "betas must be in"), ("encode.lsp=0.5", "set truncation to 'lsp'"),
    ("encode.window=right", "set truncation to 'window'"),
])
def test_values_out_of_range_or_without_effect_are_refused(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(TrainConfig, None, [override])


TRACE = ["trace", "--samples", "s.jsonl", "--teacher", "t", "--student", "s", "--distilled", "d"]


@pytest.mark.parametrize("argv", [["eval", "world:student", "--limit", "0"], ["eval", "world:student", "--limit", "-3"],
                                  ["sweep", "--eval-limit", "0"], [*TRACE, "--limit", "0"]])
def test_zero_or_negative_counts_are_refused_on_the_command_line(argv, capsys):
    """``--limit 0`` evaluated all 300 world problems; a count below 1 is now a usage error (exit 2)."""
    from cotdistill.cli import main

    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    assert "expected a whole number >= 1" in capsys.readouterr().err


def test_zero_limits_are_refused_in_the_library():
    from cotdistill.evaluation.benchmarks import load_benchmark

    with pytest.raises(ValueError, match="limit must be >= 1"):
        load_benchmark("world", limit=0)
    assert len(load_benchmark("world", limit=1)) == 1
    with pytest.raises(ConfigError, match="max_records must be >= 1"):
        from_dict(TrainConfig, {"data": {"max_records": 0}})


@pytest.mark.parametrize("key, accepted, refused", [
    ("loss.distill_ratio", [0.0, 1.0], [-0.01, 1.01]),
    ("loss.beta", [0.0, 1.0], [-0.01, 1.01]),
    ("loss.alpha", [0.0, 0.99], [-0.01, 1.0]),
    ("loss.temperature", [0.01], [0.0, -1.0]),
    ("loss.chunk_size", [0, 1], [-1]),
    ("encode.random_mask", [0.0, 0.99], [-0.01, 1.0]),
    ("encode.max_seq_len", [2, None], [1, 0]),
    ("optim.lr", [1e-9], [0.0]),
    ("optim.batch_size", [1], [0]),
    ("optim.grad_accum", [1], [0]),
    ("optim.max_steps", [1, None], [0]),
    ("optim.epochs", [0.01], [0.0]),
    ("optim.weight_decay", [0.0], [-0.01]),
    ("optim.min_lr_ratio", [0.0, 1.0], [-0.01, 1.01]),
    ("optim.warmup_steps", [0], [-1]),
    ("optim.max_grad_norm", [0.0], [-0.01]),
    ("data.val_fraction", [0.0, 0.99], [-0.01, 1.0]),
    ("data.max_records", [1, None], [0]),
    ("pack_length", [2], [1]),
])
def test_each_bound_is_where_the_docs_put_it(key, accepted, refused):
    """Both sides of every documented range: the last accepted and the first refused value."""
    for value in accepted:
        load_config(TrainConfig, None, [f"{key}={'null' if value is None else value}"])
    for value in refused:
        with pytest.raises(ConfigError, match=key.split(".")[-1]):
            load_config(TrainConfig, None, [f"{key}={value}"])


def test_lsp_bounds_with_lead_span_truncation():
    for lsp in (0.01, 1.0):
        load_config(TrainConfig, None, ["encode.truncation=lsp", f"encode.lsp={lsp}"])
    for lsp in (0.0, 1.01):
        with pytest.raises(ConfigError, match="lsp must be in"):
            load_config(TrainConfig, None, ["encode.truncation=lsp", f"encode.lsp={lsp}"])


def test_python_users_may_pass_nested_dicts_checked_like_yaml():
    cfg = TrainConfig(optim={"lr": 1e-3, "batch_size": 2}, encode={"truncation": "lsp", "lsp": 0.5})
    assert (cfg.optim.lr, cfg.optim.batch_size, cfg.encode.lsp) == (1e-3, 2, 0.5)
    with pytest.raises(ConfigError, match="unknown config key in 'optim': lrr"):
        TrainConfig(optim={"lrr": 1e-3})
    with pytest.raises(ConfigError, match="optim must be a OptimConfig or a dict, got int"):
        TrainConfig(optim=3)


@dataclasses.dataclass
class _Shapes:
    sizes: tuple[int, ...] = (1,)
    pair: tuple[float, float] = (0.0, 1.0)
    counts: dict[str, int] | None = None
    columns: dict[str, str] | None = None


def test_variable_tuples_lists_and_mappings_are_checked_as_their_types():
    shapes = from_dict(_Shapes, {"sizes": [1, 2, 3], "pair": [2, 3], "counts": {"a": 1}})
    assert shapes.sizes == (1, 2, 3) and isinstance(shapes.sizes, tuple) and shapes.pair == (2.0, 3.0)
    with pytest.raises(ConfigError, match="pair must have 2 items"):
        from_dict(_Shapes, {"pair": [1, 2, 3]})
    with pytest.raises(ConfigError, match="counts must be a mapping or null"):
        from_dict(_Shapes, {"counts": [1, 2]})
    # a mapping-typed field given a mapping is a value, not a section to recurse into
    assert from_dict(_Shapes, {"columns": {"prompt": "question"}}).columns == {"prompt": "question"}
    assert from_dict(TrainConfig, {"data": {"fields": {"prompt": "q"}}}).data.fields == {"prompt": "q"}


def test_printed_and_saved_configs_keep_field_order_and_text_as_written(tmp_path):
    from cotdistill.config import dump_config

    config = from_dict(TrainConfig, {"data": {"system": "replace:Réfléchis étape par étape."}})
    printed = dump_config(config)
    assert printed.splitlines()[0] == "student: world:student"  # field order, not sorted keys
    assert "Réfléchis étape par étape." in printed  # readable, not \\xE9 escapes
    save_config(config, tmp_path / "new" / "folder" / "config.yaml")
    saved = (tmp_path / "new" / "folder" / "config.yaml").read_text()
    assert saved.splitlines()[0] == "student: world:student"
    assert load_config(TrainConfig, tmp_path / "new" / "folder" / "config.yaml") == config
