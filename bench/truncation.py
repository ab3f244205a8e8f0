"""Distil the embedded student for a fixed number of records at LSP 1.0 and LSP 0.5, side by side.

Each setting runs in its own process (so peak memory is measured from a clean allocator) with the same records,
seed, batch size and loss (forward KL mixed with CE, r = 0.5). Prints the run summaries and the ratios
LSP 0.5 / LSP 1.0 of wall time, training FLOPs and peak memory above the loaded-models baseline.

    python bench/truncation.py [--records 512] [--batch-size 8] [--lsps 1.0,0.5]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def run_setting(lsp: float, records: int, batch_size: int, out: Path, device: str) -> dict:
    overrides = [f"output_dir={out}", f"data.path=world:train:teacher:{records}", "data.val_fraction=0",
                 f"optim.batch_size={batch_size}", "optim.epochs=1", "eval_every=0", "save_every=0",
                 "keep_best=false", "progress=false", f"device={device}", "loss.distill_ratio=0.5"]
    if lsp < 1.0:
        overrides += ["encode.truncation=lsp", f"encode.lsp={lsp}"]
    subprocess.run([sys.executable, "-m", "cotdistill", "train", *overrides], check=True,
                   stdout=subprocess.DEVNULL)
    return json.loads((out / "run_summary.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lsps", default="1.0,0.5")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    lsps = [float(x) for x in args.lsps.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        summaries = {lsp: run_setting(lsp, args.records, args.batch_size, Path(tmp) / f"lsp{lsp}", args.device)
                     for lsp in lsps}
    base = summaries[lsps[0]]
    print(f"{'lsp':>5} {'records':>7} {'tokens':>9} {'supervised':>10} {'GFLOPs':>9} {'wall_s':>8} {'peak_MiB':>9}")
    for lsp, s in summaries.items():
        print(f"{lsp:>5} {s['records']:>7} {s['processed_tokens']:>9} {s['supervised_tokens']:>10} "
              f"{s['flops'] / 1e9:>9.2f} {s['wall_time_s']:>8.2f} {s['peak_memory_bytes'] / 2**20:>9.1f}")
    results = {}
    for lsp in lsps[1:]:
        s = summaries[lsp]
        tag = str(lsp).replace(".", "")
        results[f"time_ratio_{tag}"] = s["wall_time_s"] / base["wall_time_s"]
        results[f"flops_ratio_{tag}"] = s["flops"] / base["flops"]
        results[f"memory_ratio_{tag}"] = s["peak_memory_bytes"] / max(base["peak_memory_bytes"], 1)
        results[f"tokens_ratio_{tag}"] = s["processed_tokens"] / base["processed_tokens"]
    results["records"] = args.records
    results["device"] = base["device"]
    print("RESULT " + " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in results.items()))


if __name__ == "__main__":
    main()
