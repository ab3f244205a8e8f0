"""Offline teacher: the top-k log-probs of the teacher at every supervised position, stored in shards.

Layout of a cache directory::

    manifest.json            settings, fingerprints, sizes, quality (KL of dense vs reconstructed teacher)
    shard-00000/ids.npy      [rows, k] token ids (uint16 when the vocab fits, else int32)
    shard-00000/logp.npy     [rows, k] log-probs at the cache temperature (float16 by default, or float32)
    index.npy                per record: shard, first row, row count, fingerprint (int64)

Rows of a record are its supervised positions in order (position t predicts label t + 1). A record's
fingerprint hashes its token ids and labels, so a cache built for other data, another tokenizer or other
truncation settings is refused at training time, naming what differs. The teacher never enters training memory.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from cotdistill.data.batching import collate
from cotdistill.data.encode import IGNORE_INDEX, EncodeConfig, EncodedExample
from cotdistill.errors import UserError
from cotdistill.models import weights_fingerprint

CACHE_VERSION = 1


class CacheMismatchError(UserError, ValueError):
    pass


def example_fingerprint(example: EncodedExample) -> int:
    digest = hashlib.blake2b(np.asarray(example.input_ids, dtype=np.int64).tobytes()
                             + np.asarray(example.labels, dtype=np.int64).tobytes(), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def tokenizer_fingerprint(tokenizer) -> str:
    vocab = json.dumps(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(vocab.encode()).hexdigest()[:16]


def reconstruction_kl(t_logp: torch.Tensor, topk_ids: torch.Tensor, topk_logp: torch.Tensor) -> torch.Tensor:
    """KL(dense ‖ reconstructed) per row; the reconstruction spreads the tail mass evenly over the other tokens."""
    vocab, k = t_logp.shape[-1], topk_ids.shape[-1]
    if k >= vocab:
        return torch.zeros(t_logp.shape[0])
    p = t_logp.exp()
    tail_mass = (1 - topk_logp.exp().sum(-1, keepdim=True)).clamp_min(1e-30)
    recon_logp = (tail_mass / (vocab - k)).log().expand_as(t_logp).clone()
    recon_logp.scatter_(-1, topk_ids, topk_logp)
    return (p * (t_logp - recon_logp)).sum(-1)


@torch.no_grad()
def build_cache(teacher, tokenizer, examples: list[EncodedExample], out: str | Path, *, top_k: int,
                encode_config: EncodeConfig, data_path: str, teacher_name: str, temperature: float = 1.0,
                batch_size: int = 8, shard_rows: int = 1 << 18, logp_dtype: str = "float16",
                progress: bool = True) -> dict:
    """Run the teacher over ``examples`` and write the cache; returns the manifest."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vocab = teacher.config.vocab_size
    if logp_dtype not in ("float16", "float32"):
        raise ValueError(f"logp_dtype must be float16 or float32, got {logp_dtype!r}")
    id_dtype = np.uint16 if vocab <= np.iinfo(np.uint16).max else np.int32
    teacher.eval()
    device = next(teacher.parameters()).device
    index = np.zeros((max(e.index for e in examples) + 1, 4), dtype=np.int64)
    index[:, 0] = -1  # records without rows (dropped by truncation) have shard -1
    shard, shard_ids, shard_logp, rows_in_shard, total_rows, kl_sum = 0, [], [], 0, 0, 0.0

    def flush() -> None:
        nonlocal shard, shard_ids, shard_logp, rows_in_shard
        if not shard_ids:
            return
        d = out / f"shard-{shard:05d}"
        d.mkdir(exist_ok=True)
        np.save(d / "ids.npy", np.concatenate(shard_ids).astype(id_dtype))
        np.save(d / "logp.npy", np.concatenate(shard_logp).astype(logp_dtype))
        shard, shard_ids, shard_logp, rows_in_shard = shard + 1, [], [], 0

    for b in tqdm(range(0, len(examples), batch_size), desc="teacher cache", disable=not progress):
        batch_examples = examples[b:b + batch_size]
        batch = collate(batch_examples, tokenizer.pad_token_id)
        logits = teacher(input_ids=batch["input_ids"].to(device),
                         attention_mask=batch["attention_mask"].to(device),
                         use_cache=False).logits[:, :-1, :len(tokenizer)]
        mask = (batch["labels"][:, 1:] != IGNORE_INDEX).to(device)
        for row, ex in enumerate(batch_examples):
            t_logp = F.log_softmax(logits[row][mask[row]].float() / temperature, -1)
            top_logp, top_ids = t_logp.topk(min(top_k, t_logp.shape[-1]), -1)
            kl_sum += reconstruction_kl(t_logp, top_ids, top_logp).sum().item()
            n = top_ids.shape[0]
            index[ex.index] = (shard, rows_in_shard, n, example_fingerprint(ex))
            shard_ids.append(top_ids.cpu().numpy())
            shard_logp.append(top_logp.cpu().numpy())
            rows_in_shard += n
            total_rows += n
        if rows_in_shard >= shard_rows:
            flush()
    flush()
    np.save(out / "index.npy", index)
    k = min(top_k, len(tokenizer))
    bytes_total = sum(p.stat().st_size for p in out.glob("shard-*/*.npy"))
    manifest = {
        "version": CACHE_VERSION, "teacher": teacher_name, "teacher_weights": weights_fingerprint(teacher_name),
        "data_path": data_path, "top_k": k,
        "temperature": temperature, "vocab_size": vocab, "tokenizer": tokenizer_fingerprint(tokenizer),
        "encode": asdict(encode_config), "records": len(examples), "rows": total_rows, "shards": shard,
        "bytes": bytes_total, "bytes_per_supervised_token": bytes_total / max(total_rows, 1),
        "mean_kl_dense_vs_reconstructed": kl_sum / max(total_rows, 1),
        "id_dtype": np.dtype(id_dtype).name, "logp_dtype": logp_dtype,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


class TeacherCache:
    def __init__(self, root: Path, manifest: dict, index: np.ndarray) -> None:
        self.root, self.manifest, self.index = root, manifest, index
        self._shards: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    @classmethod
    def open(cls, path: str | Path) -> TeacherCache:
        root = Path(path)
        if not (root / "manifest.json").exists():
            raise FileNotFoundError(f"{root}: not a teacher cache (no manifest.json); build one with "
                                    "`cotdistill teacher cache`")
        manifest = json.loads((root / "manifest.json").read_text())
        return cls(root, manifest, np.load(root / "index.npy"))

    def check_compatible(self, tokenizer, encode_config: EncodeConfig, data_path: str,
                         examples: list[EncodedExample], temperature: float, teacher: str | None = None) -> None:
        """Refuse a cache whose content this run would not have computed: another tokenizer, truncation,
        temperature, record content, or (when the run names a teacher) another teacher's weights."""
        m = self.manifest
        problems = []
        if teacher and m.get("teacher_weights") and m["teacher_weights"] != weights_fingerprint(teacher):
            problems.append(f"it holds the distributions of {m['teacher']}, and the run names the teacher {teacher} "
                            "(another model); set teacher to the cache's teacher, or to null to train from the "
                            "cache alone")
        if m["tokenizer"] != tokenizer_fingerprint(tokenizer):
            problems.append("it was built with another tokenizer")
        if m["encode"] != asdict(encode_config):
            diff = {k: (m["encode"].get(k), v) for k, v in asdict(encode_config).items() if m["encode"].get(k) != v}
            problems.append(f"truncation/encoding settings differ (cache vs run): {diff}")
        if m["temperature"] != temperature:
            problems.append(f"temperature {m['temperature']} in the cache vs {temperature} in the run")
        if not problems:
            bad = [e.index for e in examples
                   if e.index >= len(self.index) or self.index[e.index, 3] != example_fingerprint(e)]
            if bad:
                problems.append(f"{len(bad)} records differ from the cached ones (first: record {bad[0]}); "
                                f"cache built from {m['data_path']}, run uses {data_path}")
        if problems:
            raise CacheMismatchError(f"teacher cache {self.root} does not fit this run: " + "; ".join(problems))

    def _shard(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if i not in self._shards:
            d = self.root / f"shard-{i:05d}"
            self._shards[i] = (np.load(d / "ids.npy", mmap_mode="r"), np.load(d / "logp.npy", mmap_mode="r"))
        return self._shards[i]

    def rows(self, record_indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k ids (long) and log-probs (float32) of these records' supervised positions, concatenated."""
        ids, logp = [], []
        for r in record_indices:
            shard, start, n, _ = self.index[r]
            shard_ids, shard_logp = self._shard(int(shard))
            ids.append(np.asarray(shard_ids[start:start + n], dtype=np.int64))
            logp.append(np.asarray(shard_logp[start:start + n], dtype=np.float32))
        return torch.from_numpy(np.concatenate(ids)), torch.from_numpy(np.concatenate(logp))
