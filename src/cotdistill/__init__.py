"""cotdistill: reasoning distillation with sequence truncation, provenance tracing and teacher-guided selection."""

__version__ = "0.1.0"
