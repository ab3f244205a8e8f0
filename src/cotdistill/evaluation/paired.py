"""Paired statistics for two models that answered the same problems, and the spread over training seeds.

Two models scored on one benchmark answer the *same* problems, so the question "is A better than B" is asked of
the per-problem differences, not of two independent intervals: whether those overlap throws the pairing away
(0.323 vs 0.223 on 300 problems "overlapped", while the paired difference is +0.100 [+0.038, +0.162] with
McNemar's exact p = 0.002). Everything here is plain numpy and the standard library: scipy is a test-only
dependency, so the exact sign test and Student's t quantile are computed here and checked against scipy in the
tests.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np

from cotdistill.data.records import DataError
from cotdistill.errors import UserError
from cotdistill.figures import p_text

ProblemKey = tuple[int, str]  # (prompt_index, prompt) of a samples.jsonl row

Z95 = 1.96  # the normal interval of the mean difference
ALPHA = 0.05  # the level at which a sentence says a difference can or cannot be claimed
# Student's t by its exact finite series up to this many degrees of freedom (O(df) per evaluation), by the
# Cornish-Fisher expansion beyond (its error there is below 1e-12)
SERIES_MAX_DF = 1000
RESAMPLES = 10_000  # paired bootstrap resamples of a retention interval
BOOTSTRAP_CHUNK = 1 << 20  # resampled indices drawn per block: 10,000 resamples of 1,319 GSM8K problems is 100 MB


class PairingError(UserError):
    """Two result sets did not answer the same problems, so they cannot be compared problem by problem."""


# --- reading per-problem scores -------------------------------------------------------------------------------------
def _problem_score(row: dict, source: str, index: int) -> tuple[ProblemKey, float]:
    """The problem a samples.jsonl row answers and its score (``correct``: true/false or a number in [0, 1])."""
    missing = [k for k in ("prompt_index", "prompt", "correct") if k not in row]
    if missing:
        raise DataError(source, index, "the keys prompt_index, prompt and correct (samples.jsonl of `cotdistill "
                        "eval`)", f"no {', '.join(missing)} among keys {sorted(row)}")
    prompt_index, prompt, correct = row["prompt_index"], row["prompt"], row["correct"]
    if not isinstance(prompt_index, int) or isinstance(prompt_index, bool) or not isinstance(prompt, str):
        raise DataError(source, index, "an integer prompt_index and a string prompt",
                        f"{type(prompt_index).__name__} and {type(prompt).__name__}")
    if not isinstance(correct, (bool, int, float)) or not 0 <= correct <= 1:
        raise DataError(source, index, "correct as true/false or a number in [0, 1]", repr(correct))
    return (prompt_index, prompt), float(correct)


def _mean_by_problem(scored) -> dict[ProblemKey, float]:
    totals: dict[ProblemKey, list[float]] = {}
    for key, score in scored:
        totals.setdefault(key, []).append(score)
    return {key: sum(v) / len(v) for key, v in totals.items()}


def per_problem_scores(samples: list[dict]) -> dict[ProblemKey, float]:
    """The mean of ``correct`` over each problem's samples (avg@n; pass@1 with one sample), keyed
    ``(prompt_index, prompt)``. ``samples``: rows of a ``samples.jsonl``."""
    return _mean_by_problem(_problem_score(row, "samples", i) for i, row in enumerate(samples))


def load_scores(path: str | Path) -> dict[ProblemKey, float]:
    """Per-problem scores of one evaluation: ``path`` is its folder or its ``results.json``; the per-problem
    outcomes are read from the ``samples.jsonl`` beside it, and checked against ``results.json``'s problem count
    when that file is there."""
    from cotdistill.data.formats import iter_rows

    given = Path(path)
    if not given.exists():
        raise UserError(f"{given}: no such file or folder; expected an eval folder or its results.json")
    folder = given if given.is_dir() else given.parent
    samples, results = folder / "samples.jsonl", folder / "results.json"
    if not samples.is_file():
        raise UserError(f"{samples}: not found; comparing needs the per-problem outcomes that `cotdistill eval` "
                        f"writes beside results.json")
    scores = _mean_by_problem(_problem_score(row, str(samples), line) for line, row in iter_rows(str(samples)))
    if not scores:
        raise DataError(str(samples), None, "at least one sample", "no rows")
    if results.is_file():
        try:
            summary = json.loads(results.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise UserError(f"{results}: not valid JSON ({err})") from None
        n = summary.get("n") if isinstance(summary, dict) else None
        if isinstance(n, int) and n != len(scores):
            raise UserError(f"{results} says n = {n} problems but {samples} holds {len(scores)}: the two files "
                            f"are from different runs")
    return scores


# --- the exact sign test (McNemar's exact test for 0/1 scores) ------------------------------------------------------
def sign_test_p(a_better: int, b_better: int) -> float:
    """Two-sided exact sign test of ``a_better`` against ``b_better`` (problems where A scored higher / lower):
    ``min(1, 2·P(X <= min(a_better, b_better)))`` for ``X ~ Binomial(a_better + b_better, 1/2)``. For p = 1/2 the
    binomial is symmetric, so this equals the sum of every outcome's probability that is <= the observed one
    (``scipy.stats.binomtest(k, n, 0.5).pvalue``). With 0/1 scores the two counts are the discordant pairs and
    this is McNemar's exact test. No pair differs (n = 0): p = 1."""
    n, k = a_better + b_better, min(a_better, b_better)
    if n == 0:
        return 1.0
    # exact integers: C(n, i+1) = C(n, i)·(n-i)/(i+1) is always whole; int / int rounds correctly at any size
    term = tail = 1
    for i in range(k):
        term = term * (n - i) // (i + 1)
        tail += term
    return min(1.0, 2 * tail / (1 << n))


