from __future__ import annotations

import dataclasses

import pytest
import yaml

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
    ("packing=maybe", "packing must be true or false, found 'maybe'"),
    ("seed=true", "seed must be a whole number, found True"),  # bool is an int in Python, never in a config
    ("optim.betas=[0.9]", "optim.betas must have 2 items, found 1"),
    ("optim.betas=[0.9, x]", r"optim.betas\[1\] must be a number, found 'x'"),
    ("optim.max_steps=[3]", "optim.max_steps must be a whole number or null, found '\\[3\\]'"),
    ("encode.sections=[cot, 7]", r"encode.sections\[1\] must be a string, found 7 \(int\)"),
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
    ("optim.betas=[0.9, 1.0]", r"betas\[1\] must be in \[0, 1\), got 1.0"),
    ("encode.lsp=0.5", "set truncation to 'lsp'"),
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
    keys = [line for line in printed.splitlines() if not line.lstrip().startswith("#")]
    assert keys[0] == "student: world:student"  # field order, not sorted keys
    assert "Réfléchis étape par étape." in printed  # readable, not \\xE9 escapes
    save_config(config, tmp_path / "new" / "folder" / "config.yaml")
    saved = (tmp_path / "new" / "folder" / "config.yaml").read_text()
    assert saved.splitlines()[0] == "student: world:student"
    assert load_config(TrainConfig, tmp_path / "new" / "folder" / "config.yaml") == config


# --- issue 26: an override arrives as typed; every number finite and bounded; YAML without aliases or twice-given keys
SYSTEM = "Think step by step. End with #### N"


@pytest.mark.parametrize("override, expected", [
    (f"data.system=replace:{SYSTEM}", ("data", "system", f"replace:{SYSTEM}")),  # YAML cut it at " #"
    ("data.path=my #1.jsonl", ("data", "path", "my #1.jsonl")),  # YAML made it the hub id "my"
    ("data.path=123", ("data", "path", "123")),  # a string field takes digits as text
    ("data.path=true", ("data", "path", "true")),
    ("data.split='test'", ("data", "split", "'test'")),  # as typed: the shell already took its quotes
    ("data.subset=none", ("data", "subset", None)),  # a field that may be null reads null / none / ~
    ("data.subset=NULL", ("data", "subset", None)),
    ("data.fields={prompt: question}", ("data", "fields", {"prompt": "question"})),  # mappings: YAML flow syntax
    ("data.fields.prompt=my #q", ("data", "fields", {"prompt": "my #q"})),  # into a mapping: its value type
    ("optim.lr=1e-3", ("optim", "lr", 1e-3)),
    ("optim.max_steps=1e3", ("optim", "max_steps", 1000)),  # a whole number written as a float
    ("optim.max_steps=~", ("optim", "max_steps", None)),
    ("packing=off", (None, "packing", False)),
    ("bf16=off", (None, "precision", "fp32")),  # the old key, read as the new one
])
def test_an_override_arrives_as_the_field_reads_it(override, expected):
    section, key, value = expected
    cfg = load_config(TrainConfig, None, [override])
    got = getattr(getattr(cfg, section) if section else cfg, key)
    assert got == value and type(got) is type(value)


def test_an_override_of_a_number_is_the_whole_text_with_nothing_cut():
    with pytest.raises(ConfigError, match=r"seed must be a whole number, found '1 #2'"):
        load_config(TrainConfig, None, ["seed=1 #2"])  # YAML read 1 and dropped the rest as a comment


def test_eval_system_and_train_data_system_are_the_same_text(capsys):
    import yaml

    from cotdistill.cli import main

    assert main(["eval", "world:student", "--system", SYSTEM, "--print-config"]) == 0
    evaluated = yaml.safe_load(capsys.readouterr().out)["eval"]["system"]
    assert main(["train", f"data.system=replace:{SYSTEM}", "--print-config"]) == 0
    trained = yaml.safe_load(capsys.readouterr().out)["data"]["system"]
    assert evaluated == SYSTEM and trained == f"replace:{SYSTEM}"


