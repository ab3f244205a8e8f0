"""What a command writes, checked before it starts: an output is never one of the command's inputs, never holds
one, never lies inside an input folder — compared by device and inode, so hard links, symlinks and ``..`` paths
are all seen — and each output folder has one writer: a lock file the operating system releases when the process
ends. Every command that writes calls :func:`claim_output` (a folder) or :func:`check_output` (a file) before any
model loads."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from cotdistill.errors import UserError

if TYPE_CHECKING:
    from cotdistill.evaluation.spec import EvalSpec
    from cotdistill.training.config import TrainConfig

LOCK_NAME = ".cotdistill.lock"
Identity = tuple[int, int]  # (st_dev, st_ino): one file or folder, whatever path reaches it


class OutputError(UserError, ValueError):
    """An output that would write over, into or around an input, or that cannot be written at all."""


class OutputInUseError(UserError, RuntimeError):
    pass


def train_inputs(cfg: TrainConfig) -> list[str | None]:
    """What a training run reads by name: models, tokenizer, chat template, data, teacher cache (the teacher only
    where the loss uses it and no cache stands in for it)."""
    teacher = cfg.teacher if cfg.teacher_source == "online" else None
    return [cfg.student, teacher, cfg.teacher_cache, cfg.tokenizer, cfg.chat_template, cfg.data.path,
            cfg.data.val_path]


def eval_inputs(spec: EvalSpec) -> list[str | None]:
    """What an evaluation reads by name besides its model: the benchmark's data, the prompt template and the chat
    template (the two templates may be text; text is no local path and is skipped)."""
    return [spec.data, spec.prompt_template, spec.chat_template]


def _stat(path: str | Path) -> os.stat_result | None:
    """What ``path`` names on this machine, or None: a hub id, a ``world:`` name, a template given as text, a file
    not made yet — nothing there to write over."""
    try:
        return os.stat(path)
    except (OSError, ValueError):  # ValueError: text holding a NUL where a path may stand
        return None


def _identity(st: os.stat_result) -> Identity:
    return st.st_dev, st.st_ino


def _folders_around(path: str | Path) -> set[Identity]:
    """``path`` (where it exists) and every folder above it: its real path (symlinks and ``..`` resolved) walked
    up to the root."""
    real = Path(os.path.realpath(path))
    return {_identity(st) for st in map(_stat, (real, *real.parents)) if st is not None}


def check_output(out: str | Path, key: str, inputs: Iterable[str | Path | None], *, is_file: bool = False) -> None:
    """Refuse ``out`` (a folder, or a file with ``is_file``) where the run would destroy or change an input: ``out``
    is an input, holds one (a folder output), or lies inside an input folder; refuse an output of the wrong kind,
    and a file output that cannot be written. ``key`` (``--out (out)``, ``output_dir``) starts the message."""
    out = Path(out)
    here = _stat(out)
    if here is not None and stat.S_ISDIR(here.st_mode) == is_file:
        found, wanted = ("folder", "file") if is_file else ("file", "folder")
        raise OutputError(f"{key}: {out} is a {found}; expected a {wanted}")
    around = _folders_around(out)
    linked: dict[Identity, str] = {}  # input files with a second name: one may be in the output folder
    for name in inputs:
        st = _stat(name) if name else None
        if st is None:
            continue
        if here is not None and _identity(st) == _identity(here):
            kind = "file" if is_file else "folder"
            raise OutputError(f"{key}: {out} is the input {name} (the same {kind} on disk): write to a new {kind}")
        if stat.S_ISDIR(st.st_mode) and _identity(st) in around:
            raise OutputError(f"{key}: {out} is inside the input {name}: the run would write into it; write outside "
                              "it")
        if here is not None and not is_file and _identity(here) in _folders_around(name):
            raise OutputError(f"{key}: {out} holds the input {name}: the run could write over it; write to a new "
                              "folder")
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            linked[_identity(st)] = str(name)
    if here is not None and not is_file and linked:
        _refuse_hard_links(out, key, linked)
    if is_file:
        _check_writable_file(out, key)


def _refuse_hard_links(folder: Path, key: str, linked: dict[Identity, str]) -> None:
    """A hard link of an input file anywhere in ``folder``: a write through that name changes the input."""
    for root, _, names in os.walk(folder):
        for name in names:
            st = _stat(Path(root) / name)
            if st is not None and _identity(st) in linked:
                raise OutputError(f"{key}: {folder} holds {Path(root) / name}, a hard link of the input "
                                  f"{linked[_identity(st)]}: the run could write over it; write to a new folder")


def _check_writable_file(out: Path, key: str) -> None:
    """Found now, not after the work: a file output whose folder (or the nearest one above it that exists) this
    process cannot write in. A file is made there and removed at once: only the system knows (root writes past a
    folder's mode; an immutable folder or a read-only mount refuses root too)."""
    folder = out.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        if not folder.is_dir():
            raise NotADirectoryError(f"{folder} is not a folder")
        with tempfile.TemporaryFile(dir=folder):
            pass
        if out.exists() and not os.access(out, os.W_OK):
            raise PermissionError("Permission denied")
    except OSError as err:
        raise OutputError(f"{key}: cannot write {out}: {err.strerror or err}") from None


@contextlib.contextmanager
def claim_output(folder: str | Path, key: str, inputs: Iterable[str | Path | None], *,
                 enabled: bool = True) -> Iterator[Path]:
    """:func:`check_output` on the output folder, then hold its lock (:func:`output_lock`) for the duration: what
    every command that writes a folder does before any model loads. ``enabled`` false (a rank other than the main
    one) checks without locking. A folder the claim made that is still empty when it ends (a run that failed
    before writing) is removed, with its lock file."""
    folder = Path(folder)
    check_output(folder, key, inputs)
    made = enabled and not os.path.lexists(folder)
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(output_lock(folder, enabled))
        except OSError as err:
            raise OutputError(f"{key}: cannot write in {folder}: {err.strerror or err}") from None
        except OutputInUseError as err:
            raise OutputInUseError(f"{key}: {err}") from None
        if made:  # runs before the lock is let go: no other run can have taken the folder meanwhile
            stack.callback(_remove_if_unused, folder)
        yield folder


def _remove_if_unused(folder: Path) -> None:
    with contextlib.suppress(OSError):
        if os.listdir(folder) == [LOCK_NAME]:
            (folder / LOCK_NAME).unlink()
            folder.rmdir()


@contextlib.contextmanager
def output_lock(folder: str | Path, enabled: bool = True) -> Iterator[None]:
    """Hold ``folder/.cotdistill.lock`` for the duration. A second run on the same folder is refused (two runs
    used to both exit 0 with interleaved metrics and each other's checkpoints). The lock is an ``flock``: a run
    that is killed leaves no stale lock behind. Where ``fcntl`` does not exist (Windows) nothing is locked."""
    if not enabled:
        yield
        return
    try:
        import fcntl
    except ImportError:
        yield
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise OutputInUseError(f"{folder} is being written by another run (pid {holder}); wait for it, stop it, "
                                   "or choose another output directory") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the flock
