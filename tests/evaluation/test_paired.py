"""Paired statistics: each against a hand computation, and against scipy where scipy has the statistic."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from cotdistill.data.records import DataError
from cotdistill.errors import UserError
from cotdistill.evaluation import paired
from cotdistill.evaluation.paired import (
    PairingError,
    compare_scores,
    format_difference,
    load_scores,
    per_problem_scores,
    retention_interval,
    seed_summary,
    sign_test_p,
    t_quantile,
)


def _scores(values) -> dict:
    return {(i, f"problem {i}"): float(v) for i, v in enumerate(values)}


def _issue_example() -> tuple[dict, dict]:
    """300 problems: 36 solved by both, 61 by A only, 31 by B only, 172 by neither (A 97/300, B 67/300)."""
    a = [1] * 36 + [1] * 61 + [0] * 31 + [0] * 172
    b = [1] * 36 + [0] * 61 + [1] * 31 + [0] * 172
    return _scores(a), _scores(b)


def test_a_small_comparison_by_hand():
    # d = a - b = [1, 0, 0, 1, -1]: mean 0.2; sum d^2 = 3, var = (3 - 5 * 0.2^2) / 4 = 0.7;
    # half width = 1.96 * sqrt(0.7) / sqrt(5) = 1.96 * 0.3741657 = 0.7333648
    # discordant 2 vs 1: p = 2 * P(X <= 1 | n=3) = 2 * (1 + 3) / 8 = 1 (capped)
    got = compare_scores(_scores([1, 1, 0, 1, 0]), _scores([0, 1, 0, 0, 1]))
    assert (got.n, got.a_better, got.b_better, got.test) == (5, 2, 1, "McNemar")
    assert (got.mean_a, got.mean_b, got.difference) == pytest.approx((0.6, 0.4, 0.2))
    assert got.ci95 == pytest.approx((0.2 - 0.7333648, 0.2 + 0.7333648), abs=1e-7)
    assert got.p_value == 1.0 and not got.difference_claimed


def test_the_issues_example_is_a_claimable_difference():
    # d: 61 ones, 31 minus ones, 208 zeros: mean 30/300 = 0.1; var = (92 - 300 * 0.01) / 299 = 89/299;
    # half = 1.96 * sqrt(89/299) / sqrt(300) = 1.96 * 0.0314993 = 0.0617387 -> [0.0383, 0.1617]
    got = compare_scores(*_issue_example())
    assert (got.mean_a, got.mean_b) == pytest.approx((97 / 300, 67 / 300))
    assert got.difference == pytest.approx(0.1)
    assert got.ci95 == pytest.approx((0.1 - 0.0617387, 0.1 + 0.0617387), abs=1e-6)
    assert (got.a_better, got.b_better) == (61, 31)
    assert got.p_value == pytest.approx(0.0023146, abs=1e-6)  # 2 * P(X <= 31 | n=92, 1/2)
    assert got.sentence("distilled LSP 1.0", "original student") == (
        "distilled LSP 1.0 vs original student: +0.100 [+0.038, +0.162], McNemar p = 0.002 (61 vs 31 problems); "
        "a difference can be claimed at 0.05: distilled LSP 1.0 scores higher")
    as_dict = got.to_dict()
    assert as_dict["ci95"] == list(got.ci95) and as_dict["difference_claimed"] is True
    assert json.loads(json.dumps(as_dict))["a_better"] == 61


def test_a_difference_is_claimed_only_when_interval_and_test_agree():
    # 5 vs 0 discordant of 5: p = 2 / 32 = 0.0625 although the interval [1 - 0, ...] excludes 0 (sd 0)
    got = compare_scores(_scores([1] * 5), _scores([0] * 5))
    assert got.ci95 == (1.0, 1.0) and got.p_value == pytest.approx(0.0625)
    assert not got.difference_claimed
    assert got.sentence("A", "B").endswith("(5 vs 0 problems); no difference can be claimed at 0.05")


def test_averaged_scores_use_the_sign_test_by_name():
    got = compare_scores(_scores([0.75, 0.5, 1.0]), _scores([0.25, 0.5, 0.0]))
    assert (got.a_better, got.b_better, got.test) == (2, 0, "sign test")
    assert "sign test p = 0.500" in got.sentence("A", "B")  # 2 * 1/4


def test_problem_sets_that_differ_are_refused_with_the_counts():
    a, b = _scores([1, 0, 1]), _scores([1, 0])
    b[(7, "another")] = 1.0
    with pytest.raises(PairingError, match="1 only in the first, 1 only in the second"):
        compare_scores(a, b)
    assert issubclass(PairingError, UserError)
    with pytest.raises(PairingError, match="empty"):
        compare_scores({}, {})


@pytest.mark.parametrize(("a_better", "b_better", "expected"), [
    (0, 0, 1.0),  # nothing discordant
    (0, 5, 2 / 32),  # 2 * 1/32
    (1, 9, 2 * (1 + 10) / 1024),  # 2 * (C(10,0) + C(10,1)) / 2^10 = 0.021484375
    (3, 3, 1.0),  # the centre: 2 * P(X <= 3 | 6) > 1, capped
])
def test_sign_test_by_hand(a_better, b_better, expected):
    assert sign_test_p(a_better, b_better) == pytest.approx(expected, rel=1e-12)
    assert sign_test_p(b_better, a_better) == pytest.approx(expected, rel=1e-12)  # two-sided


def test_sign_test_matches_scipys_binomtest():
    pairs = [(k, n) for n in range(1, 61) for k in range(n + 1)]
    pairs += [(400, 1000), (480, 1000), (9_800, 20_000), (9_990, 20_000), (100, 20_000), (10_000, 20_000)]
    for k, n in pairs:
        expected = stats.binomtest(k, n, 0.5).pvalue
        assert sign_test_p(k, n - k) == pytest.approx(expected, rel=1e-9, abs=1e-300), (k, n)


def test_t_quantile_by_hand_and_against_scipy():
    # df 1 (Cauchy): tan(pi * (0.975 - 0.5)) = 12.7062047; df 2: (2q - 1) / sqrt(2 q (1 - q)) = 0.95 / sqrt(0.04875)
    assert t_quantile(1) == pytest.approx(math.tan(math.pi * 0.475), rel=1e-11)
    assert t_quantile(2) == pytest.approx(0.95 / math.sqrt(0.04875), rel=1e-11)
    for df in range(1, 201):
        assert t_quantile(df) == pytest.approx(stats.t.ppf(0.975, df), abs=1e-9), df
    for df in (999, 1000, 1001, 5000, 10**6):  # both sides of the switch to the Cornish-Fisher expansion
        assert t_quantile(df) == pytest.approx(stats.t.ppf(0.975, df), abs=1e-9), df
    assert t_quantile(7, 0.995) == pytest.approx(stats.t.ppf(0.995, 7), abs=1e-9)
    with pytest.raises(ValueError, match="whole number"):
        t_quantile(0)


def test_seed_summary_by_hand_and_against_scipy():
    # mean 0.32; deviations -0.02, +0.02, 0: var = 0.0008 / 2, sd 0.02;
    # half = t(0.975, 2) * 0.02 / sqrt(3) = 4.3026527 * 0.0115470 = 0.0496828
    got = seed_summary([0.30, 0.34, 0.32])
    assert got["n"] == 3 and got["mean"] == pytest.approx(0.32) and got["sd"] == pytest.approx(0.02)
    assert got["ci95"] == pytest.approx([0.32 - 0.0496828, 0.32 + 0.0496828], abs=1e-7)
    for values in ([0.1, 0.5], [0.3, 0.31, 0.35, 0.2, 0.4], list(np.linspace(0, 1, 40) ** 2)):
        mean, sem = np.mean(values), stats.sem(values)
        expected = stats.t.interval(0.95, len(values) - 1, loc=mean, scale=sem)
        assert seed_summary(values)["ci95"] == pytest.approx(list(expected), abs=1e-9)


def test_one_seed_has_no_spread():
    got = seed_summary([0.4])
    assert got["mean"] == 0.4 and got["n"] == 1 and math.isnan(got["sd"])
    assert all(math.isnan(x) for x in got["ci95"])


def test_retention_by_hand():
    # reference [1, 0], scores [1, 1]: ratio 1 / 0.5 = 2. A resample of indices (0,0) gives 1/1 = 1, (0,1) or
    # (1,0) gives 1/0.5 = 2, (1,1) has reference mean 0 and is dropped: a third of the kept ratios are 1, the rest
    # 2, so the 2.5th percentile is 1 and the 97.5th 2
    assert retention_interval(_scores([1, 1]), _scores([1, 0]), resamples=2_000) == (2.0, 1.0, 2.0)
    # every problem scored alike: no spread
    assert retention_interval(_scores([1, 0, 1]), _scores([1, 0, 1])) == (1.0, 1.0, 1.0)
    ratio, low, high = retention_interval(_scores([1, 1]), _scores([0, 0]))
    assert math.isnan(ratio) and math.isnan(low) and math.isnan(high)


def test_retention_interval_holds_the_ratio_and_is_seeded(monkeypatch):
    scores, reference = _issue_example()
    ratio, low, high = retention_interval(scores, reference, resamples=2_000, seed=3)
    assert ratio == pytest.approx(97 / 67) and low < ratio < high
    assert retention_interval(scores, reference, resamples=2_000, seed=3) == (ratio, low, high)
    assert retention_interval(scores, reference, resamples=2_000, seed=4) != (ratio, low, high)
    monkeypatch.setattr(paired, "BOOTSTRAP_CHUNK", 300 * 7)  # blocks of 7 resamples: the same draws, all kept
    assert retention_interval(scores, reference, resamples=2_000, seed=3) == (ratio, low, high)


def _naive_retention(scores: list[float], reference: list[float], resamples: int, seed: int):
    """One resample at a time from the same generator, and the linear-interpolation percentile written out."""
    rng, n, ratios = np.random.default_rng(seed), len(scores), []
    for _ in range(resamples):
        idx = rng.integers(0, n, size=n)
        den = sum(reference[i] for i in idx) / n
        if den > 0:
            ratios.append(sum(scores[i] for i in idx) / n / den)
    ratios.sort()

    def percentile(q):
        pos = q / 100 * (len(ratios) - 1)
        low = math.floor(pos)
        return ratios[low] + (ratios[min(low + 1, len(ratios) - 1)] - ratios[low]) * (pos - low)
    return sum(scores) / sum(reference), percentile(2.5), percentile(97.5)


def test_retention_matches_a_naive_bootstrap():
    scores = [1, 0, 1, 1, 0, 0.5, 1, 0, 0, 1, 0.25, 1]
    reference = [1, 1, 0, 1, 0, 1, 1, 0, 1, 1, 0.75, 0]
    got = retention_interval(_scores(scores), _scores(reference), resamples=500, seed=11)
    assert got == pytest.approx(_naive_retention(scores, reference, 500, 11), rel=1e-12)


def test_retention_uses_only_the_shared_problems():
    scores = _scores([1, 1, 0, 0])
    reference = {k: v for k, v in _scores([1, 1, 1, 1]).items() if k[0] < 2}
    assert retention_interval(scores, reference)[0] == 1.0
    with pytest.raises(PairingError, match="no problem in common"):
        retention_interval(scores, {(9, "x"): 1.0})


def test_format_difference_shows_signs_and_small_p():
    assert format_difference(0.1, (0.05, 0.15), 0.001) == "+0.100 [+0.050, +0.150], p = 0.001"
    assert format_difference(-0.1, [-0.2, 0.0004], 0.0004, digits=2) == "-0.10 [-0.20, +0.00], p < 0.001"


def test_several_samples_per_problem_are_averaged():
    rows = [{"prompt_index": 0, "prompt": "a", "correct": c} for c in (True, False, True, True)]
    rows += [{"prompt_index": 1, "prompt": "b", "correct": False}] * 2
    assert per_problem_scores(rows) == {(0, "a"): 0.75, (1, "b"): 0.0}
    with pytest.raises(DataError, match="correct"):
        per_problem_scores([{"prompt_index": 0, "prompt": "a"}])


def _write_eval(folder, rows, n=None):
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps({"n": n if n is not None else len({r["prompt"] for r in rows})}))
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_load_scores_reads_the_samples_beside_results(tmp_path):
    rows = [{"prompt_index": i, "prompt": p, "correct": c} for i, p, c in [(0, "a", True), (0, "a", False),
                                                                            (1, "b", True), (1, "b", True)]]
    folder = _write_eval(tmp_path / "eval", rows)
    expected = {(0, "a"): 0.5, (1, "b"): 1.0}
    assert load_scores(folder) == expected and load_scores(folder / "results.json") == expected


def test_load_scores_says_which_file_is_wrong(tmp_path):
    with pytest.raises(UserError, match="no such file or folder"):
        load_scores(tmp_path / "missing")
    (tmp_path / "lonely").mkdir()
    (tmp_path / "lonely" / "results.json").write_text("{}")
    with pytest.raises(UserError, match=r"lonely/samples.jsonl: not found"):
        load_scores(tmp_path / "lonely" / "results.json")
    folder = _write_eval(tmp_path / "bad", [{"prompt_index": 0, "prompt": "a", "correct": "yes"}])
    with pytest.raises(DataError, match=r"bad/samples.jsonl, line 1: expected correct as true/false"):
        load_scores(folder)
    folder = _write_eval(tmp_path / "stale", [{"prompt_index": 0, "prompt": "a", "correct": True}], n=2)
    with pytest.raises(UserError, match="n = 2 problems but .* holds 1"):
        load_scores(folder)
