"""Grading with math-verify, under a timeout that works in any thread.

math-verify's own timeouts use ``signal.alarm``, which only works in the main thread; here both its timeouts are
off and each check runs in a daemon worker thread that we stop waiting for after ``timeout`` seconds. A
pathological expression thus costs at most ``timeout`` seconds and is graded wrong (the abandoned thread finishes
or dies with the process).
"""

from __future__ import annotations

import logging
import threading

from math_verify import parse, verify

from cotdistill.evaluation.extract import extract_answer

GRADER = "math-verify"
logging.getLogger("math_verify").setLevel(logging.ERROR)  # it warns on every call with timeouts off


def _as_latex(answer: str) -> str:
    """Put a bare answer in a box, so math-verify's normaliser (units, ``\\text``, trailing period) applies."""
    return answer if "\\boxed" in answer or "$" in answer else f"\\boxed{{{answer}}}"


def _verify(gold: str, answer: str) -> bool:
    gold_parsed = parse(_as_latex(gold), parsing_timeout=None)
    # both readings of the answer: boxed (LaTeX normaliser) and raw (finds "12" in "12 dollars")
    pred_parsed = parse(_as_latex(answer), parsing_timeout=None) + parse(answer, parsing_timeout=None)
    if not gold_parsed or not pred_parsed:
        return gold.strip() == answer.strip()
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=None))


def run_with_timeout(fn, *args, timeout: float, default):
    result = [default]

    def target() -> None:
        try:
            result[0] = fn(*args)
        except Exception:  # a grader crash on odd input means "not verified", not a crashed run
            result[0] = default

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(timeout)
    return default if worker.is_alive() else result[0]


_warm = threading.Event()


def _warm_up() -> None:
    """Parse once outside any timeout: the first LaTeX parse loads the grammar, which on a loaded machine took
    longer than the timeout and graded a right answer wrong."""
    if not _warm.is_set():
        _verify("\\frac{1}{2}", "0.5")
        _warm.set()


def answers_match(gold: str, answer: str | None, *, timeout: float = 5.0) -> bool:
    if answer is None:
        return False
    _warm_up()
    return run_with_timeout(_verify, gold, answer, timeout=timeout, default=False)


def grade(response: str, gold: str, *, timeout: float = 5.0, flexible: bool = False) -> bool:
    """Is ``response``'s extracted final answer mathematically equal to ``gold``?"""
    return answers_match(gold, extract_answer(response, flexible=flexible).answer, timeout=timeout)
