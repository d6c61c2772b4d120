"""keypilot bench train: both paths run the real step on real batches and report every phase."""

from __future__ import annotations

import torch
from conftest import shared_data, write_config

from keypilot.train.bench import PHASES, bench_train, format_results


def test_old_and_new_paths_report_their_phases(tmp_path, tmp_path_factory, one_torch_thread):
    data = shared_data(tmp_path_factory)
    config = write_config(tmp_path)
    results = [bench_train(config, data=data, path=path, steps=2, warmup=1) for path in ("old", "new")]
    old, new = results
    assert old["setup"].startswith("decoded screenshots, 2 workers, fp32, for-loop AdamW")
    assert new["setup"].startswith("shard cache, 0 workers") and "fused AdamW" in new["setup"]
    for r in results:
        assert r["batch_size"] == 4 and r["samples_per_s"] > 0 and r["peak_rss_gb"] > 0
        assert all(r[f"{phase}_ms"] >= 0 for phase in PHASES) and r["forward_ms"] > 0 and r["backward_ms"] > 0
    assert list((data / ".cache").glob("train-128x64-*/meta.json"))  # the new path read the cache
    table = format_results(results)
    assert "new / old:" in table and "data" in table and "optimizer" in table
    synthetic = bench_train(config, steps=1, warmup=1, batch_size=2)
    assert synthetic["data"] is None and synthetic["batch_size"] == 2 and torch.get_num_threads() == 1
