"""The seed's "Usage in Training" snippet, run as written against configs/keypilot.yaml."""

from __future__ import annotations

import torch
import yaml

from keypilot.models.keypilot_model import KeyPilotLoss, KeyPilotModel

SEED_LOSS_KEYS = [
    "loss_total", "loss_encoder", "loss_decoder", "loss_align", "loss_contrastive",
    "loss_text", "loss_task", "loss_layout", "loss_consistency", "loss_load",
]


def test_seed_usage_snippet_runs_as_written():
    torch.manual_seed(0)
    with open("configs/keypilot.yaml") as fh:
        config = yaml.safe_load(fh)  # the plain YAML dict, as a user would load it
    model = KeyPilotModel.from_config(config)

    batch = 2
    image = torch.rand(batch, 3, 512, 256)  # a 512 x 256 screenshot batch
    input_ids = torch.randint(0, 32000, (batch, 64))
    attention_mask = torch.ones(batch, 64, dtype=torch.long)
    task_label = torch.tensor([0, 2])
    layout_label = torch.tensor([1, 4])
    target_token_ids = torch.tensor([[17, 5, -100, -100, -100], [401, 402, 403, 404, 5]])
    target_type = torch.tensor([1, 4])

    # 1. Create loss criterion
    criterion = KeyPilotLoss(**config['training']['loss'])

    # 2. Forward pass
    outputs = model(image, input_ids, attention_mask, target_tokens=target_token_ids)

    # 3. Prepare targets
    targets = {
        'target_task': task_label,
        'target_layout': layout_label,
        'target_tokens': target_token_ids,
        'target_type': target_type,
    }

    # 4. Compute loss
    loss_dict = criterion(outputs, targets)
    loss_total = loss_dict['loss_total']

    # 5. Backward pass
    loss_total.backward()

    assert list(loss_dict) == SEED_LOSS_KEYS
    for key in SEED_LOSS_KEYS:
        assert torch.isfinite(loss_dict[key]), key
    shapes = {
        "global_feat": (batch, 256), "text_feat": (batch, 256), "roi_feats": (batch, 4, 256),
        "logits": (batch, 5, 32000), "task_probs": (batch, 3), "layout_probs": (batch, 5),
        "layout_id": (batch,), "expert_probs": (batch, 5), "h_t": (batch, 256),
    }
    for key, shape in shapes.items():
        assert tuple(outputs[key].shape) == shape, key
    assert any(p.grad is not None for p in model.parameters())
