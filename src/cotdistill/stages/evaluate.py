"""``cotdistill eval``: one model on one benchmark, as an ``eval`` spec says."""

from __future__ import annotations

from dataclasses import dataclass, field

from cotdistill.config import ConfigError
from cotdistill.evaluation.spec import EvalSpec
from cotdistill.outputs import claim_output, eval_inputs


@dataclass
class EvalConfig:
    model: str = ""  # path, hub id or world:NAME
    eval: EvalSpec = field(default_factory=EvalSpec)
    out: str = "runs/eval"  # results.json and samples.jsonl
    device: str = "auto"


def run_eval(config: EvalConfig, *, progress: bool = True) -> dict:
    from cotdistill.evaluation.benchmarks import evaluate_model

    if not config.model:
        raise ConfigError("eval needs a model: a path, hub id or world:NAME")
    # before the model loads: an --out that holds the data (or is a file, or is read-only, or is being written by
    # another eval) used to be found only after all the generation, or never
    with claim_output(config.out, "--out (out)", [config.model, *eval_inputs(config.eval)]):
        return evaluate_model(config.model, config.eval, out_dir=config.out, progress=progress, device=config.device)
