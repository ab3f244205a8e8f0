"""The sentence splitter on real-style model output: a table of cases taken from MATH / GSM8K-style solutions and
reasoning traces, each with the actions a reader would mark by hand."""

from __future__ import annotations

import pytest

from cotdistill.provenance.actions import split_actions

CASES = [
    # plain sentences and marks
    ("First, add. Then divide.", ["First, add.", "Then divide."]),
    ("Is it 4? Yes! So we stop.", ["Is it 4?", "Yes!", "So we stop."]),
    ("What?! That is odd.", ["What?!", "That is odd."]),
    ("No mark at the end", ["No mark at the end"]),
    ("  Leading and trailing spaces.  ", ["Leading and trailing spaces."]),
    # currency
    ("It costs $5. Then he pays $3. Total is 8.", ["It costs $5.", "Then he pays $3.", "Total is 8."]),
    ("She has $12.50 left. He has $3.", ["She has $12.50 left.", "He has $3."]),
    ("A pen is $2 and a book is $10. Together $12.", ["A pen is $2 and a book is $10.", "Together $12."]),
    ("He earns $ 5. She earns more.", ["He earns $ 5.", "She earns more."]),
    ("It costs $ 5. Then $x$ is 2.", ["It costs $ 5.", "Then $x$ is 2."]),  # "$ " never opens math
    ("It costs $5-$10. Then stop.", ["It costs $5-$10.", "Then stop."]),  # a "$" before a digit never closes it
    ("Pay \\$5. Then $x$ is 1.", ["Pay \\$5.", "Then $x$ is 1."]),  # an escaped dollar is a sign
    ("Let $a = \\$5$. Next.", ["Let $a = \\$5$.", "Next."]),  # ... also inside math, where it cannot close
    ("Pay in $", ["Pay in $"]),
    ("It costs $5. Then $x. Done.", ["It costs $5.", "Then $x.", "Done."]),  # a "$" after a space never closes
    ("Let $a = \\$b. c$ hold. Next.", ["Let $a = \\$b. c$ hold.", "Next."]),  # nor does an escaped one
    ("It was $5. Now it is $5-$7. Done.", ["It was $5.", "Now it is $5-$7.", "Done."]),  # every rule must hold
    # inline math
    ("Then $x = 2.5. y$ holds. Next.", ["Then $x = 2.5. y$ holds.", "Next."]),
    ("Let $a=1$. Then $b=2$.", ["Let $a=1$.", "Then $b=2$."]),
    ("We get \\(x = 3. 5\\) here. Done.", ["We get \\(x = 3. 5\\) here.", "Done."]),
    ("The area is $\\pi r^2$. With $r = 2.5$, it is $6.25\\pi$.",
     ["The area is $\\pi r^2$.", "With $r = 2.5$, it is $6.25\\pi$."]),
    # display math
    ("$$x = 1. $$ Next.", ["$$x = 1. $$ Next."]),
    ("We have\n$$\na + b = 7.\n$$\nSo a = 3.", ["We have", "$$\na + b = 7.\n$$", "So a = 3."]),
    ("Thus\n\\[\nx^2 = 4. \\quad x = 2.\n\\]\nDone.", ["Thus", "\\[\nx^2 = 4. \\quad x = 2.\n\\]", "Done."]),
    ("Compute \\[ 2 \\cdot 3 = 6. \\] Then stop.", ["Compute \\[ 2 \\cdot 3 = 6. \\] Then stop."]),
    # braces
    ("So \\boxed{1.5. 2} is it. Done", ["So \\boxed{1.5. 2} is it.", "Done"]),
    ("The answer is \\boxed{3}.", ["The answer is \\boxed{3}."]),
    ("Final: \\boxed{\\text{Yes. No}}. Bye.", ["Final: \\boxed{\\text{Yes. No}}.", "Bye."]),
    # decimals and numbers
    ("The ratio is 0.75. Next step.", ["The ratio is 0.75.", "Next step."]),
    ("Pi is about 3.14159. Good.", ["Pi is about 3.14159.", "Good."]),
    ("We need 3. Then 4.", ["We need 3.", "Then 4."]),
    ("Version 2.0.1 works. Yes.", ["Version 2.0.1 works.", "Yes."]),
    # abbreviations
    ("Use a prime, e.g. 7. It works.", ["Use a prime, e.g. 7.", "It works."]),
    ("Even numbers, i.e. multiples of 2. Fine.", ["Even numbers, i.e. multiples of 2.", "Fine."]),
    ("See Fig. 3 for the plot. Next.", ["See Fig. 3 for the plot.", "Next."]),
    ("By Eq. 4 we get 9. Done.", ["By Eq. 4 we get 9.", "Done."]),
    ("Smith et al. showed it. Right.", ["Smith et al. showed it.", "Right."]),
    ("Mr. Lee has 5 apples. Mrs. Lee has 3.", ["Mr. Lee has 5 apples.", "Mrs. Lee has 3."]),
    ("It is approx. 2.7 cm. Close.", ["It is approx. 2.7 cm.", "Close."]),
    # enumerations and lists
    ("1. Find x. 2. Find y.", ["1. Find x.", "2. Find y."]),
    ("Steps:\n1. Add 2 and 3.\n2. Multiply by 4.", ["Steps:", "1. Add 2 and 3.", "2. Multiply by 4."]),
    ("a. First case.\nb. Second case.", ["a. First case.", "b. Second case."]),
    ("(a) Let x = 1. (b) Let y = 2.", ["(a) Let x = 1.", "(b) Let y = 2."]),
    ("- Add them. Then check.\n- Divide.", ["- Add them.", "Then check.", "- Divide."]),
    ("**Step 1.** Compute the sum. **Step 2.** Divide.",
     ["**Step 1.**", "Compute the sum.", "**Step 2.**", "Divide."]),
    # headings, quotes, brackets, ellipses
    ("## Solution\nWe start. Then end.", ["## Solution", "We start.", "Then end."]),
    ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
    ("(This is an aside.) Back to work.", ["(This is an aside.)", "Back to work."]),
    ("Wait... maybe not. OK.", ["Wait... maybe not.", "OK."]),
    ("Hmm... Let me recheck.", ["Hmm...", "Let me recheck."]),
    # newlines and code
    ("<think>\nStep one\nstep two. Three.\n</think>", ["<think>", "Step one", "step two.", "Three.", "</think>"]),
    ("Line one.\n\nLine two.", ["Line one.", "Line two."]),
    ("Code:\n```python\nx = 1. + 2.\nprint(x)\n```\nDone.",
     ["Code:", "```python\nx = 1. + 2.\nprint(x)\n```", "Done."]),
    ("So 2 + 2 = 4.\nThe answer is 4.", ["So 2 + 2 = 4.", "The answer is 4."]),
    ("```\n```\nDone.", ["```\n```", "Done."]),  # an empty code block
    ("Inline ```x. y``` here. Next.", ["Inline ```x.", "y``` here.", "Next."]),  # a fence only opens a line
]


@pytest.mark.parametrize("text, expected", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_sentence_table(text, expected):
    actions = split_actions(text)
    assert [a.text for a in actions] == expected
    assert all(text[a.start:a.end] == a.text for a in actions)  # spans point at the text itself


def test_the_table_is_large_enough():
    assert len(CASES) >= 40
