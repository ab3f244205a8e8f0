"""How responses end, classed by hand-written examples of each form."""

from __future__ import annotations

import pytest

from cotdistill.evaluation.endings import ENDINGS, ending_counts, ending_of, thought_cut


@pytest.mark.parametrize("text, hit, expected", [
    ("<think>\nStep 1: 2 + 3 = 5.\nStep 2: 5 + 1 = 6.\nStep 3:", True, "at_limit"),
    ("<think>\n2 + 3 = 5.\n</think>\n\nThe answer is \\boxed{5}.", True, "at_limit"),  # the limit comes first
    ("<think>\n2 + 3 = 5.\n</think>\n\nThe answer is \\boxed{5}.", False, "think_then_boxed"),
    ("<think>\n2 + 3 = 5.\n</think>\n\nThe answer is 5.", False, "think_then_other"),
    ("<think>\n\\boxed{5} maybe\n</think>\n\nSo it is 5.", False, "think_then_other"),  # boxed before, not after
    ("2 + 3 = 5, so \\boxed{5}", False, "boxed_only"),
    ("2 + 3 = 5\n#### 5", False, "own_words"),
    ("We add them. The answer is 5.", False, "own_words"),
    ("Final answer: 5", False, "own_words"),
    ("I like apples.", False, "none"),
])
def test_each_form_gets_its_class(text, hit, expected):
    assert ending_of(text, hit) == expected


def test_a_thought_closed_mid_sentence_is_cut():
    assert thought_cut("<think>\nNow Leo has 22 shells.\nNow</think>\n\n\\boxed{76}")
    assert not thought_cut("<think>\nNow Leo has 22 shells.\n</think>\n\n\\boxed{22}")
    assert not thought_cut("no thought at all \\boxed{1}")


def test_counts_have_every_class_and_count_cuts_only_among_finished():
    samples = [("<think>\nNow</think>\n\\boxed{1}", False), ("<think>\nNow</think>", True),
               ("<think>\nDone.</think>\n\\boxed{2}", False), ("#### 3", False)]
    counts = ending_counts(samples)
    assert list(counts) == [*ENDINGS, "thought_cut"]
    assert counts == {"at_limit": 1, "think_then_boxed": 2, "think_then_other": 0, "boxed_only": 0,
                      "own_words": 1, "none": 0, "thought_cut": 1}
