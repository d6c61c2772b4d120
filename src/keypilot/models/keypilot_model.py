"""KeyPilotModel: encoder -> h_t -> task and layout routers -> language MoE decoder -> logits.

The model only composes the parts handed to it; ``from_config`` is the one builder that
turns a config into parts. ``KeyPilotLoss`` is re-exported here, the module path the seed
document gives it.

Deviations from method.md (details in each part's docstring):
- backbone.py: MobileViTv3-style blocks (depthwise local conv, 1 x 1 fusion), no inverted
  residual at the stem's 1/2 resolution, stage_channels[4] is the stride-32 stage width;
  F is an FPN sum of 1 x 1 projections.
- sam_lite.py: crops teacher-forced from ground-truth boxes in training; a mask-pooled
  path and a box mask loss (absent ROIs supervised as empty) make the masks learn;
  absent ROI -> box 0,0,0,0 and a black crop.
- routers.py: the layout is read at the last position of [<LAY>, prev layout, h_t].
- moe.py: the layout hint is a 5 x 5 matrix over the layout weights; active experts are
  weighted by raw g in training and inference alike.
- fusion.py: the tanh gates start closed (Flamingo).
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import load_model, save_model
from torch import Tensor, nn

from keypilot.config import ModelConfig, model_config
from keypilot.labels import LAYOUTS
from keypilot.models.backbone import MobileViTBackbone
from keypilot.models.decoder import Decoder
from keypilot.models.encoder import KeyPilotEncoder
from keypilot.models.fusion import CrossFormerFusion
from keypilot.models.layers import MLP
from keypilot.models.loss import KeyPilotLoss  # noqa: F401  (the seed's module path)
from keypilot.models.moe import LanguageMoE
from keypilot.models.personality import Personality
from keypilot.models.routers import LayoutRouter, TaskRouter
from keypilot.models.sam_lite import SamLite
from keypilot.models.text_encoder import TextEncoder
from keypilot.run_folder import CONFIG_FILE, WEIGHTS_FILE


class KeyPilotModel(nn.Module):
    """The screen-aware keyboard model.

    ``forward`` = ``encode_screen`` + ``encode_keystroke``; the split lets a predictor cache
    the screen (backbone, SAM-Lite, ROI crops) and pay only for the text side per keystroke.
    """

    def __init__(self, encoder: KeyPilotEncoder, task_router: TaskRouter, layout_router: LayoutRouter, decoder: Decoder, config: dict) -> None:
        super().__init__()
        self.encoder = encoder
        self.task_router = task_router
        self.layout_router = layout_router
        self.decoder = decoder
        self.config = copy.deepcopy(config)

    @classmethod
    def from_config(cls, config: dict | ModelConfig) -> KeyPilotModel:
        """Build from a config dict (as ``keypilot.config.load_config`` gives, or only its ``model`` part)."""
        mc: ModelConfig = model_config(config)
        if mc.pretrained:
            raise ValueError(
                "model.pretrained is true, but KeyPilot has no pretrained weights to download (no hub access); "
                "set model.pretrained: false, or load a trained run with KeyPilotModel.from_pretrained(RUN_DIR)"
            )
        full = config if isinstance(config, dict) and "model" in config else {"model": dataclasses.asdict(mc)}
        bb, te, fu = mc.backbone, mc.text_encoder, mc.fusion
        tr, lr, moe = mc.task_router, mc.layout_router, mc.moe

        def build_decoder() -> Decoder:
            moe_layer = LanguageMoE(mc.d_model, moe.router_hidden, moe.router_dropout, moe.heads, moe.ffn, moe.hint_bias, moe.top1_threshold)
            return Decoder(mc.vocab_size, mc.d_model, mc.max_target_tokens, moe_layer)

        # A shared table must exist before the text encoder; otherwise the decoder is built last,
        # as it always was, so that a seed gives the same initial weights as before.
        decoder = build_decoder() if te.shared_embedding else None
        backbone = MobileViTBackbone(bb.width_multiplier, bb.stage_channels, bb.transformer_dims, bb.transformer_depths, bb.dense_channels,
                                     bb.attention, bb.activation)
        encoder = KeyPilotEncoder(
            backbone=backbone,
            global_head=MLP(bb.dense_channels, mc.d_model, mc.d_model),
            sam_lite=SamLite(bb.dense_channels, backbone.out_channels, mc.d_model),
            text_encoder=TextEncoder(mc.vocab_size, mc.max_context_tokens, te.hidden, te.layers, te.heads, te.ffn, te.dropout, mc.d_model,
                                     shared_table=None if decoder is None else decoder.token_emb),
            personality=Personality(mc.personality.num_users, mc.personality.dim, mc.d_model),
            fusion=CrossFormerFusion(mc.d_model, fu.heads, fu.ffn, fu.layers, fu.dropout),
            roi_size=mc.roi_size,
            roi_tokens=mc.roi_tokens,
        )
        task_router = TaskRouter(mc.d_model, tr.hidden, tr.mix_threshold, mc.prior_features)
        layout_router = LayoutRouter(mc.d_model, lr.layers, lr.heads, lr.ffn, lr.hysteresis_bias, lr.switch_threshold, mc.prior_features)
        return cls(
            encoder=encoder,
            task_router=task_router,
            layout_router=layout_router,
            decoder=build_decoder() if decoder is None else decoder,
            config=full,
        )

    def encode_screen(self, image: Tensor, roi_boxes: Tensor | None = None, roi_valid: Tensor | None = None) -> dict[str, Tensor]:
        """Screenshot ``B x 3 x H x W`` in [0, 1] -> screen cache: ``global_feat`` ``B x d``,
        ``roi_feats`` ``B x 4 x d``, ``roi_mask_logits`` ``B x 4 x H/4 x W/4``, ``roi_boxes_pred`` ``B x 4 x 4``.
        Ground-truth ROIs, when given, drive the crops in training mode only."""
        return self.encoder.encode_screen(image, roi_boxes, roi_valid)

    def encode_keystroke(
        self,
        screen: dict[str, Tensor],
        input_ids: Tensor,
        attention_mask: Tensor,
        user_id: Tensor | None = None,
        prev_layout: Tensor | None = None,
        target_tokens: Tensor | None = None,
        prior_features: Tensor | None = None,
        prior_ids: Tensor | None = None,
        prior_q: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Screen cache + context ``B x L`` (+ user ``B``, previous layout ``B``, priors) -> all outputs (see ``forward``)."""
        b = input_ids.shape[0]
        if user_id is None:
            user_id = torch.full((b,), -1, dtype=torch.long, device=input_ids.device)
        h_t, text_feat = self.encoder.encode_keystroke(screen, input_ids, attention_mask, user_id)
        task_logits, task_probs, e_task = self.task_router(h_t, prior_features)

        # an unknown previous layout enters the router as EN, the default keyboard
        prev = prev_layout if prev_layout is not None else torch.zeros(b, dtype=torch.long, device=h_t.device)
        layout_logits = self.layout_router(h_t, prev, prior_features)
        layout_probs = torch.softmax(layout_logits, dim=-1)
        if self.training:
            layout_weights = layout_probs  # soft, so the text loss reaches the layout router
            layout_next = layout_logits.argmax(dim=-1)
        else:
            layout_next = self.layout_router.choose(layout_logits, prev_layout)
            layout_weights = F.one_hot(layout_next, len(LAYOUTS)).to(layout_probs.dtype)
        e_layout = layout_weights @ self.layout_router.codebook

        expert_logits, expert_probs = self.decoder.moe.route(h_t, e_task, e_layout, layout_weights)
        logits = self.decoder(h_t, e_task, e_layout, expert_probs, target_tokens, prior_ids, prior_q)
        return {
            **screen,
            "text_feat": text_feat,
            "h_t": h_t,
            "logits": logits,
            "task_logits": task_logits,
            "task_probs": task_probs,
            "e_task": e_task,
            "layout_logits": layout_logits,
            "layout_probs": layout_probs,
            "layout_id": layout_logits.argmax(dim=-1),
            "layout_next": layout_next,
            "e_layout": e_layout,
            "expert_logits": expert_logits,
            "expert_probs": expert_probs,
        }

    def forward(
        self,
        image: Tensor,
        input_ids: Tensor,
        attention_mask: Tensor,
        user_id: Tensor | None = None,
        prev_layout: Tensor | None = None,
        target_tokens: Tensor | None = None,
        roi_boxes: Tensor | None = None,
        roi_valid: Tensor | None = None,
        prior_features: Tensor | None = None,
        prior_ids: Tensor | None = None,
        prior_q: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """One step of the keyboard.

        Args:
            image: ``B x 3 x H x W`` float in [0, 1]; input_ids, attention_mask: ``B x L``;
            user_id: ``B`` (-1 unknown); prev_layout: ``B`` (LAYOUTS index);
            target_tokens: ``B x T`` (-100 padding) for teacher forcing;
            roi_boxes ``B x 4 x 4``, roi_valid ``B x 4``: ground-truth ROIs (training crops);
            prior_features ``B x F``: the priors' features, read by the task and layout routers;
            prior_ids, prior_q ``B x K``: first tokens of the prior's candidates for the row's task
            and their prior mass (0 = padding), fused into the first token's logits.
        Returns:
            The seed's keys ``global_feat, text_feat`` ``B x d``, ``roi_feats`` ``B x 4 x d``,
            ``logits`` ``B x V`` (first token) or ``B x T x V``, ``task_probs`` ``B x 3``,
            ``layout_probs`` ``B x 5`` (softmax of the raw logits), ``layout_id`` ``B`` (raw
            argmax), ``expert_probs`` ``B x 5`` (EXPERTS order), ``h_t`` ``B x d``; and
            ``task_logits``, ``layout_logits``, ``expert_logits``, ``roi_mask_logits``
            ``B x 4 x H/4 x W/4``, ``roi_boxes_pred`` ``B x 4 x 4``, ``e_task``, ``e_layout``
            ``B x d`` (the decoder's conditioning) and ``layout_next`` ``B`` (the layout the
            decoder was conditioned on: hysteresis against ``prev_layout`` in eval mode).
            ``logits`` are fused with the prior at the first token when ``prior_ids`` is given.
        """
        screen = self.encode_screen(image, roi_boxes, roi_valid)
        return self.encode_keystroke(screen, input_ids, attention_mask, user_id, prev_layout, target_tokens,
                                     prior_features, prior_ids, prior_q)

    def generate(
        self,
        outputs: dict[str, Tensor],
        eos_id: int,
        beam_width: int,
        num_return: int | None = None,
        max_tokens: int | None = None,
        allowed_token_mask: Tensor | None = None,
    ) -> list[list[tuple[list[int], float]]]:
        """Beam search from the outputs of ``forward``/``encode_keystroke``: per row, up to
        ``num_return`` (token ids without eos, total log-prob), best first."""
        return self.decoder.beam_search(
            outputs["h_t"], outputs["e_task"], outputs["e_layout"], outputs["expert_probs"],
            eos_id, beam_width, max_tokens, num_return, allowed_token_mask,
        )  # fmt: skip

    def save_pretrained(self, directory: str | Path) -> None:
        """Write ``directory/config.yaml`` (the full config) and ``directory/model.safetensors``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CONFIG_FILE).write_text(yaml.safe_dump(self.config, sort_keys=False, allow_unicode=True), encoding="utf-8")
        save_model(self, str(directory / WEIGHTS_FILE))

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> KeyPilotModel:
        """Load a folder written by ``save_pretrained`` (strict: every weight must match), in eval mode, on the CPU."""
        directory = Path(directory)
        config = yaml.safe_load((directory / CONFIG_FILE).read_text(encoding="utf-8"))
        model = cls.from_config(config)
        load_model(model, str(directory / WEIGHTS_FILE), strict=True)
        return model.eval()