# --- Student's t ----------------------------------------------------------------------------------------------------
def _t_central(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with integer ``df``: the finite series of Abramowitz & Stegun 26.7.3 (odd df)
    and 26.7.4 (even df) in theta = atan(t / sqrt(df)); every term is positive, so nothing cancels."""
    theta = math.atan(t / math.sqrt(df))
    cos2, sin = math.cos(theta) ** 2, math.sin(theta)
    if df % 2 == 0:
        term = total = 1.0
        for j in range(1, (df - 2) // 2 + 1):
            term *= cos2 * (2 * j - 1) / (2 * j)
            total += term
        return sin * total
    if df == 1:
        return 2 * theta / math.pi
    term = total = math.cos(theta)
    for j in range(1, (df - 3) // 2 + 1):
        term *= cos2 * (2 * j) / (2 * j + 1)
        total += term
    return 2 / math.pi * (theta + sin * total)


def _t_cornish_fisher(q: float, df: int) -> float:
    """Abramowitz & Stegun 26.7.5: the t quantile as the normal one plus terms in 1/df (for large df)."""
    z = NormalDist().inv_cdf(q)
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def t_quantile(df: int, q: float = 0.975) -> float:
    """The ``q`` quantile (0.5 < q < 1) of Student's t with ``df`` degrees of freedom: bisection on the exact
    series up to ``SERIES_MAX_DF`` (to ~1e-12), the Cornish-Fisher expansion beyond."""
    if isinstance(df, bool) or not isinstance(df, int) or df < 1:
        raise ValueError(f"degrees of freedom must be a whole number >= 1, got {df!r}")
    if not 0.5 < q < 1:
        raise ValueError(f"q must be in (0.5, 1), got {q}")
    if df > SERIES_MAX_DF:
        return _t_cornish_fisher(q, df)
    target, lo, hi = 2 * q - 1, 0.0, 1.0
    while _t_central(hi, df) < target:
        lo, hi = hi, 2 * hi
    while hi - lo > 1e-13 * hi:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _t_central(mid, df) < target else (lo, mid)
    return (lo + hi) / 2


# --- the comparison --------------------------------------------------------------------------------------------------
def format_p(p: float, label: str = "p") -> str:
    return f"{label} {p_text(p)}" if p < 0.001 else f"{label} = {p_text(p)}"


def format_difference(diff: float, ci: tuple[float, float] | list[float], p: float, *, digits: int = 3,
                      p_label: str = "p") -> str:
    """``+0.100 [+0.038, +0.162], p = 0.002``: signs always shown, a p below 0.001 as ``p < 0.001``."""
    return f"{diff:+.{digits}f} [{ci[0]:+.{digits}f}, {ci[1]:+.{digits}f}], {format_p(p, p_label)}"


@dataclass(frozen=True)
class PairedComparison:
    """A against B on the same ``n`` problems."""
    n: int
    mean_a: float
    mean_b: float
    difference: float  # mean_a - mean_b
    ci95: tuple[float, float]  # mean difference ± 1.96·sd/√n, sd of the per-problem differences with n - 1
    a_better: int  # problems where A scored higher (with 0/1 scores: solved by A only)
    b_better: int
    p_value: float  # exact two-sided sign test on (a_better, b_better)
    test: str = "McNemar"  # the p-value's name: McNemar's exact test for 0/1 scores, the sign test for averages

    @property
    def difference_claimed(self) -> bool:
        """At level 0.05 both ways of asking agree: the interval excludes 0 and p < 0.05."""
        return (self.ci95[0] > 0 or self.ci95[1] < 0) and self.p_value < ALPHA

    def sentence(self, name_a: str, name_b: str) -> str:
        figures = format_difference(self.difference, self.ci95, self.p_value, p_label=f"{self.test} p")
        head = f"{name_a} vs {name_b}: {figures} ({self.a_better} vs {self.b_better} problems)"
        if self.difference_claimed:
            return f"{head}; a difference can be claimed at {ALPHA}: {name_a if self.difference > 0 else name_b} " \
                   f"scores higher"
        return f"{head}; no difference can be claimed at {ALPHA}"

    def to_dict(self) -> dict:
        return {**asdict(self), "ci95": list(self.ci95), "difference_claimed": self.difference_claimed}


def compare_scores(a: dict[ProblemKey, float], b: dict[ProblemKey, float]) -> PairedComparison:
    """A's per-problem scores against B's: the paired difference, its normal interval, and the exact sign test."""
    only_a, only_b = len(a.keys() - b.keys()), len(b.keys() - a.keys())
    if only_a or only_b:
        raise PairingError(f"the two result sets did not answer the same problems: {only_a} only in the first, "
                           f"{only_b} only in the second (of {len(a)} and {len(b)}); compare evaluations of one "
                           f"benchmark with the same split, limit and prompt template")
    if not a:
        raise PairingError("no problems to compare: both result sets are empty")
    keys = sorted(a)
    x, y = np.array([a[k] for k in keys]), np.array([b[k] for k in keys])
    d = x - y
    n, mean = len(d), float(d.mean())
    half = Z95 * float(d.std(ddof=1)) / math.sqrt(n) if n > 1 else math.nan
    a_better, b_better = int((d > 0).sum()), int((d < 0).sum())
    binary = bool(np.isin(x, (0.0, 1.0)).all() and np.isin(y, (0.0, 1.0)).all())
    return PairedComparison(n=n, mean_a=float(x.mean()), mean_b=float(y.mean()), difference=mean,
                            ci95=(mean - half, mean + half), a_better=a_better, b_better=b_better,
                            p_value=sign_test_p(a_better, b_better), test="McNemar" if binary else "sign test")


def retention_interval(scores: dict[ProblemKey, float], reference: dict[ProblemKey, float], *,
                       resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float, float]:
    """(ratio, low, high): ``mean(scores) / mean(reference)`` on the problems both answered, and its 95% paired
    bootstrap interval: each resample draws problems with replacement once and scores both models on them (the
    pairing kept); the interval is the 2.5th and 97.5th percentile of the resampled ratios. A resample whose
    reference mean is 0 has no ratio and is dropped; ratio and bounds are nan when none is left."""
    keys = sorted(scores.keys() & reference.keys())
    if not keys:
        raise PairingError(f"no problem in common between the two result sets (of {len(scores)} and "
                           f"{len(reference)})")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    s, r = np.array([scores[k] for k in keys]), np.array([reference[k] for k in keys])
    ratio = float(s.mean() / r.mean()) if r.mean() > 0 else math.nan
    rng, n, ratios = np.random.default_rng(seed), len(keys), []
    per_block = max(1, BOOTSTRAP_CHUNK // n)
    for start in range(0, resamples, per_block):
        idx = rng.integers(0, n, size=(min(per_block, resamples - start), n))
        num, den = s[idx].mean(axis=1), r[idx].mean(axis=1)
        ratios.append(num[den > 0] / den[den > 0])
    kept = np.concatenate(ratios)
    if not kept.size:
        return ratio, math.nan, math.nan
    low, high = np.percentile(kept, [2.5, 97.5])
    return ratio, float(low), float(high)


def format_retention(ratio: float, low: float, high: float, *, digits: int = 3) -> str:
    """``0.850 [0.780, 0.930]``: a ratio and its interval."""
    return f"{ratio:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def seed_summary(values: list[float]) -> dict:
    """One figure over several training seeds: mean, sd (n - 1) and the 95% interval of the mean with Student's t
    (df = n - 1). One seed has no spread: sd and the interval are nan (none: the mean too)."""
    n = len(values)
    mean = sum(values) / n if n else math.nan
    if n < 2:
        return {"mean": mean, "sd": math.nan, "n": n, "ci95": [math.nan, math.nan]}
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile(n - 1) * sd / math.sqrt(n)
    return {"mean": mean, "sd": sd, "n": n, "ci95": [mean - half, mean + half]}
