"""The encoder E(I_t, C_t, P_u) -> h_t, split into a cacheable screen part and a per-keystroke part."""

from __future__ import annotations

from torch import Tensor, nn

from keypilot.models.backbone import (
    DenseMap,
    MaterializedMap,
    MobileViTBackbone,
    PyramidMap,
)
from keypilot.models.fusion import CrossFormerFusion
from keypilot.models.layers import MLP
from keypilot.models.personality import Personality
from keypilot.models.sam_lite import (
    NUM_ROIS,
    SamLite,
    boxes_from_masks,
    crop_and_letterbox,
    rasterize_boxes,
)
from keypilot.models.text_encoder import TextEncoder

ROI_TOKENS = ("crops", "pooled")


class KeyPilotEncoder(nn.Module):
    """Screen, context and user -> h_t and the alignment features of the seed's encoder loss.

    ``encode_screen`` runs everything that depends on the screenshot only (the backbone on the
    screen, SAM-Lite, and with ``roi_tokens="crops"`` the backbone again on the four ROI
    crops); its result can be cached while the user types on the same screen.
    ``encode_keystroke`` runs the text, user and fusion parts.

    ``roi_tokens``: ``"crops"`` builds F as a tensor (bilinear FPN) and encodes the crops;
    ``"pooled"`` keeps F as its pyramid (nearest FPN) and averages the stride-32 features of
    the screen's own pass inside each ROI's box (``sam_lite`` module docstring).
    """

    def __init__(
        self,
        backbone: MobileViTBackbone,
        global_head: MLP,
        sam_lite: SamLite,
        text_encoder: TextEncoder,
        personality: Personality,
        fusion: CrossFormerFusion,
        roi_size: int,
        roi_tokens: str = "crops",
    ) -> None:
        super().__init__()
        if roi_tokens not in ROI_TOKENS:
            raise ValueError(f"model.roi_tokens must be one of {', '.join(ROI_TOKENS)}, got {roi_tokens!r}")
        self.backbone = backbone
        self.global_head = global_head
        self.sam_lite = sam_lite
        self.text_encoder = text_encoder
        self.personality = personality
        self.fusion = fusion
        self.roi_size = roi_size
        self.roi_tokens = roi_tokens

    def encode_screen(self, image: Tensor, roi_boxes: Tensor | None = None, roi_valid: Tensor | None = None) -> dict[str, Tensor]:
        """Screenshot ``B x 3 x H x W`` in [0, 1] -> the screen cache.

        Args:
            roi_boxes, roi_valid: ground-truth ROIs ``B x 4 x 4`` / ``B x 4``; used for the
                crops (or the pooled boxes) in training mode only (teacher forcing),
                ignored in eval mode.
        Returns:
            ``global_feat`` ``B x d`` (the [IMG] token), ``roi_feats`` ``B x 4 x d``,
            ``roi_mask_logits`` ``B x 4 x H/4 x W/4``, ``roi_boxes_pred`` ``B x 4 x 4``
            (x0, y0, x1, y1 in [0, 1]; zeros where the mask is empty).
        """
        dense: DenseMap
        if self.roi_tokens == "crops":
            dense = MaterializedMap(self.backbone(image))
        else:
            dense = PyramidMap(self.backbone.pyramid(image), self.backbone.lateral)
        mask_logits = self.sam_lite.predict_masks(dense)
        boxes_pred, found = boxes_from_masks(mask_logits)
        # What each ROI looks like comes from its box: the ground-truth one in training when
        # the batch has it (teacher forcing, as detectors train their second stage on
        # ground-truth proposals), else the extent of the predicted mask.
        if self.training and roi_boxes is not None and roi_valid is not None:
            boxes, valid = roi_boxes, roi_valid
        else:
            boxes, valid = boxes_pred, found
        if isinstance(dense, PyramidMap):
            inside = rasterize_boxes(boxes.to(mask_logits.dtype), *mask_logits.shape[-2:]) * valid.to(mask_logits.dtype)[..., None, None]
            roi_looks = dense.level_mean(inside, level=-1)  # mean stride-32 features in the box; 0 when absent
        else:
            crops = crop_and_letterbox(image, boxes, valid, self.roi_size)  # B x 4 x 3 x S x S
            roi_looks = self.backbone.embed(crops.flatten(0, 1)).view(image.shape[0], NUM_ROIS, -1)
        return {
            "global_feat": self.global_head(dense.mean()),
            "roi_feats": self.sam_lite.roi_tokens(roi_looks, mask_logits, dense),
            "roi_mask_logits": mask_logits,
            "roi_boxes_pred": boxes_pred,
        }

    def encode_keystroke(self, screen: dict[str, Tensor], input_ids: Tensor, attention_mask: Tensor, user_id: Tensor) -> tuple[Tensor, Tensor]:
        """Screen cache, context ids/mask ``B x L``, user ids ``B`` -> (h_t ``B x d``, text_feat ``B x d``)."""
        text_feat = self.text_encoder(input_ids, attention_mask)
        h_t = self.fusion(screen["global_feat"], screen["roi_feats"], text_feat, self.personality(user_id))
        return h_t, text_feat
