"""``cotdistill compare A B``: two evaluations of the same problems, compared problem by problem.

Reads each evaluation's per-problem outcomes (``samples.jsonl`` beside ``results.json``) and reports the paired
difference A - B with its 95% interval and McNemar's exact p-value, and A's retention of B's accuracy
(``mean(A) / mean(B)``, e.g. a truncated run against LSP 1.0) with a paired bootstrap interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cotdistill.config import AT_LEAST_ONE, ConfigError, check_field_rules
from cotdistill.evaluation.paired import RESAMPLES, compare_scores, format_retention, load_scores, retention_interval


@dataclass
class CompareConfig:
    results: list[str] = field(default_factory=list)  # A then B: eval folders or their results.json
    names: list[str] = field(default_factory=list)  # what the sentences call A and B (none: the paths as given)
    resamples: int = field(default=RESAMPLES, metadata={
        "help": "paired bootstrap resamples of the retention interval", "range": AT_LEAST_ONE})
    seed: int = 0  # of the bootstrap
    json: bool = False  # one JSON object instead of the sentences

    def __post_init__(self) -> None:
        check_field_rules(self)
        # none given is a config still to be completed (--print-config); run_compare asks for the two
        if len(self.results) not in (0, 2):
            raise ValueError(f"results must name two evaluations (A and B), found {len(self.results)}: "
                             f"{' '.join(self.results)}")
        if self.names and len(self.names) != 2:
            raise ValueError(f"names must be two (A,B), found {len(self.names)}: {','.join(self.names)}")


def _default_name(path: str) -> str:
    """An evaluation as the user named it, without the file: sweep points all end in ``eval/results.json``."""
    given = Path(path)
    return str(given.parent if given.suffix in (".json", ".jsonl") else given)


def run_compare(config: CompareConfig) -> dict:
    """The comparison of A with B as a dict: ``names``, ``results`` (the paths), ``comparison`` (the paired
    figures), ``retention`` (ratio, ci95, resamples, seed) and the two ``sentences`` to print."""
    if not config.results:
        raise ConfigError("compare needs two evaluations: RESULTS_A RESULTS_B (eval folders or their results.json)")
    path_a, path_b = config.results
    name_a, name_b = config.names or [_default_name(path_a), _default_name(path_b)]
    scores_a, scores_b = load_scores(path_a), load_scores(path_b)
    comparison = compare_scores(scores_a, scores_b)
    ratio, low, high = retention_interval(scores_a, scores_b, resamples=config.resamples, seed=config.seed)
    retention = (f"retention of {name_a} relative to {name_b}: {format_retention(ratio, low, high)} "
                 f"(paired bootstrap over {comparison.n} problems, {config.resamples} resamples)")
    return {"names": [name_a, name_b], "results": [path_a, path_b], "comparison": comparison.to_dict(),
            "retention": {"ratio": ratio, "ci95": [low, high], "resamples": config.resamples, "seed": config.seed},
            "sentences": [comparison.sentence(name_a, name_b), retention]}
