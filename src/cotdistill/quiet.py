"""transformers' own progress bars, turned off once for every load and save (here, on the ground floor, so the GGUF
cache below the model loader can call it without importing the loader)."""

from __future__ import annotations


def quiet_library_progress_bars() -> None:
    """transformers' own "Loading weights" / "Writing model shards" bars: each save and load drew one across our
    training and evaluation bars. Ours say where a run is; theirs are off."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
