"""cotdistill: reasoning distillation with sequence truncation, provenance tracing and teacher-guided selection.

``cotdistill.train(config, …)`` and ``cotdistill.evaluate(model, …)`` are the Python entry points; the library
packages (``data``, ``losses``, ``training``, ``evaluation``, ``provenance``, ``select``, …) sit below them.
"""

__version__ = "0.1.0"


def train(config=None, **kwargs) -> dict:
    """Train a student; see :func:`cotdistill.api.train` (imported on first call: ``import cotdistill`` stays fast)."""
    from cotdistill.api import train as _train

    return _train(config, **kwargs)


def evaluate(model, tokenizer=None, **kwargs) -> dict:
    """Evaluate a model on a benchmark; see :func:`cotdistill.api.evaluate`."""
    from cotdistill.api import evaluate as _evaluate

    return _evaluate(model, tokenizer, **kwargs)
