"""Offline teacher: at every supervised position, the teacher's most likely tokens, their log-probs, and the rest
of the mass spread evenly over the other tokens.

Layout of a cache directory::

    manifest.json             settings (how many entries, which dtypes), fingerprints, sizes, quality, and
                              ``files``: every other file's size and SHA-256, checked when the cache is opened
    shard-00000/counts.npy    [rows] entries kept at each position (uint8, or uint16 past 255)
    shard-00000/ids.npy       [entries] token ids, row after row (uint16; [entries, 3] uint8 bytes for vocabularies
                              up to 2^24, as Qwen's 151,936; int32 past that)
    shard-00000/logp.npy      [entries] log-probs at the cache temperature: float16 / float32, or uint8 steps below
                              the row's maximum (``logp_dtype: uint8``)
    shard-00000/scale.npy     [rows, 2] float16 row maximum and step (uint8 only)
    index.npy                 per record: shard, first row, row count, fingerprint (int64)

A cache built across tokenizers (``loss.cross_tokenizer``; manifest ``rows_are: spans``) has one row per aligned
span of a record (``cotdistill.data.align``) instead of one per supervised position: the same entries over the
*teacher's* vocabulary where it predicts the span's first token, and two arrays more per shard::

    shard-00000/span_logp.npy [rows] float32 log p_T of the span's whole text (its teacher tokens merged)
    shard-00000/first.npy     [rows] int64 the span's first teacher token (a run checks it against its own spans)

How many entries a position keeps: ``top_k`` always, or with ``kl_target`` the fewest (at most ``top_k``) whose
reconstruction — the kept log-probs, the remaining mass spread evenly over the other tokens — is within
``kl_target`` nats (KL(dense ‖ reconstructed)) of the teacher's distribution there. A peaked position keeps a few
tokens, a flat one almost none (the even spread *is* its distribution). The loss reads the reconstruction as a
dense teacher.

Rows of a record are its supervised positions in order (position t predicts label t + 1). A record's
fingerprint hashes its token ids and labels, so a cache built for other data, another tokenizer or other
truncation settings is refused at training time, naming what differs. The teacher never enters training memory.

Every file is checked against the manifest's size and SHA-256 when the cache is opened, not the first time a shard
is read: a bad shard is then refused before any weights load, as every error a user can fix is, not some steps
into a run; the price is one sequential read of the cache per process (a second open in the same process, as a
sweep's check and its run, reuses the hashes: :func:`cotdistill.hashing.file_sha256`).
"""

from __future__ import annotations

import hashlib
import json
import typing
from dataclasses import asdict
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from cotdistill.data.batching import collate
from cotdistill.data.encode import IGNORE_INDEX, EncodeConfig, EncodedExample
from cotdistill.errors import UserError
from cotdistill.hashing import describe_files, file_mismatch
from cotdistill.losses import CachedRows
from cotdistill.models import shared_vocab_size, weights_fingerprint

# 3: the manifest lists every file's size and SHA-256, and the teacher's fingerprint hashes every byte. A version 2
# cache is refused, not read with a warning: its shards cannot be verified and its teacher fingerprint is not
# comparable with today's, so it would read as "another teacher"
CACHE_VERSION = 3
LogpDtype = Literal["float16", "float32", "uint8"]
LOGP_DTYPES = typing.get_args(LogpDtype)
TAIL_FLOOR = -69.0  # log(1e-30): an empty tail stays finite


class CacheMismatchError(UserError, ValueError):
    pass


