"""The Python entry points: ``cotdistill.train`` and ``cotdistill.evaluate``.

Each takes what a notebook has at hand — a config as a dataclass, a dict or a YAML path; models, tokenizers and
datasets already loaded or named by path / hub id — and checks the types at once, before anything runs (a dict
where a config belongs used to fail deep in the trainer).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cotdistill.config import ConfigError, from_dict, load_config


def _check(name: str, value: Any, allowed: tuple[type, ...], wanted: str) -> None:
    if value is not None and not isinstance(value, allowed):
        raise ConfigError(f"{name} must be {wanted}, got {type(value).__name__}")


def _model_types() -> tuple[type, ...]:
    from transformers import PreTrainedModel

    return (str, PreTrainedModel)


def _tokenizer_types() -> tuple[type, ...]:
    from transformers import PreTrainedTokenizerBase

    return (str, PreTrainedTokenizerBase)


def _data_types() -> tuple[type, ...]:
    import datasets

    return (str, Path, datasets.Dataset, list)


def _name_of(model) -> str:
    """What config.yaml records for a model passed as an object: where it was loaded from, if anywhere."""
    return getattr(model, "name_or_path", "") or f"<in-memory {type(model).__name__}>"


def train_config(config=None, overrides: list[str] | None = None):
    """A ``TrainConfig`` from a ``TrainConfig``, a dict, a YAML path or ``None`` (the defaults), then overrides."""
    from cotdistill.config import merge, parse_overrides, to_dict
    from cotdistill.training.config import TrainConfig

    if isinstance(config, (str, Path)) and not Path(config).is_file():  # the library's error, not FileNotFoundError
        what = "a folder" if Path(config).is_dir() else "nothing there"
        raise ConfigError(f"config {config}: expected a YAML file, found {what}")
    if config is None or isinstance(config, (str, Path)):
        return load_config(TrainConfig, config, overrides)
    if isinstance(config, TrainConfig):
        config = to_dict(config)
    if not isinstance(config, dict):
        raise ConfigError(f"config must be a TrainConfig, a dict or a YAML path, got {type(config).__name__}")
    return from_dict(TrainConfig, merge(config, parse_overrides(overrides or [], TrainConfig)))


def train(config=None, *, student=None, teacher=None, tokenizer=None, data=None, val_data=None,
          overrides: list[str] | None = None) -> dict:
    """Train a student and return the run summary (``final_model`` is where the weights are).

    ``config``: a ``TrainConfig``, a dict of the YAML's shape, or a YAML path. ``student`` / ``teacher``: a path,
    hub id or a loaded ``PreTrainedModel``; ``tokenizer``: a path or a loaded tokenizer (needed with a student
    object); ``data`` / ``val_data``: a path, hub id, ``datasets.Dataset`` or list of rows. Objects take the
    place of the config's names.
    """
    from cotdistill.stages.train import run_training
    from cotdistill.training.loop import GivenObjects

    _check("student", student, _model_types(), "a path, hub id or transformers PreTrainedModel")
    _check("teacher", teacher, _model_types(), "a path, hub id or transformers PreTrainedModel")
    _check("tokenizer", tokenizer, _tokenizer_types(), "a path, hub id or transformers tokenizer")
    _check("data", data, _data_types(), "a path, hub id, datasets.Dataset or list of rows")
    _check("val_data", val_data, _data_types(), "a path, hub id, datasets.Dataset or list of rows")
    cfg = train_config(config, overrides)
    given = GivenObjects()
    for name, value in (("student", student), ("teacher", teacher), ("tokenizer", tokenizer)):
        if isinstance(value, str):
            setattr(cfg, name, value)
        elif value is not None:
            setattr(given, name, value)
            if name != "tokenizer":
                setattr(cfg, name, _name_of(value))
    for name, value in (("path", data), ("val_path", val_data)):
        if isinstance(value, (str, Path)):
            setattr(cfg.data, name, str(value))
        elif value is not None:
            setattr(given, "data" if name == "path" else "val_data", value)
            setattr(cfg.data, name, f"<in-memory {type(value).__name__}>")
    return run_training(cfg, given)


def evaluate(model, tokenizer=None, *, spec=None, data=None, out_dir: str | Path | None = None,
             device: str = "auto", progress: bool = True, **settings) -> dict:
    """Generate, extract and grade ``model`` on a benchmark; returns the results dict (``accuracy``, ``ci95``,
    ``pass@k`` …) and writes ``results.json`` + ``samples.jsonl`` to ``out_dir`` when given.

    ``model``: a path, hub id or loaded ``PreTrainedModel`` (then ``tokenizer`` is needed: a path or object);
    ``spec``: an ``EvalSpec`` or a dict of the ``eval:`` section of a config; or its keys as keywords
    (``bench="gsm8k", limit=100, max_new_tokens=512`` …: every ``EvalSpec`` field, with its defaults), never both;
    ``data``: a file, dataset folder, hub id, ``datasets.Dataset`` or list of rows for benchmarks read from data.
    """
    from cotdistill.evaluation.benchmarks import evaluate_model
    from cotdistill.evaluation.spec import EvalSpec

    _check("model", model, _model_types(), "a path, hub id or transformers PreTrainedModel")
    _check("tokenizer", tokenizer, _tokenizer_types(), "a path, hub id or transformers tokenizer")
    _check("data", data, _data_types(), "a path, hub id, datasets.Dataset or list of rows")
    _check("spec", spec, (EvalSpec, dict), "an EvalSpec or a dict of its keys")
    if model is None:
        raise ConfigError("model must be a path, hub id or transformers PreTrainedModel, got None")
    rows_given = data is not None and not isinstance(data, (str, Path))
    if spec is not None and (settings or (data is not None and not rows_given)):
        # one place for each setting: a keyword the spec would silently override is refused
        raise ConfigError(f"give {', '.join(settings) or 'data'} in spec, not as keywords next to it (rows in "
                          "memory may still be passed as data=)")
    if spec is None:
        spec = {**settings, **({"data": str(data)} if data is not None and not rows_given else {})}
    if isinstance(spec, dict):
        spec = from_dict(EvalSpec, spec, "spec")
    return evaluate_model(model, spec, tokenizer=tokenizer, rows=data if rows_given else None, out_dir=out_dir,
                          progress=progress, device=device)
