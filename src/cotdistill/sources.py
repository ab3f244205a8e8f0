"""One resolver for every name a config may hold: ``world:`` models, ``world:`` data specs, hub ids, benchmarks.

``world:teacher`` is the packaged model folder; ``world:train:student:100`` the first 100 training problems written
in the student's style; the ``world`` benchmark without a data file is the world's test split. Everything else is
a path on disk or a hub id, checked here for typos before anything is loaded.
"""

from __future__ import annotations

import re
from pathlib import Path

from cotdistill.errors import UserError

WORLD_PREFIX = "world:"
WORLD_ASSETS = Path(__file__).parent / "world" / "assets"
# what the hub accepts as a repo id ("Qwen/Qwen2.5-0.5B", "gpt2"); anything else that is not on disk is a typo
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")


class SourceError(UserError, ValueError):
    """A model, data or benchmark name that resolves to nothing."""


def is_world(name) -> bool:
    return isinstance(name, str) and name.startswith(WORLD_PREFIX)


def resolve_model(name_or_path: str) -> str:
    """``world:teacher`` → the packaged asset directory; a path on disk or a hub id unchanged. A name that is
    neither (a missing local folder) is refused here, before anything is loaded."""
    if is_world(name_or_path):
        path = WORLD_ASSETS / name_or_path[len(WORLD_PREFIX):]
        if not path.exists():
            raise SourceError(f"{name_or_path}: no embedded asset at {path}; run `cotdistill world build`")
        return str(path)
    if Path(name_or_path).exists():
        return name_or_path
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
