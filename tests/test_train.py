"""keypilot train: run folder, metrics, accumulation, the non-finite guard, data and tokenizer errors.

Real model, loss, dataset and generator, at a small size (tiny config, 128 x 64 screenshots).
The run helpers are conftest.py's, shared with test_checkpoint.py and test_distributed.py.
"""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from conftest import data_copy, read_metrics, shared_data, write_config

from keypilot.cli import main as cli_main
from keypilot.config import load_config
from keypilot.labels import LAYOUTS
from keypilot.train import loop
from keypilot.train.checkpoint import list_checkpoints, load_checkpoint

LOSS_KEYS = ("loss_total", "loss_encoder", "loss_decoder", "loss_align", "loss_contrastive", "loss_text",
             "loss_task", "loss_layout", "loss_consistency", "loss_load", "loss_roi_mask")


@pytest.fixture(autouse=True)
def one_cpu_thread():
    """One intra-op thread: on 2 cores shared with loader workers (or a busy machine) a second
    thread mostly spins waiting for the first, which costs up to 5x the CPU time."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_short_run_writes_every_run_folder_file(tmp_path, tmp_path_factory):
    from keypilot.models.keypilot_model import KeyPilotModel

    data = data_copy(shared_data(tmp_path_factory), tmp_path / "data", tokenizer=False)
    config = write_config(tmp_path, eval_every=3, save_every=3, keep_last=1, num_workers=2)
    run = tmp_path / "run"
    assert cli_main(["train", "--config", str(config), "--data", str(data), "--out", str(run),
                     "--max-steps", "6", "--log-every", "2", "--device", "cpu"]) == 0

    for name in ("config.yaml", "tokenizer.json", "model.safetensors", "best.safetensors", "metrics.jsonl",
                 "loss_curves.png"):
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert [step for step, _ in list_checkpoints(run / "checkpoints")] == [6]  # keep_last=1
    assert not list(run.rglob(".*.tmp"))
    # The data set's priors were copied into the run, and the fusion weight fitted on val.
    assert (run / "priors").is_dir() and not (run / "priors").is_symlink()
    fitted = json.loads((run / "fusion.json").read_text(encoding="utf-8"))
    assert fitted["records"] > 0 and str(float(fitted["prior_weight"])) in {str(float(b)) for b in fitted["top5"]}
    if "suggestion_weight" in fitted:  # val suggestions with copy candidates from the screen
        assert fitted["suggestion_records"] > 0 and set(fitted["suggestion_exact"]) == set(fitted["top5"])
    # ... and the layout router's offsets: balanced accuracy no worse on val, overall accuracy
    # within the bound, and the predictor decides with them.
    from keypilot.inference.fit_fusion import MAX_ACCURACY_COST, OFFSET_GRID
    from keypilot.inference.predictor import Predictor

    assert list(fitted["layout_offsets"]) == list(LAYOUTS) and set(fitted["layout_offsets"].values()) <= set(OFFSET_GRID)
    fit = fitted["layout_fit"]
    assert fit["balanced_after"] >= fit["balanced_before"]
    assert fit["accuracy_after"] >= fit["accuracy_before"] - MAX_ACCURACY_COST - 1e-6
    loaded = Predictor.from_pretrained(run).model.layout_router.logit_offset.tolist()
    assert loaded == [fitted["layout_offsets"][layout] for layout in LAYOUTS]
    # The tokenizer was trained (the data folder has none) and the config records the overrides.
    assert json.loads((run / "tokenizer.json").read_text(encoding="utf-8"))
    saved = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    assert saved["training"]["max_steps"] == 6 and saved["training"]["log_every"] == 2

    records = read_metrics(run)
    train = [r for r in records if r["split"] == "train"]
    assert [r["step"] for r in train] == [2, 4, 6]
    for record in train:
        assert set(LOSS_KEYS) <= set(record) and {"lr", "samples_per_s"} <= set(record)
    val = [r for r in records if r["split"] == "val"]
    assert [r["step"] for r in val] == [3, 6]
    for key in ("loss_total", "task_acc", "layout_acc", "token_top1", "token_top5", "token_acc"):
        assert key in val[0]
    assert 0.0 <= val[0]["token_top1"] <= val[0]["token_top5"] <= 1.0

    model = KeyPilotModel.from_pretrained(run)  # the run folder alone is enough
    state = load_checkpoint(run / "checkpoints" / "step-6.pt")["model"]
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(tensor, state[name], rtol=0, atol=0)


def test_existing_run_needs_resume(tmp_path, tmp_path_factory, capsys):
    data = shared_data(tmp_path_factory)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "step-5.pt").write_bytes(b"")
    config = write_config(tmp_path)
    assert cli_main(["train", "--config", str(config), "--data", str(data), "--out", str(run), "--device", "cpu"]) == 1
    assert "--resume" in capsys.readouterr().err


def test_tokenizer_larger_than_model_vocab_is_an_error(tmp_path, tmp_path_factory, capsys):
    data = shared_data(tmp_path_factory)
    config = load_config(write_config(tmp_path))
    config["model"]["vocab_size"] = 1000
    path = tmp_path / "small-vocab.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    assert cli_main(["train", "--config", str(path), "--data", str(data), "--out", str(tmp_path / "run"),
                     "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert "model.vocab_size is 1000" in err and "tokenizer.json" in err


def test_bad_record_stops_the_run_unless_skip_bad(tmp_path, tmp_path_factory, capsys):
    source = shared_data(tmp_path_factory)
    data = data_copy(source, tmp_path / "data", tokenizer=True, extra_train_line='{"id": "broken"}')
    bad_line = len((source / "train.jsonl").read_text(encoding="utf-8").splitlines()) + 1
    config = write_config(tmp_path)
    args = ["train", "--config", str(config), "--data", str(data), "--device", "cpu", "--max-steps", "1"]
    assert cli_main([*args, "--out", str(tmp_path / "run1")]) == 1
    assert f"train.jsonl:{bad_line}:" in capsys.readouterr().err
    assert cli_main([*args, "--out", str(tmp_path / "run2"), "--skip-bad"]) == 0
    assert (tmp_path / "run2" / "model.safetensors").is_file()


def test_leftover_micro_batches_make_a_correctly_averaged_step(tmp_path, tmp_path_factory, monkeypatch):
    """5 micro-batches per epoch with grad_accum_steps=3: a step of 3, then one of the 2 left over,
    each applying the mean of its micro-batches' gradients (checked against separate backward passes)."""
    data = shared_data(tmp_path_factory)
    num_train = len((data / "train.jsonl").read_text(encoding="utf-8").splitlines())
    batch_size = -(-num_train // 5)  # 5 batches per epoch
    assert -(-num_train // batch_size) == 5
    # No dropout and no clipping, so each micro-batch's gradient can be recomputed exactly.
    config = load_config(write_config(tmp_path, batch_size=batch_size, grad_accum_steps=3, grad_clip=0.0, epochs=1))
    config["model"]["text_encoder"]["dropout"] = config["model"]["fusion"]["dropout"] = 0.0
    config["model"]["moe"]["router_dropout"] = 0.0
    path = tmp_path / "no-dropout.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")

    seen: list[tuple] = []
    real_forward_loss, real_build_optimizer = loop.forward_loss, loop.build_optimizer

    def recording_forward_loss(model, criterion, batch, weight):
        seen.append((model, criterion, batch, weight))
        return real_forward_loss(model, criterion, batch, weight)

    checked: list[int] = []

    def check_step(optimizer, args, kwargs):
        model, criterion, _, weight = seen[0]
        params = [p for group in optimizer.param_groups for p in group["params"]]
        expected = [torch.zeros_like(p) for p in params]
        scales = [0.0] * len(params)  # largest per-batch gradient of each tensor
        for _, _, batch, _ in seen:
            total, _, _ = real_forward_loss(model, criterion, batch, weight)
            grads = torch.autograd.grad(total, params, allow_unused=True)
            for i, (acc, grad) in enumerate(zip(expected, grads)):
                if grad is not None:
                    acc += grad / len(seen)
                    scales[i] = max(scales[i], grad.abs().max().item())
        got_all = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        # A wrong average is off by a factor in every tensor at once: over all of them together the
        # gradient must match to 0.1%.
        difference = torch.cat([(g - w).flatten() for g, w in zip(got_all, expected)]).norm()
        assert difference <= 1e-3 * torch.cat([w.flatten() for w in expected]).norm()
        for got, want, scale in zip(got_all, expected, scales):
            # The same gradients summed in float32 in two ways (scaled losses vs scaled gradients).
            # BatchNorm over this config's 4 x 2 stride-32 maps amplifies rounding to ~5e-5 of the
            # largest per-batch gradient, a few 1e-6 in absolute terms for the smallest tensors.
            torch.testing.assert_close(got, want, rtol=1e-3, atol=5e-6 + 1e-4 * scale)
        checked.append(len(seen))
        seen.clear()

    def hooked_build_optimizer(*args, **kwargs):
        optimizer = real_build_optimizer(*args, **kwargs)
        optimizer.register_step_pre_hook(check_step)
        return optimizer

    monkeypatch.setattr(loop, "forward_loss", recording_forward_loss)
    monkeypatch.setattr(loop, "build_optimizer", hooked_build_optimizer)
    assert cli_main(["train", "--config", str(path), "--data", str(data), "--out", str(tmp_path / "run"),
                     "--device", "cpu"]) == 0
    assert checked == [3, 2]
    assert [r["step"] for r in read_metrics(tmp_path / "run") if r["split"] == "train"] == [1, 2]


def _poison_steps(monkeypatch, bad_steps: set[int], grad_accum_steps: int = 1) -> None:
    """Make the loss NaN on the given (1-based) optimizer steps."""
    real = loop.forward_loss
    calls = {"n": 0}

    def poisoned(model, criterion, batch, weight):
        total, losses, outputs = real(model, criterion, batch, weight)
        calls["n"] += 1
        if (calls["n"] - 1) // grad_accum_steps + 1 in bad_steps:
            total = total * float("nan")
        return total, losses, outputs

    monkeypatch.setattr(loop, "forward_loss", poisoned)


def test_nonfinite_step_is_skipped_and_training_goes_on(tmp_path, tmp_path_factory, monkeypatch):
    data = shared_data(tmp_path_factory)
    config = write_config(tmp_path, save_every=1, keep_last=10)
    run = tmp_path / "run"
    _poison_steps(monkeypatch, {2})
    assert cli_main(["train", "--config", str(config), "--data", str(data), "--out", str(run),
                     "--max-steps", "4", "--device", "cpu"]) == 0
    records = read_metrics(run)
    assert [r["step"] for r in records if r.get("event") == "nonfinite"] == [2]
    assert [r["step"] for r in records if "event" not in r] == [1, 3, 4]
    assert [step for step, _ in list_checkpoints(run / "checkpoints")] == [1, 3, 4]  # no checkpoint of a bad step
    # The skipped step did not touch the optimizer: after step 3 it has taken 2 steps.
    assert load_checkpoint(run / "checkpoints" / "step-3.pt")["optimizer"]["state"][0]["step"].item() == 2
    weights = load_checkpoint(run / "checkpoints" / "step-4.pt")["model"]
    assert all(torch.isfinite(t).all() for t in weights.values() if t.is_floating_point())


def test_consecutive_nonfinite_steps_stop_the_run(tmp_path, tmp_path_factory, monkeypatch, capsys):
    data = shared_data(tmp_path_factory)
    config = write_config(tmp_path, save_every=2, max_nonfinite=3)
    run = tmp_path / "run"
    _poison_steps(monkeypatch, set(range(3, 100)))
    assert cli_main(["train", "--config", str(config), "--data", str(data), "--out", str(run),
                     "--max-steps", "20", "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert "3 consecutive steps with a non-finite loss" in err and "step-2.pt" in err
    assert [step for step, _ in list_checkpoints(run / "checkpoints")] == [2]
    assert [r["step"] for r in read_metrics(run) if r.get("event") == "nonfinite"] == [3, 4, 5]
