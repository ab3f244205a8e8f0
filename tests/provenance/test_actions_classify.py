from __future__ import annotations

import pytest

from cotdistill.provenance.actions import split_actions
from cotdistill.provenance.classify import classify, classify_pair


def texts(text, unit="sentence"):
    actions = split_actions(text, unit)
    assert all(text[a.start:a.end] == a.text for a in actions)
    return [a.text for a in actions]


def test_sentence_rule_keeps_decimals_abbreviations_math_and_boxes():
    text = ("The price is 3.5 dollars, e.g. for one pen. Then $x = 2.5. y$ holds!\n"
            "So \\boxed{1.5. 2} is it. Done")
    assert texts(text) == ["The price is 3.5 dollars, e.g. for one pen.", "Then $x = 2.5. y$ holds!",
                           "So \\boxed{1.5. 2} is it.", "Done"]


def test_newline_ends_an_action_and_units():
    text = "<think>\nStep one\nstep two. Three.\n\nPara two.\n</think>"
    assert texts(text) == ["<think>", "Step one", "step two.", "Three.", "Para two.", "</think>"]
    assert texts(text, "line") == ["<think>", "Step one", "step two. Three.", "Para two.", "</think>"]
    assert texts(text, "step") == ["<think>\nStep one\nstep two. Three.", "Para two.\n</think>"]
    with pytest.raises(ValueError, match="unit"):
        split_actions(text, "word")


@pytest.mark.parametrize("p, expected", [
    ((0.90, 0.88, 0.91), "shared"),  # all within alpha
    ((0.90, 0.30, 0.85), "teacher"),
    ((0.20, 0.80, 0.70), "student"),
    ((0.60, 0.55, 0.90), "boosted"),  # teacher and student agree, distilled differs
    ((0.50, 0.45, 0.40), "boosted"),  # |Δ_TS| ≤ β but Δ_TD > α: not shared
])
def test_classification_rules_in_order(p, expected):
    assert classify(*p, alpha=0.05, margin=0.1) == expected


def test_pair_classification():
    assert [classify_pair(t, s) for t, s in ((0.9, 0.5), (0.5, 0.9), (0.5, 0.55))] == ["teacher", "student", "common"]


# binary fractions, so that the differences are exact: Δ equal to β or α is tested as equal, not as 0.1000001
@pytest.mark.parametrize("p, expected", [
    ((0.75, 0.625, 0.5), "boosted"),  # Δ_TS = β exactly: not "greater than β"
    ((0.625, 0.75, 0.5), "boosted"),  # −Δ_TS = β exactly
    ((0.75, 0.5, 0.5), "teacher"),  # Δ_TS = 2β
    ((0.5, 0.75, 0.5), "student"),
    ((0.5625, 0.5, 0.5), "shared"),  # every |Δ| ≤ α with Δ_TS = Δ_TD = α exactly
    ((0.5, 0.5625, 0.5), "shared"),  # Δ_SD = α exactly
    ((0.5, 0.5, 0.5625), "shared"),  # the distilled model alone moved by α
    ((0.5, 0.5, 0.625), "boosted"),  # ... by 2α: not shared, and Δ_TS = 0
])
def test_classification_at_the_thresholds(p, expected):
    assert classify(*p, alpha=0.0625, margin=0.125) == expected


def test_pair_classification_at_the_threshold():
    assert classify_pair(0.75, 0.625, margin=0.125) == "common"
    assert classify_pair(0.625, 0.75, margin=0.125) == "common"
    assert classify_pair(0.875, 0.625, margin=0.125) == "teacher"


def test_alpha_above_beta_is_refused():
    from cotdistill.provenance.trace import TraceConfig

    with pytest.raises(ValueError, match="alpha"):
        classify(0.5, 0.5, 0.5, alpha=0.2, margin=0.1)
    with pytest.raises(ValueError, match="alpha"):
        TraceConfig(alpha=0.2, margin=0.1)


def test_the_default_thresholds_are_the_papers_beta_and_our_alpha():
    assert classify_pair(0.6, 0.45) == "teacher"  # Δ = 0.15 > β = 0.1 (and < 0.2)
    assert classify_pair(0.6, 0.52) == "common"  # Δ = 0.08 ≤ 0.1
    assert classify(0.5, 0.5, 0.57) == "boosted"  # the distilled model moved by 0.07 > α = 0.05 (and < 0.1)
    assert classify(0.5, 0.5, 0.54) == "shared"


def test_alpha_equal_to_beta_is_allowed():
    assert classify(0.5, 0.5, 0.5, alpha=0.125, margin=0.125) == "shared"
