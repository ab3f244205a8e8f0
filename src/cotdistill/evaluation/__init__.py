"""Benchmarks, answer extraction and grading."""

from cotdistill.evaluation.extract import Extraction, extract_answer, extract_boxed, extract_gsm8k
from cotdistill.evaluation.grade import GRADER, answers_match, grade

__all__ = ["GRADER", "Extraction", "answers_match", "extract_answer", "extract_boxed", "extract_gsm8k", "grade"]
