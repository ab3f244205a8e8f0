"""Mutation testing of the core modules: plant one small bug at a time and check that the tests catch it.

Each mutant changes one token of code (never a string, comment, docstring, signature default or error message):
an arithmetic or comparison operator, ``and``/``or``, ``True``/``False``, ``min``/``max``, or a small number. For
each mutant the module's own test files run (``pytest -x``); a failing run (or a timeout) *kills* the mutant.
Survivors are the places where a plausible one-token bug would go unnoticed: each needs a test or an explanation
(an equivalent mutant changes no behaviour).

The mutants are applied in a copy of the tree (``--work``), so a run never touches the checkout.

    python scripts/mutate.py                      # every target, report in runs/mutate/
    python scripts/mutate.py --only losses --limit 20

Ends with ``RESULT killed=K total=N score=S``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import subprocess
import sys
import time
import tokenize
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# module (under src/cotdistill) -> the test files that guard it
TARGETS = {
    "losses": ("losses.py", ["tests/test_losses.py", "tests/test_config.py"]),
    "encode": ("data/encode.py", ["tests/data/test_masks.py", "tests/data/test_stats_cli.py", "tests/test_config.py"]),
    "batching": ("data/batching.py", ["tests/data/test_batching.py", "tests/data/test_masks.py"]),
    "classify": ("provenance/classify.py", ["tests/provenance/test_actions_classify.py"]),
    "actions": ("provenance/actions.py", ["tests/provenance/test_sentences.py",
                                          "tests/provenance/test_actions_classify.py"]),
    "scoring": ("provenance/scoring.py", ["tests/provenance/test_scoring.py"]),
    "extract": ("evaluation/extract.py", ["tests/evaluation/test_extract_grade.py"]),
    "grade": ("evaluation/grade.py", ["tests/evaluation/test_extract_grade.py"]),
    "methods": ("select/methods.py", ["tests/select/test_select.py"]),
    "schedule": ("training/schedule.py", ["tests/training/test_schedule.py"]),
    "cache": ("teacher/cache.py", ["tests/training/test_teacher_cache.py", "tests/teacher/test_interface.py"]),
    "config": ("config.py", ["tests/test_config.py", "tests/test_cli_config.py"]),
    # the trainer's tests take about a minute a run: sample these with --limit
    "loop": ("training/loop.py", ["tests/training/test_trainer.py"]),
    "checkpoint": ("training/checkpoint.py",
                   ["tests/training/test_checkpoint_safety.py", "tests/training/test_trainer.py"]),
}

SWAPS = {"+": "-", "-": "+", "*": "/", "/": "*", "//": "/", "<": "<=", "<=": "<", ">": ">=", ">=": ">",
         "==": "!=", "!=": "==", "and": "or", "or": "and", "True": "False", "False": "True", "min": "max",
         "max": "min", "+=": "-=", "-=": "+="}


@dataclass
class Mutant:
    target: str
    file: str
    line: int
    col: int
    original: str
    mutated: str
    source_line: str
    killed: bool | None = None
    seconds: float = 0.0


def _number_mutation(text: str) -> str | None:
    try:
        value = int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            return None
        return repr(value * 2 if value else 1.0)
    return "1" if value == 0 else "0" if value == 1 else str(value + 1)


def _skipped_lines(source: str) -> set[int]:
    """Lines a mutant should not touch: ``def`` signatures (defaults), ``raise`` statements (messages) and
    decorators."""
    skipped, in_signature = set(), False
    for number, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith(("def ", "async def ")):
            in_signature = True
        if in_signature:
            skipped.add(number)
            if stripped.endswith(":"):
                in_signature = False
        if stripped.startswith(("raise ", "@")) or stripped.startswith(("import ", "from ")):
            skipped.add(number)
    return skipped


def find_mutants(target: str, relative: str, root: Path = ROOT) -> list[Mutant]:
    """The mutants of one module, as it is in ``root`` (the work copy: the checkout may change during a run)."""
    path = root / "src" / "cotdistill" / relative
    source = path.read_text()
    lines = source.splitlines()
    skipped = _skipped_lines(source)
    mutants = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        row, col = tok.start
        if row in skipped or tok.type in (tokenize.STRING, tokenize.COMMENT):
            continue
        if tok.type == tokenize.OP or (tok.type == tokenize.NAME and tok.string in ("and", "or", "True", "False",
                                                                                     "min", "max")):
            replacement = SWAPS.get(tok.string)
        elif tok.type == tokenize.NUMBER:
            replacement = _number_mutation(tok.string)
        else:
            replacement = None
        if replacement is None:
            continue
        if tok.string == "*" and _is_star_argument(lines[row - 1], col):
            continue
        if tok.string in ("+", "-") and _is_unary(lines[row - 1], col):
            continue  # a sign, not an operator: "dim=-1" -> "dim=+1" is the same axis of a 2-D tensor
        mutants.append(Mutant(target, relative, row, col, tok.string, replacement, lines[row - 1].strip()))
    return mutants


def _is_star_argument(line: str, col: int) -> bool:
    """``*args`` / ``**kwargs`` / keyword-only ``*``: not arithmetic."""
    before = line[:col].rstrip()
    return not before or before[-1] in "(,[{" or line[col:col + 2] == "**"


def _is_unary(line: str, col: int) -> bool:
    before = line[:col].rstrip()
    return not before or before[-1] in "(,[{=:" or before.endswith(("return", "in", "else"))


def apply(work: Path, mutant: Mutant) -> Path | None:
    path = work / "src" / "cotdistill" / mutant.file
    lines = path.read_text().splitlines(keepends=True)
    if lines[mutant.line - 1].strip() != mutant.source_line:  # the file changed since: find the line again
        moved = [i + 1 for i, line in enumerate(lines) if line.strip() == mutant.source_line]
        if not moved:
            return None  # the line was rewritten since: this mutant no longer exists
        mutant.line = min(moved, key=lambda n: abs(n - mutant.line))
    line = lines[mutant.line - 1]
    assert line[mutant.col:mutant.col + len(mutant.original)] == mutant.original, mutant
    lines[mutant.line - 1] = line[:mutant.col] + mutant.mutated + line[mutant.col + len(mutant.original):]
    path.write_text("".join(lines))
    return path


def run_tests(work: Path, tests: list[str], timeout: float) -> bool:
    """True when the tests fail (the mutant is killed)."""
    env = {**os.environ, "PYTHONPATH": str(work / "src") + os.pathsep + str(work), "OMP_NUM_THREADS": "1",
           "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m", "not slow",
                               *tests], cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return True
    return done.returncode != 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", choices=sorted(TARGETS), help="targets to mutate (default: all)")
    parser.add_argument("--limit", type=int, help="at most this many mutants per target (a seeded sample)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--work", default="/tmp/cotdistill-mutate", help="copy of the tree the mutants go into")
    parser.add_argument("--out", default="runs/mutate")
    parser.add_argument("--recheck", help="a mutants.json: run its survivors again (after adding tests), keep the "
                                          "killed ones as they were")
    args = parser.parse_args()

    work, out = Path(args.work), ROOT / args.out
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(ROOT, work, ignore=shutil.ignore_patterns(".git", ".venv", "runs", "__pycache__", "*.egg-info"))
    out.mkdir(parents=True, exist_ok=True)
    baseline = [t for name in (args.only or TARGETS) for t in TARGETS[name][1]]
    if run_tests(work, sorted(set(baseline)), args.timeout):
        print("the unmutated tests fail: fix them first", file=sys.stderr)
        return 1
    results: list[Mutant] = []
    previous = [Mutant(**m) for m in json.loads(Path(args.recheck).read_text())] if args.recheck else []
    for name in args.only or TARGETS:
        relative, tests = TARGETS[name]
        if args.recheck:
            results += [m for m in previous if m.target == name and m.killed]
            mutants = [m for m in previous if m.target == name and not m.killed]
        else:
            mutants = find_mutants(name, relative, work)
        if args.limit and len(mutants) > args.limit and not args.recheck:
            mutants = sorted(random.Random(args.seed).sample(mutants, args.limit), key=lambda m: (m.line, m.col))
        original = (work / "src" / "cotdistill" / relative).read_text()
        for mutant in mutants:
            path = apply(work, mutant)
            if path is None:
                print(f"GONE     {relative}: {mutant.source_line}", flush=True)
                continue
            start = time.perf_counter()
            mutant.killed = run_tests(work, tests, args.timeout)
            mutant.seconds = time.perf_counter() - start
            path.write_text(original)
            results.append(mutant)
            mark = "killed" if mutant.killed else "SURVIVED"
            print(f"{mark:8} {relative}:{mutant.line} {mutant.original!r}->{mutant.mutated!r}  {mutant.source_line}",
                  flush=True)
        (out / "mutants.json").write_text(json.dumps([asdict(m) for m in results], indent=1))
    killed = sum(m.killed for m in results)
    per_target = {}
    for m in results:
        k, n = per_target.get(m.target, (0, 0))
        per_target[m.target] = (k + m.killed, n + 1)
    for name, (k, n) in per_target.items():
        print(f"{name:10} {k}/{n} killed")
    score = killed / max(len(results), 1)
    print(f"RESULT killed={killed} total={len(results)} score={score:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