def example_fingerprint(example: EncodedExample) -> int:
    digest = hashlib.blake2b(np.asarray(example.input_ids, dtype=np.int64).tobytes()
                             + np.asarray(example.labels, dtype=np.int64).tobytes(), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def tokenizer_fingerprint(tokenizer) -> str:
    vocab = json.dumps(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(vocab.encode()).hexdigest()[:16]


def kept_reconstruction_kl(t_logp: torch.Tensor, sorted_ids: torch.Tensor, sorted_logp: torch.Tensor,
                           keep: torch.Tensor) -> torch.Tensor:
    """KL(dense ‖ reconstructed) per row when row r keeps the entries where ``keep[r]`` is true (a prefix of the
    descending ``sorted_*``): what the loss will read, as :func:`losses.reconstruct_teacher_logp` builds it."""
    from cotdistill.losses import reconstruct_teacher_logp

    vocab = t_logp.shape[-1]
    ids = torch.where(keep, sorted_ids, sorted_ids[:, :1])
    mass = (sorted_logp.double().exp() * keep).sum(-1)
    # as TeacherCache.rows reads them: stored values whose rounding pushed the kept mass past 1 are renormalised
    sorted_logp = sorted_logp - mass.clamp_min(1.0).log()[:, None].to(sorted_logp.dtype)
    logp = torch.where(keep, sorted_logp, sorted_logp[:, :1])
    rest, others = (1.0 - mass).clamp_min(0.0), vocab - keep.sum(-1)
    tail = torch.where((rest > 0) & (others > 0), (rest / others.clamp_min(1)).log(), torch.full_like(rest, TAIL_FLOOR))
    recon = reconstruct_teacher_logp(ids, logp, tail.clamp_min(TAIL_FLOOR).float(), vocab)
    return (t_logp.exp() * (t_logp - recon)).sum(-1)


def as_stored(sorted_logp: torch.Tensor, keep: torch.Tensor, logp_dtype: str) -> torch.Tensor:
    """The kept log-probs ``[n, k]`` (``keep``: the kept entries, a prefix of each descending row) as the cache will
    give them back, by the very functions that write and read them (float16, or :func:`_quantise`'s uint8 steps).
    The manifest's KL is measured on these: the KL of what training reads, not of the values before storage."""
    if logp_dtype == "float32":
        return sorted_logp
    kept = sorted_logp[keep].cpu().numpy()
    counts = keep.sum(-1).cpu().numpy()
    if logp_dtype == "float16":
        values = kept.astype(np.float16).astype(np.float32)
    else:
        values = _dequantise(*_quantise(kept, counts), counts)
    stored = sorted_logp.clone()
    stored[keep] = torch.from_numpy(values).to(stored.device, stored.dtype)
    return stored


def entries_needed(top_logp: torch.Tensor, row_plogp: torch.Tensor, vocab: int,
                   kl_target: float | None) -> torch.Tensor:
    """Per row of the ``k_max`` largest log-probs ``[n, k_max]`` (descending) and the row's ``Σ p·log p`` over the
    whole vocabulary ``[n]``: the fewest entries k in [1, k_max] whose even-tail reconstruction is within
    ``kl_target`` nats. With the first k kept and tail mass m_k spread over V − k tokens,
    ``KL_k = Σ_{i>k} p_i·log p_i − m_k·log(m_k / (V − k))``, for every k at once from two cumulative sums (no sort
    of the whole vocabulary)."""
    n, k_max = top_logp.shape
    if kl_target is None or k_max >= vocab:
        return torch.full((n,), k_max, dtype=torch.long, device=top_logp.device)
    p = top_logp.double().exp()
    mass = (1.0 - p.cumsum(-1)).clamp_min(0.0)
    tail_plogp = row_plogp.double()[:, None] - (p * top_logp.double()).cumsum(-1)
    ks = torch.arange(1, k_max + 1, dtype=torch.float64, device=top_logp.device)
    spread = torch.where(mass > 0, mass * torch.log(mass.clamp_min(1e-300) / (vocab - ks)), torch.zeros_like(mass))
    ok = (tail_plogp - spread).clamp_min(0.0) <= kl_target
    first = torch.where(ok.any(-1), ok.float().argmax(-1), torch.full((n,), k_max - 1, device=top_logp.device))
    return first.long() + 1


def _id_dtype(vocab: int) -> str:
    return "uint16" if vocab <= 1 << 16 else "uint24" if vocab <= 1 << 24 else "int32"


def _pack_ids(ids: np.ndarray, id_dtype: str) -> np.ndarray:
    if id_dtype == "uint24":  # three little-endian bytes per id: 3 B instead of int32's 4 at Qwen's 151,936
        return ids.astype("<u4").view(np.uint8).reshape(-1, 4)[:, :3].copy()
    return ids.astype(id_dtype)


def _unpack_ids(stored: np.ndarray, id_dtype: str) -> np.ndarray:
    if id_dtype == "uint24":
        b = stored.astype(np.int64)
        return b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
    return stored.astype(np.int64)


def _quantise(logp: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 steps below each row's maximum, the step spanning the row's kept range; ``[rows, 2]`` float16 (max,
    step). The maximum is rounded to float16 first, so the stored one is the one the steps count from."""
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    row_max = np.maximum.reduceat(logp, starts).astype(np.float16)
    row_min = np.minimum.reduceat(logp, starts)
    step = np.maximum((row_max.astype(np.float32) - row_min) / 255.0, 1e-4).astype(np.float16)
    owner = np.repeat(np.arange(len(counts)), counts)
    steps = (row_max[owner].astype(np.float32) - logp) / step[owner].astype(np.float32)
    return np.clip(np.rint(steps), 0, 255).astype(np.uint8), np.stack([row_max, step], -1)


def _dequantise(q: np.ndarray, scale: np.ndarray, counts: np.ndarray) -> np.ndarray:
    owner = np.repeat(np.arange(len(counts)), counts)
    return scale[owner, 0].astype(np.float32) - q.astype(np.float32) * scale[owner, 1].astype(np.float32)


@torch.no_grad()
def build_cache(teacher, tokenizer, examples: list[EncodedExample], out: str | Path, *, top_k: int,
                encode_config: EncodeConfig, data_path: str, teacher_name: str, temperature: float = 1.0,
                batch_size: int = 8, shard_rows: int = 1 << 18, logp_dtype: str = "float16",
                kl_target: float | None = None, progress: bool = True, teacher_tokenizer=None) -> dict:
    """Run the teacher over ``examples`` and write the cache; returns the manifest. ``teacher`` is a model; with
    ``teacher_tokenizer`` (a teacher of another tokenizer) it is a
    :class:`cotdistill.teacher.cross.CrossTokenizerTeacher` wrapping one: then a row is an aligned span, not a
    supervised position, and the distributions are over the teacher's vocabulary."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cross = teacher_tokenizer is not None
    if cross:
        vocab = teacher.vocab
    else:  # the training loss's rule: the tokenizer's tokens, padding rows past them cut (refused if fewer)
        rows = teacher.get_output_embeddings().weight.shape[0]
        vocab = shared_vocab_size(rows, rows, len(tokenizer))
    if logp_dtype not in LOGP_DTYPES:
        raise ValueError(f"logp_dtype must be one of {LOGP_DTYPES}, got {logp_dtype!r}")
    if kl_target is not None and kl_target < 0:
        raise ValueError(f"kl_target must be >= 0 or None, got {kl_target}")
    k_max = min(top_k, vocab)
    id_dtype, count_dtype = _id_dtype(vocab), "uint8" if k_max <= 255 else "uint16"
    teacher.eval()
    device = next(teacher.parameters()).device
    spans: list[tuple[np.ndarray, np.ndarray]] = []  # cross caches: each row's span log-prob and first token
    index = np.zeros((max(e.index for e in examples) + 1, 4), dtype=np.int64)
    index[:, 0] = -1  # records without rows (dropped by truncation) have shard -1
    shard, pending, rows_in_shard, total_rows, total_entries, kl_sum = 0, [], 0, 0, 0, 0.0
    written: list[str] = []  # this build's files (a folder rebuilt with fewer shards keeps the old ones, unread)

    def flush() -> None:
        nonlocal shard, pending, rows_in_shard
        if not pending:
            return
        d = out / f"shard-{shard:05d}"
        d.mkdir(exist_ok=True)
        counts = np.concatenate([c for c, _, _ in pending])
        ids = np.concatenate([i for _, i, _ in pending])
        logp = np.concatenate([lp for _, _, lp in pending])
        arrays = {"counts": counts.astype(count_dtype), "ids": _pack_ids(ids, id_dtype)}
        if logp_dtype == "uint8":
            arrays["logp"], arrays["scale"] = _quantise(logp, counts)
        else:
            arrays["logp"] = logp.astype(logp_dtype)
        if cross:
            arrays["span_logp"] = np.concatenate([lp for lp, _ in spans]).astype(np.float32)
            arrays["first"] = np.concatenate([f for _, f in spans]).astype(np.int64)
            spans.clear()
        for name, array in arrays.items():
            np.save(d / f"{name}.npy", array)
            written.append(f"{d.name}/{name}.npy")
        shard, pending, rows_in_shard = shard + 1, [], 0

    for b in tqdm(range(0, len(examples), batch_size), desc="teacher cache", disable=not progress):
        batch_examples = examples[b:b + batch_size]
        batch = {k: v.to(device) for k, v in collate(batch_examples, tokenizer.pad_token_id).items()}
        mask = batch["labels"][:, 1:] != IGNORE_INDEX
        if cross:
            by_record = teacher.logprobs_by_record(batch, batch_examples, mask)
            spans += [(lp.cpu().numpy(), f.cpu().numpy()) for _, lp, f in by_record]
            row_logps = [t_logp for t_logp, _, _ in by_record]
        else:
            logits = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                             use_cache=False).logits[:, :-1, :vocab]
            row_logps = [F.log_softmax(logits[row][mask[row]].float() / temperature, -1)
                         for row in range(len(batch_examples))]
        for ex, t_logp in zip(batch_examples, row_logps):
            # on the teacher's device: the top entries and per-row sums, never a sort of the whole vocabulary
            sorted_logp, sorted_ids = t_logp.topk(k_max, -1)
            row_plogp = (t_logp.exp() * t_logp).sum(-1)
            counts_t = entries_needed(sorted_logp, row_plogp, vocab, kl_target)
            keep_t = torch.arange(k_max, device=t_logp.device)[None, :] < counts_t[:, None]
            stored = as_stored(sorted_logp, keep_t, logp_dtype)
            kl_sum += kept_reconstruction_kl(t_logp, sorted_ids, stored, keep_t).sum().item()
            counts, keep = counts_t.cpu().numpy(), keep_t.cpu().numpy()
            sorted_logp, sorted_ids = sorted_logp.cpu(), sorted_ids.cpu()
            n = len(counts)
            index[ex.index] = (shard, rows_in_shard, n, example_fingerprint(ex))
            pending.append((counts, sorted_ids.numpy()[keep], sorted_logp.numpy()[keep]))
            rows_in_shard += n
            total_rows += n
            total_entries += int(counts.sum())
        if rows_in_shard >= shard_rows:
            flush()
    flush()
    np.save(out / "index.npy", index)
    files = describe_files(out, ["index.npy", *written])
    bytes_total = sum(f["bytes"] for name, f in files.items() if name != "index.npy")
    supervised = sum(e.num_supervised for e in examples)
    manifest = {
        "version": CACHE_VERSION, "teacher": teacher_name, "teacher_weights": weights_fingerprint(teacher_name),
        "data_path": data_path, "top_k": k_max, "kl_target": kl_target,
        "temperature": temperature, "vocab_size": vocab, "tokenizer": tokenizer_fingerprint(tokenizer),
        "encode": asdict(encode_config), "records": len(examples), "rows": total_rows, "shards": shard,
        "entries": total_entries, "mean_entries_per_token": total_entries / max(total_rows, 1),
        "bytes": bytes_total, "bytes_per_supervised_token": bytes_total / max(supervised, 1),
        "bytes_per_row": bytes_total / max(total_rows, 1),
        # a row is a supervised position, or (across tokenizers) an aligned span over the teacher's vocabulary
        "rows_are": "spans" if cross else "positions",
        "teacher_tokenizer": tokenizer_fingerprint(teacher_tokenizer) if cross else None,
        "mean_kl_dense_vs_reconstructed": kl_sum / max(total_rows, 1),
        "id_dtype": id_dtype, "logp_dtype": logp_dtype, "count_dtype": count_dtype, "files": files,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


class TeacherCache:
    """A cache read back: the offline :class:`cotdistill.teacher.Teacher`, covering the records it was built on."""

    def __init__(self, root: Path, manifest: dict, index: np.ndarray) -> None:
        self.root, self.manifest, self.index = root, manifest, index
        self._shards: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._extras: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # across tokenizers: span log-probs, first ids

    @classmethod
    def open(cls, path: str | Path) -> TeacherCache:
        root = Path(path)
        if not (root / "manifest.json").exists():
            raise FileNotFoundError(f"{root}: not a teacher cache (no manifest.json); build one with "
                                    "`cotdistill teacher cache`")
        try:
            manifest = json.loads((root / "manifest.json").read_text())
        except ValueError as err:
            raise CacheMismatchError(f"teacher cache {root}: manifest.json is not JSON ({err}); rebuild it with "
                                     "`cotdistill teacher cache`") from None
        if not isinstance(manifest, dict) or manifest.get("version") != CACHE_VERSION:
            found = manifest.get("version") if isinstance(manifest, dict) else None
            raise CacheMismatchError(f"teacher cache {root} has format version {found}; this cotdistill reads "
                                     f"version {CACHE_VERSION}: rebuild it with `cotdistill teacher cache`")
        mismatch = file_mismatch(root, manifest["files"])
        if mismatch:
            raise CacheMismatchError(f"teacher cache {root}: {mismatch}; rebuild it with `cotdistill teacher cache`")
        return cls(root, manifest, np.load(root / "index.npy"))

    def check_compatible(self, tokenizer, encode_config: EncodeConfig, data_path: str,
                         examples: list[EncodedExample], temperature: float, teacher: str | None = None,
                         teacher_tokenizer=None) -> None:
        """Refuse a cache whose content this run would not have computed: another tokenizer, truncation,
        temperature, record content, or (when the run names a teacher) another teacher's weights. A run across
        tokenizers passes the ``teacher_tokenizer``, and reads only caches built across the same two."""
        m = self.manifest  # its format and files were checked by open()
        problems = []
        if teacher and m.get("teacher_weights") and m["teacher_weights"] != weights_fingerprint(teacher):
            problems.append(f"it holds the distributions of {m['teacher']}, and the run names the teacher {teacher} "
                            "(another model); set teacher to the cache's teacher, or to null to train from the "
                            "cache alone")
        across = m.get("rows_are") == "spans"
        # the tail is spread over the tokens the loss reads (the teacher's, across tokenizers): no more or fewer
        reads = teacher_tokenizer if teacher_tokenizer is not None else tokenizer
        if across != (teacher_tokenizer is not None):
            problems.append("it was built across tokenizers and the run has one (set loss.cross_tokenizer)" if across
                            else "it was built for one tokenizer and the run distils across two")
        elif m["tokenizer"] != tokenizer_fingerprint(tokenizer):
            problems.append("it was built with another tokenizer")
        elif across and m["teacher_tokenizer"] != tokenizer_fingerprint(teacher_tokenizer):
            problems.append("it was built with another teacher tokenizer")
        elif m["vocab_size"] != len(reads):
            problems.append(f"it spreads its tail over {m['vocab_size']} tokens, the tokenizer has {len(reads)}")
        if m["encode"] != asdict(encode_config):
            diff = {k: (m["encode"].get(k), v) for k, v in asdict(encode_config).items() if m["encode"].get(k) != v}
            problems.append(f"truncation/encoding settings differ (cache vs run): {diff}")
        if m["temperature"] != temperature:
            problems.append(f"temperature {m['temperature']} in the cache vs {temperature} in the run")
        if not problems:
            bad = self._uncovered(examples)
            if bad:
                problems.append(f"{len(bad)} records differ from the cached ones (first: record {bad[0]}); "
                                f"cache built from {m['data_path']}, run uses {data_path}")
        if problems:
            raise CacheMismatchError(f"teacher cache {self.root} does not fit this run: " + "; ".join(problems))

    def _uncovered(self, examples: list[EncodedExample]) -> list[int]:
        """The indices of the records whose content differs from the cached record at that index (or that has none)."""
        return [e.index for e in examples
                if e.index >= len(self.index) or self.index[e.index, 3] != example_fingerprint(e)]

    def covers(self, examples: list[EncodedExample]) -> bool:
        """Whether every record is cached, by content: a validation tail split off the cached file is, a separate
        validation file (whose indices count from 0 again) is not."""
        return not self._uncovered(examples)

    def inputs(self, tensors: dict[str, torch.Tensor | None], indices: list[int],
               targets_mask: torch.Tensor) -> CachedRows:
        """The records' cached rows (see :meth:`rows`) on the batch's device, for the loss."""
        ids, logp, tail = self.rows(indices)
        supervised = int(targets_mask.sum())
        if len(ids) != supervised:  # a record cut after the cache was built would pair rows with the wrong positions
            raise CacheMismatchError(f"teacher cache {self.root} holds {len(ids)} rows for records {indices}, the "
                                     f"batch has {supervised} supervised positions")
        device = targets_mask.device
        return CachedRows(ids.to(device), logp.to(device), tail.to(device))

    def _shard(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(row offsets, counts, ids, log-probs) of shard ``i``, decoded once and kept."""
        if i not in self._shards:
            d, m = self.root / f"shard-{i:05d}", self.manifest
            try:  # open() verified the files; one cut short since (a full disk, a copy still running) fails here
                counts = np.load(d / "counts.npy").astype(np.int64)
                ids = _unpack_ids(np.load(d / "ids.npy"), m["id_dtype"])
                logp = np.load(d / "logp.npy")
                logp = (_dequantise(logp, np.load(d / "scale.npy"), counts) if m["logp_dtype"] == "uint8"
                        else logp.astype(np.float32))
            except (OSError, ValueError, EOFError) as err:
                raise CacheMismatchError(f"teacher cache {self.root}: {d.name} cannot be read ({err}); rebuild it "
                                         "with `cotdistill teacher cache`") from None
            offsets = np.concatenate([[0], np.cumsum(counts)])
            self._shards[i] = (offsets, counts, ids, logp)
        return self._shards[i]

    def span_rows(self, record_indices: list[int]) -> tuple[torch.Tensor, ...]:
        """A cache built across tokenizers: :meth:`rows` (one per aligned span), then each span's log-prob ``[N]``
        and first teacher token ``[N]``."""
        ids, logp, tail = self.rows(record_indices)
        span_logp, first = [], []
        for r in record_indices:
            shard, start, n, _ = (int(x) for x in self.index[r])
            if n:
                extras = self._span_extras(shard)
                span_logp.append(extras[0][start:start + n])
                first.append(extras[1][start:start + n])
        span_logp = np.concatenate(span_logp) if span_logp else np.zeros(0, np.float32)
        first = np.concatenate(first) if first else np.zeros(0, np.int64)
        return ids, logp, tail, torch.from_numpy(span_logp), torch.from_numpy(first.astype(np.int64))

    def _span_extras(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if i not in self._extras:
            d = self.root / f"shard-{i:05d}"
            try:
                self._extras[i] = (np.load(d / "span_logp.npy"), np.load(d / "first.npy"))
            except (OSError, ValueError, EOFError) as err:
                raise CacheMismatchError(f"teacher cache {self.root}: {d.name} cannot be read ({err}); rebuild it "
                                         "with `cotdistill teacher cache`") from None
        return self._extras[i]

    def rows(self, record_indices: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The records' supervised positions, concatenated: ids ``[N, K]`` (long) and log-probs ``[N, K]``
        (float32) of the kept entries, ``K`` the most any of them kept (shorter rows repeat their last entry, which
        writes the same value again), and ``[N]`` the log-prob of each token outside them (tail mass spread evenly;
        floored at log 1e-30)."""
        ids, logp, counts = [], [], []
        for r in record_indices:  # gathered per record, vectorised over its positions
            shard, start, n, _ = (int(x) for x in self.index[r])
            if n == 0:  # across tokenizers a record may align no span
                continue
            offsets, shard_counts, shard_ids, shard_logp = self._shard(shard)
            c = shard_counts[start:start + n]
            width = int(c.max())
            take = offsets[start:start + n, None] + np.minimum(np.arange(width)[None, :], c[:, None] - 1)
            ids.append(shard_ids[take])
            logp.append(shard_logp[take])
            counts.append(c)
        if not ids:
            return torch.zeros(0, 1, dtype=torch.long), torch.zeros(0, 1), torch.zeros(0)
        width = max(x.shape[1] for x in ids)
        # pad every record's block to one width by repeating its last column (the same id and log-prob again)
        out_ids = np.concatenate([np.pad(x, ((0, 0), (0, width - x.shape[1])), mode="edge") for x in ids])
        out_logp = np.concatenate([np.pad(x, ((0, 0), (0, width - x.shape[1])), mode="edge") for x in logp])
        counts = np.concatenate(counts)
        kept = np.arange(width)[None, :] < counts[:, None]
        mass = (np.exp(out_logp.astype(np.float64)) * kept).sum(-1)
        # rounding of stored log-probs can push the kept mass past 1: renormalise them and leave no tail
        out_logp = (out_logp - np.log(np.maximum(mass, 1.0))[:, None]).astype(np.float32)
        rest, others = 1.0 - np.minimum(mass, 1.0), self.manifest["vocab_size"] - counts
        with np.errstate(divide="ignore"):
            tail = np.where((rest > 0) & (others > 0), np.log(rest / np.maximum(others, 1)), TAIL_FLOOR)
        tail = np.maximum(tail, TAIL_FLOOR).astype(np.float32)
        return torch.from_numpy(out_ids.astype(np.int64)), torch.from_numpy(out_logp), torch.from_numpy(tail)
