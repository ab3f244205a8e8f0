"""How responses end, classed by hand-written examples of each form."""

from __future__ import annotations

import json

import pytest

from cotdistill.evaluation.endings import (
    ENDINGS,
    ending_counts,
    ending_of,
    gold_stated_counts,
    gold_stated_in_samples,
    states_number,
    thought_cut,
)


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


@pytest.mark.parametrize("text, number, expected", [
    ("Now Leo has 49 coins.", "49", True),
    ("So the total is 10 + 39 = 49.", "49", True),
    ("Now Leo has 149 coins.", "49", False),
    ("Now Leo has 490 coins.", "49", False),
    ("It costs 49.5 dollars.", "49", False),
    ("It costs 49.5 dollars.", "49.5", True),
    ("4,900 coins", "4", False),
    ("4,900 coins", "900", False),
    ("1,000 coins", "1000", True),
    ("1,000 coins", "1,000", True),
    ("It costs $49.00 now.", "49", True),
    ("Now Leo has 49 coins.", "49.0", True),
    ("The list 1,2,3 has 2 in it.", "2", True),
    ("The change is -3 today.", "-3", True),
    ("The change is -3 today.", "3", False),
    ("So 5-3 = 2.", "-3", False),
    ("So 5 - 3 = 2.", "3", True),
    ("the 3rd box", "3", False),
    ("\\frac{1}{2}", "\\frac{1}{2}", False),  # not a plain number: never stated
])
def test_a_number_is_stated_only_on_its_own(text, number, expected):
    assert states_number(text, number) is expected


def test_gold_stated_counts_own_golds_and_the_next_problems_as_chance():
    golds = ["49", "7", "7", "\\frac{1}{2}"]
    samples = [("<think>\nNow Leo has 49 coins.\nNow Leo has 7 coins.\nStep", 0),  # own 49 and, by chance, 7
               ("Now Sam has 12 books. #### 12", 1),  # neither its own 7 nor the next problem's (also 7: not counted)
               ("<think>\n7 + 0 = 7.</think>\n\\boxed{7}", 2),  # own; the next gold is not a number
               ("\\boxed{\\frac{1}{2}}", 3)]  # a LaTeX gold is left out, as own and as the previous one's next
    assert gold_stated_counts(samples, golds) == {"gold_checked": 3, "gold_stated": 2, "chance_checked": 1,
                                                  "gold_stated_by_chance": 1}


def test_gold_stated_in_samples_reads_an_evaluations_rows(tmp_path):
    rows = [{"prompt_index": 5, "response": "Now Ann has 8 pens.", "gold": 8},
            {"prompt_index": 2, "response": "Now Bo has 8 cups.", "gold": "3"}]
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    # problem 2 (gold 3) is first, problem 5 (gold 8) next: the row of problem 2 states the next gold by chance
    assert gold_stated_in_samples(path) == {"gold_checked": 2, "gold_stated": 1, "chance_checked": 2,
                                            "gold_stated_by_chance": 1}
