"""``teacher cache --train-config RUN.yaml`` builds the cache the run will read: the run's teacher, data, encode,
temperature and output folder, so the run accepts it without a flag repeated by hand."""

from __future__ import annotations

import json
from dataclasses import asdict

from cotdistill.cli import main
from cotdistill.config import save_config
from cotdistill.training.loop import train
from tests.training.helpers import tiny_config


def test_a_cache_built_from_the_training_config_fits_that_run(tmp_path, capsys):
    config = tiny_config(tmp_path, **{"encode.truncation": "lsp", "encode.lsp": 0.5, "loss.temperature": 2.0,
                                      "teacher_cache": str(tmp_path / "cache"), "optim.max_steps": 1})
    save_config(config, tmp_path / "run.yaml")
    assert main(["teacher", "cache", "--train-config", str(tmp_path / "run.yaml"), "top_k=4"]) == 0
    assert f"cache written to {tmp_path / 'cache'}" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert manifest["encode"] == asdict(config.encode) and manifest["temperature"] == 2.0
    assert manifest["data_path"] == config.data.path and manifest["top_k"] <= 4
    summary = train(config)  # the run checks its cache against itself: nothing to disagree about
    assert summary["steps"] == 1
