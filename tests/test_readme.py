"""The README's "Your own models and data" runs as written, top to bottom (its bash block, then its Python block),
in a fresh folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _blocks(section: str) -> dict[str, str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return {lang: code for lang, code in re.findall(r"```(bash|python)\n(.*?)```", body, flags=re.S)}


def test_your_own_models_and_data_runs_as_written(tmp_path):
    blocks = _blocks("Your own models and data")
    venv_bin = str(Path(sys.executable).parent) + "/"
    script = blocks["bash"].replace(".venv/bin/", venv_bin).replace("scripts/", f"{ROOT}/scripts/")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for made in ("runs/kit/final/config.json", "runs/kit/loss_curve.png", "runs/kit-eval/samples.jsonl",
                 "runs/kit-trace/trace.html", "runs/kit-sweep/tradeoff.csv"):
        assert (tmp_path / made).exists(), made
    assert list((tmp_path / "runs/kit/tensorboard").glob("events.out.tfevents.*"))
    for point in ("lsp0.5", "lsp1"):
        assert '"bench": "gsm8k"' in (tmp_path / "runs/kit-sweep" / point / "eval/results.json").read_text()
    assert "trained model: runs/kit/final" in done.stdout and "step 12/12" in done.stderr

    done = subprocess.run([sys.executable, "-c", blocks["python"]], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    final_model, accuracy = done.stdout.split()[:2]
    assert final_model == "runs/kit-objects/final" and 0.0 <= float(accuracy) <= 1.0
    assert (tmp_path / "runs/kit-py/final/config.json").exists()
