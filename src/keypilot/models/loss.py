"""The KeyPilot multitask loss, term by term as the seed document writes it.

    L_total = lambda_enc * L_enc + lambda_dec * L_dec
    L_enc   = lambda_align * L_align + lambda_contrastive * L_contrastive
    L_dec   = L_text + lambda_task * L_task + lambda_layout * L_layout
              + lambda_consistency * L_consistency + lambda_load * L_load

Two points the seed leaves open are decided in method.md and implemented here:

* ``L_contrastive`` is the standard InfoNCE: for row i the denominator runs over the texts
  of the batch, ``sum_k exp(<r_i, t_k> / tau)`` (the seed's ``<r_k, t_k>`` is a typo).
  ``r_i`` is the mean of the four ROI tokens, L2-normalised like the other features.
* ``L_consistency`` is the cross-entropy of the layout router's logits against the
  target's language class (``target_type``, in the layout label space).

The class is re-exported from ``keypilot.models.keypilot_model``, the module path the seed
promises.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Probabilities that underflow to 0 would give log(0) = -inf; clamping keeps every term finite.
_EPS = 1e-8
IGNORE_INDEX = -100


class KeyPilotLoss(nn.Module):
    """``criterion(outputs, targets) -> loss_dict`` with the seed's ten ``loss_*`` keys.

    Args (the seed's ``training.loss`` block): lambda_enc, lambda_dec, lambda_align,
    lambda_contrastive, lambda_task, lambda_layout, lambda_consistency, lambda_load,
    temperature.

    ``outputs``: ``global_feat [B,D]``, ``text_feat [B,D]``, optional ``roi_feats [B,4,D]``,
    ``logits`` ``[B,V]`` or ``[B,T,V]``, ``task_probs [B,3]``, ``layout_probs [B,5]``
    (softmax; ``layout_logits [B,5]`` used when present), ``expert_probs [B,E]``.
    ``targets``: ``target_task [B]``, ``target_layout [B]``, ``target_tokens`` ``[B]`` or
    ``[B,T]`` (``-100`` = padding), ``target_type [B]`` (language class, layout order).
    """

    def __init__(
        self,
        lambda_enc: float = 0.3,
        lambda_dec: float = 1.0,
        lambda_align: float = 1.0,
        lambda_contrastive: float = 0.2,
        lambda_task: float = 0.5,
        lambda_layout: float = 0.4,
        lambda_consistency: float = 0.3,
        lambda_load: float = 0.01,
        temperature: float = 0.07,
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.lambda_enc = lambda_enc
        self.lambda_dec = lambda_dec
        self.lambda_align = lambda_align
        self.lambda_contrastive = lambda_contrastive
        self.lambda_task = lambda_task
        self.lambda_layout = lambda_layout
        self.lambda_consistency = lambda_consistency
        self.lambda_load = lambda_load
        self.temperature = temperature

    # 1. Encoder loss -------------------------------------------------------------------

    def contrastive_loss(self, queries: Tensor, texts: Tensor) -> Tensor:
        """InfoNCE: -1/B sum_i log softmax_j(<q_i, t_j> / tau)[i]; inputs [B,D], L2-normalised here."""
        q = F.normalize(queries.float(), dim=-1)
        t = F.normalize(texts.float(), dim=-1)
        similarity = q @ t.t() / self.temperature  # [B,B]
        labels = torch.arange(similarity.shape[0], device=similarity.device)
        return F.cross_entropy(similarity, labels)

    def align(self, global_feat: Tensor, text_feat: Tensor) -> Tensor:
        """1.1 L_align: [IMG]_i against [CLS_text]_j."""
        return self.contrastive_loss(global_feat, text_feat)

    def contrastive(self, roi_feats: Tensor | None, text_feat: Tensor) -> Tensor:
        """1.2 L_contrastive: the mean of the four ROI tokens against [CLS_text]; 0 without ROIs."""
        if roi_feats is None:
            return text_feat.new_zeros((), dtype=torch.float32)
        return self.contrastive_loss(roi_feats.mean(dim=1), text_feat)

    # 2. Decoder loss -------------------------------------------------------------------

    def text(self, logits: Tensor, target_tokens: Tensor) -> Tensor:
        """2.1 L_text: cross-entropy per sample averaged over its real tokens, then over the batch.

        ``logits [B,V]`` are scored against the first target token; ``logits [B,T,V]``
        (teacher forcing) against ``target_tokens [B,T]``. Padding (-100) never counts, and
        a sample with no real token is left out of the batch mean.
        """
        if target_tokens.dim() == 1:
            target_tokens = target_tokens[:, None]
        if logits.dim() == 2:
            logits, target_tokens = logits[:, None, :], target_tokens[:, :1]
        steps = min(logits.shape[1], target_tokens.shape[1])
        logits, target_tokens = logits[:, :steps].float(), target_tokens[:, :steps]
        token_nll = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            target_tokens.reshape(-1),
            ignore_index=IGNORE_INDEX,
            reduction="none",
        ).view_as(target_tokens)
        real = (target_tokens != IGNORE_INDEX).float()
        count = real.sum(dim=1)
        has_tokens = count > 0
        if not has_tokens.any():
            return logits.sum() * 0.0
        per_sample = (token_nll * real).sum(dim=1) / count.clamp_min(1.0)
        return per_sample[has_tokens].mean()

    def task(self, task_probs: Tensor, target_task: Tensor) -> Tensor:
        """2.2 L_task: -1/B sum_b log g_task[b, y_b], on the router's own probabilities."""
        routed = task_probs.float().gather(1, target_task[:, None]).squeeze(1)
        return -routed.clamp_min(_EPS).log().mean()

    def layout(self, outputs: dict[str, Tensor], target_layout: Tensor) -> Tensor:
        """2.3 L_layout: -1/B sum_b log p(l_{t+1})."""
        return F.nll_loss(_layout_log_probs(outputs), target_layout)

    def consistency(self, outputs: dict[str, Tensor], target_type: Tensor) -> Tensor:
        """2.4 L_consistency: cross-entropy of the layout prediction against the target's language."""
        return F.nll_loss(_layout_log_probs(outputs), target_type)

    def load_balancing_loss(self, expert_probs: Tensor) -> Tensor:
        """2.5 L_load: sum_i (f_i - 1/E)^2 with f_i the batch-mean routing probability of expert i."""
        usage = expert_probs.float().mean(dim=0)
        return ((usage - 1.0 / usage.numel()) ** 2).sum()

    # Total -----------------------------------------------------------------------------

    def forward(self, outputs: dict[str, Tensor], targets: dict[str, Tensor]) -> dict[str, Tensor]:
        loss_align = self.align(outputs["global_feat"], outputs["text_feat"])
        loss_contrastive = self.contrastive(outputs.get("roi_feats"), outputs["text_feat"])
        loss_encoder = self.lambda_align * loss_align + self.lambda_contrastive * loss_contrastive

        loss_text = self.text(outputs["logits"], targets["target_tokens"])
        loss_task = self.task(outputs["task_probs"], targets["target_task"])
        loss_layout = self.layout(outputs, targets["target_layout"])
        loss_consistency = self.consistency(outputs, targets["target_type"])
        loss_load = self.load_balancing_loss(outputs["expert_probs"])
        loss_decoder = (
            loss_text
            + self.lambda_task * loss_task
            + self.lambda_layout * loss_layout
            + self.lambda_consistency * loss_consistency
            + self.lambda_load * loss_load
        )

        loss_total = self.lambda_enc * loss_encoder + self.lambda_dec * loss_decoder
        return {
            "loss_total": loss_total,
            "loss_encoder": loss_encoder,
            "loss_decoder": loss_decoder,
            "loss_align": loss_align,
            "loss_contrastive": loss_contrastive,
            "loss_text": loss_text,
            "loss_task": loss_task,
            "loss_layout": loss_layout,
            "loss_consistency": loss_consistency,
            "loss_load": loss_load,
        }


def _layout_log_probs(outputs: dict[str, Tensor]) -> Tensor:
    """log p(layout) [B,5]: from the raw logits when the model gives them (exact), else the probabilities."""
    if "layout_logits" in outputs:
        return F.log_softmax(outputs["layout_logits"].float(), dim=-1)
    return outputs["layout_probs"].float().clamp_min(_EPS).log()
