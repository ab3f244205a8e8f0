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
    assert classify(*p, alpha=0.05, beta=0.1) == expected


def test_pair_classification():
    assert [classify_pair(t, s) for t, s in ((0.9, 0.5), (0.5, 0.9), (0.5, 0.55))] == ["teacher", "student", "common"]