def test_the_python_api_types_its_overrides_too():
    from cotdistill.api import train_config

    assert train_config({}, [f"data.system=replace:{SYSTEM}"]).data.system == f"replace:{SYSTEM}"


@pytest.mark.parametrize("overrides, message", [
    (["optim.lr=1", "optim.lr.x=2"], r"optim.lr.x: optim.lr is a number, not a section"),
    (["optim.lr.x=2", "optim.lr=1"], r"optim.lr.x: optim.lr is a number, not a section"),
    (["data.fields.prompt.x=q"], r"data.fields.prompt.x: data.fields.prompt is a string, not a section"),
    (["nosuch=1", "nosuch.x=2"], r"nosuch.x: nosuch was set to a value by an earlier override"),
])
def test_an_override_through_a_value_is_an_error(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(TrainConfig, None, overrides)


@pytest.mark.parametrize("override, message", [
    ("optim.lr=.nan", "optim.lr must be a finite number, found nan"),  # AdamW refused it after the models loaded
    ("optim.lr=nan", "optim.lr must be a finite number, found 'nan'"),
    ("optim.epochs=.nan", "optim.epochs must be a finite number"),
    ("optim.epochs=.inf", "optim.epochs must be a finite number, found inf"),  # trained forever
    ("optim.max_grad_norm=.nan", "optim.max_grad_norm must be a finite number"),  # turned clipping off
    ("optim.betas=[0.9, .nan]", r"optim.betas\[1\] must be a finite number"),
    ("loss.temperature=-.inf", "loss.temperature must be a finite number"),
    ("data.val_fraction=.nan", "data.val_fraction must be a finite number"),
    ("eval_every=.nan", "eval_every must be a finite number"),
    ("optim.warmup_ratio=.nan", "optim.warmup_ratio must be a finite number"),
    ("seed=100000000000000000000000000000", r"seed must be a whole number in \[-2\*\*63, 2\*\*63\), found 10{28}"),
    ("seed=1e29", r"seed must be a whole number in \[-2\*\*63, 2\*\*63\), found '1e29'"),
    ("optim.max_steps=.inf", "optim.max_steps must be a finite number"),
    ("pad_to_multiple_of=-3", r"pad_to_multiple_of must be >= 0 or null \(0 or null: no rounding\), got -3"),
])
def test_every_number_is_finite_and_bounded(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(TrainConfig, None, [override])


def test_non_finite_numbers_are_refused_from_python_and_from_flags_too():
    with pytest.raises(ConfigError, match="optim.lr must be a finite number, found nan"):
        from_dict(TrainConfig, {"optim": {"lr": float("nan")}})
    with pytest.raises(ConfigError, match="optim.lr must be a finite number"):
        TrainConfig(optim={"lr": float("inf")})
    from cotdistill.stages.evaluate import EvalConfig
    from cotdistill.stages.teacher_cache import TeacherCacheConfig

    with pytest.raises(ConfigError, match="eval.temperature must be a finite number, found nan"):
        load_config(EvalConfig, None, values={"eval": {"temperature": float("nan")}})  # eval --temperature nan
    with pytest.raises(ConfigError, match="kl_target must be a finite number, found nan"):
        load_config(TeacherCacheConfig, None, values={"kl_target": float("nan")})  # teacher cache --kl-target nan


def test_whole_numbers_are_accepted_in_any_spelling_up_to_the_bound():
    assert load_config(TrainConfig, None, [f"seed={2**63 - 1}"]).seed == 2**63 - 1
    assert load_config(TrainConfig, None, [f"seed={-2**63}"]).seed == -2**63
    with pytest.raises(ConfigError, match="seed must be a whole number in"):
        load_config(TrainConfig, None, [f"seed={2**63}"])
    assert from_dict(TrainConfig, {"optim": {"batch_size": 4.0}}).optim.batch_size == 4  # a JSON writer's 4.0
    for value in (0, 1, None):
        load_config(TrainConfig, None, [f"pad_to_multiple_of={'null' if value is None else value}"])


@pytest.mark.parametrize("data, message", [
    ({"data": {"fields": {"prompt": ["a", "b"]}}}, r"data.fields.prompt must be a string, found \['a', 'b'\]"),
    ({"data": {"fields": {"prompt": 3}}}, "data.fields.prompt must be a string, found 3"),
    ({"data": {"fields": {1: "q"}}}, "data.fields keys must be strings, found 1"),
    ({1: "x"}, r"config keys must be strings, found 1 \(int\)"),
    ({None: "x"}, r"config keys must be strings, found None \(NoneType\)"),
    ({"optim": {None: 1}}, r"config keys in 'optim' must be strings, found None"),
    ({"teacher": 3}, "teacher must be a string or null, found 3"),
])
def test_keys_are_strings_and_values_of_mappings_have_their_type(data, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(TrainConfig, data)


def test_a_huge_value_is_shown_short_in_the_error():
    with pytest.raises(ConfigError) as caught:
        from_dict(TrainConfig, {"data": {"fields": {"prompt": [["x"] * 1000] * 1000}}})
    assert len(str(caught.value)) < 300


def test_yaml_aliases_are_refused_before_they_expand(tmp_path):
    """A 262-byte file of nested aliases printed 1.3 MB; one level deeper hung: a config needs no aliases."""
    path = tmp_path / "laughs.yaml"
    levels = ["    prompt: &a [x, x, x, x, x, x, x, x, x]"]
    levels += [f"    {k}: &{n} [{', '.join([f'*{p}'] * 9)}]" for k, n, p in (("cot", "b", "a"), ("answer", "c", "b"))]
    path.write_text("data:\n  fields:\n" + "\n".join(levels) + "\n")
    with pytest.raises(ConfigError, match=r"laughs.yaml: line 4, column 14: an alias \(\*a\) repeats"):
        load_config(TrainConfig, path)
    with pytest.raises(ConfigError, match=r"alias \(\*a\)"):
        load_config(TrainConfig, None, ["report_to=[&a x, *a]"])


@pytest.mark.parametrize("text, message", [
    ("seed: 1\noptim:\n  lr: 0.1\nseed: 2\n",
     r"c.yaml: line 4, column 1: key 'seed' is given twice \(first on line 1\)"),  # the last silently won
    ("optim:\n  lr: 0.1\n  batch_size: 2\n  lr: 0.2\n",
     r"line 4, column 3: key 'lr' is given twice \(first on line 2\)"),
    ("1: x\n", r"config keys must be strings, found 1 \(int\)"),
    ("null: x\n", r"config keys must be strings, found None \(NoneType\)"),
])
def test_yaml_keys_are_given_once_and_are_strings(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(TrainConfig, path)


def test_threads_are_bounded_by_the_cores(monkeypatch):
    """``threads=100000`` segfaulted in torch: at most four threads per core this process may use."""
    from cotdistill import threads

    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    assert load_config(TrainConfig, None, ["threads=8"]).threads == 8
    with pytest.raises(ConfigError, match=r"threads must be >= 1 and at most 8 \(4 per core this process may use\), "
                                          "or null; got 9"):
        load_config(TrainConfig, None, ["threads=9"])
    with pytest.raises(ConfigError, match=r"threads must be >= 1 and at most 8"):
        threads.configure_threads(100000)  # --threads 100000: refused before torch sees it


@pytest.mark.parametrize("keep, message", [
    (1.5, r"keep must be > 0 and, above 1, a whole count: a share in \(0, 1\] or a count such as 100; got 1.5"),
    (0, "keep must be > 0"), (float("inf"), "keep must be a finite number"), (float("nan"), "finite number"),
])
def test_select_keep_is_a_share_or_a_whole_count(keep, message):
    from cotdistill.stages.select import SelectConfig
    from cotdistill.stages.select_experiment import SelectExperimentConfig

    for cls in (SelectConfig, SelectExperimentConfig):
        with pytest.raises(ConfigError, match=message):
            load_config(cls, None, values={"keep": keep})
    for good in (0.5, 1.0, 2.0):
        assert load_config(SelectConfig, None, values={"keep": good}).keep == good


# --- one owner per rule: a string setting is a Literal the loader checks; a range and a help text live on the field
def test_a_literal_field_refuses_a_value_from_yaml_and_from_python(tmp_path):
    from cotdistill.data.encode import TRUNCATIONS, EncodeConfig

    path = tmp_path / "train.yaml"
    path.write_text("encode:\n  truncation: lsp_half\n")
    expected = f"encode.truncation must be one of {', '.join(TRUNCATIONS)}, found 'lsp_half'"
    with pytest.raises(ConfigError) as err:
        load_config(TrainConfig, path)
    assert str(err.value) == expected
    with pytest.raises(ConfigError, match="encode.truncation must be one of none, lsp,"):
        load_config(TrainConfig, None, ["encode.truncation=lsp_half"])
    with pytest.raises(ValueError, match=r"^truncation must be one of none, lsp, .*, found 'bad'$"):
        EncodeConfig(truncation="bad")
    with pytest.raises(ValueError, match="device must be one of auto, cpu, cuda, found 'gpu'"):
        TrainConfig(device="gpu")
    with pytest.raises(ConfigError, match="^data.format must be one of auto, cot, messages, sharegpt, gsm8k, found"):
        TrainConfig(data={"format": "csv"})
    assert load_config(TrainConfig, None, ["encode.truncation=none"]).encode.truncation == "none"  # not null


def test_a_literal_that_may_be_null_takes_null_or_one_of_its_values():
    from cotdistill.stages.world_build import WorldBuildConfig

    assert from_dict(WorldBuildConfig, {"only": None}).only is None
    assert from_dict(WorldBuildConfig, {"only": "teacher"}).only == "teacher"
    with pytest.raises(ConfigError, match="only must be one of tokenizer, teacher, student, measure or null, found 3"):
        from_dict(WorldBuildConfig, {"only": 3})


def test_the_tuple_constants_are_the_literals_values():
    import typing

    from cotdistill.data.encode import TRUNCATIONS, WINDOWS, Truncation, Window
    from cotdistill.losses import KD_KINDS, KdKind

    assert typing.get_args(Truncation) == TRUNCATIONS and "lsp_keep_tail" in TRUNCATIONS
    assert WINDOWS == ("left", "middle", "right") and typing.get_args(Window) == WINDOWS
    assert typing.get_args(KdKind) == KD_KINDS


def test_a_range_on_the_field_is_checked_for_python_and_for_each_item():
    from cotdistill.config import FRACTION, Range, check_range
    from cotdistill.stages.sweep import SweepConfig

    assert str(FRACTION) == "in (0, 1]" and str(Range(1)) == ">= 1" and str(Range(0, low_open=True)) == "> 0"
    with pytest.raises(ConfigError, match=r"^lsps\[1\] must be in \(0, 1\], got 1.5$"):
        SweepConfig(lsps=[0.5, 1.5])
    with pytest.raises(ConfigError, match=r"^max_steps must be >= 1 or null, got 0$"):
        check_range("max_steps", 0, Range(1), nullable=True)
    with pytest.raises(ConfigError, match=r"max_grad_norm must be >= 0 \(0 disables clipping\), got -1"):
        from_dict(TrainConfig, {"optim": {"max_grad_norm": -1}})


def test_help_lives_on_the_field_and_the_printed_config_shows_it():
    from cotdistill.config import dump_config, field_help

    assert field_help(TrainConfig, "optim.lr") == "the peak learning rate; > 0"
    assert field_help(TrainConfig, "encode.window").endswith("one of left, middle, right")
    printed = dump_config(TrainConfig()).splitlines()
    lr = printed.index("  lr: 0.0005")
    assert printed[lr - 1] == "  # the peak learning rate; > 0"
    assert load_config(TrainConfig, None, values=yaml.safe_load("\n".join(printed))) == TrainConfig()
