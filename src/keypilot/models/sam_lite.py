"""SAM-Lite: four learned prompts -> four masks over F -> ROI tokens.

The prompts (input field, chat bubble, keyboard, title bar; ``ROI_KEYS`` order) first attend
to a coarse view of F (F average-pooled by 8), so each prompt adapts to the screen, then a
dot product with every pixel of F gives a mask logit (SAM's mask decoder, reduced to one
cross-attention layer and no upscaling: F is already at 1/4 resolution).

Each ROI token is the sum of two projections (``model.roi_tokens`` picks the first one):
- what the ROI looks like, from its box: ``crops`` (the first design, method.md's) - the box
  cropped from the screenshot, letterboxed to ``roi_size`` and re-encoded by the backbone
  (mean of its stride-32 features); ``pooled`` - the mean of the screen's own stride-32
  features inside the box, the same region through the same backbone without a second
  pass over four crops (~190 MMAC at the reference size);
- the mask-pooled F: the sigmoid(mask)-weighted average of F.

How the masks learn, given that a crop taken from a mask is not differentiable:
- ``roi_mask_loss``: BCE + dice against the boxes the data generator knows (``rois``),
  added by the training loop with weight ``training.roi_mask_weight``;
- a differentiable mask-pooled path: each ROI token also receives a projection of the
  sigmoid(mask)-weighted average of F, so the main loss reaches the prompts too.
During training the boxes (crops or pooled boxes) are the ground-truth ones when the batch
has them (teacher forcing, like proposals in Mask R-CNN); otherwise, and always at
inference, the extent of the predicted masks.

Boxes from masks are the extent of the pixels whose logit is > 0. An ROI with no such pixel
(the element is absent from the screen, or the mask found nothing) gets the box 0,0,0,0
and an all-black crop -- the same convention as absent ROIs in the data, so training
(absent ground truth -> black crop) and inference agree.

Deviation from the lead's plan: ``roi_mask_loss`` also supervises ABSENT ROIs, with an
all-zero target (BCE only; dice over valid ROIs), so that the mask learns to be empty when
the element is missing -- otherwise an absent ROI would always get a crop of something at
inference. Pass ``supervise_absent=False`` for the valid-only variant.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from keypilot.models.backbone import DenseMap
from keypilot.models.layers import MLP, Attention

NUM_ROIS = 4
PROMPT_HEADS = 4
COARSE_POOL = 8


class SamLite(nn.Module):
    """Prompted mask prediction over F and the ROI tokens built from crops and masks.

    Args:
        dense_channels: channels C of F.
        crop_channels: width of the backbone's pooled embedding of a crop.
        d_model: width of the ROI tokens.
    """

    def __init__(self, dense_channels: int, crop_channels: int, d_model: int) -> None:
        super().__init__()
        self.prompts = nn.Parameter(torch.randn(NUM_ROIS, dense_channels) * 0.02)
        self.norm_q = nn.LayerNorm(dense_channels)
        self.norm_kv = nn.LayerNorm(dense_channels)
        self.attn = Attention(dense_channels, PROMPT_HEADS)
        self.norm_mlp = nn.LayerNorm(dense_channels)
        self.mlp = MLP(dense_channels, 2 * dense_channels, dense_channels)
        self.mask_bias = nn.Parameter(torch.zeros(NUM_ROIS))
        self.crop_proj = MLP(crop_channels, d_model, d_model)
        self.pool_proj = nn.Linear(dense_channels, d_model)

    def predict_masks(self, dense: DenseMap) -> Tensor:
        """F (``B x C x h x w``) -> mask logits ``B x 4 x h x w``."""
        coarse = dense.avg_pool(COARSE_POOL)
        b, c = coarse.shape[:2]
        coarse = coarse.flatten(2).transpose(1, 2)  # B x N x C
        q = self.prompts.expand(b, -1, -1)
        q = q + self.attn(self.norm_q(q), context=self.norm_kv(coarse))
        q = q + self.mlp(self.norm_mlp(q))
        return dense.dot(q / math.sqrt(c)) + self.mask_bias[:, None, None]

    def roi_tokens(self, crop_embeddings: Tensor, mask_logits: Tensor, dense: DenseMap) -> Tensor:
        """Crop embeddings ``B x 4 x crop_channels``, masks ``B x 4 x h x w``, F -> ROI tokens ``B x 4 x d_model``."""
        return self.crop_proj(crop_embeddings) + self.pool_proj(dense.weighted_mean(torch.sigmoid(mask_logits)))


def boxes_from_masks(mask_logits: Tensor) -> tuple[Tensor, Tensor]:
    """Mask logits ``B x K x h x w`` -> boxes ``B x K x 4`` (x0, y0, x1, y1 in [0, 1]) and found ``B x K`` bool.

    A box is the extent of the pixels with logit > 0; a mask with none gives 0,0,0,0.
    """
    h, w = mask_logits.shape[-2:]
    on = mask_logits.detach() > 0
    cols, rows = on.any(dim=-2), on.any(dim=-1)  # B x K x w, B x K x h
    found = cols.any(dim=-1)
    x0 = cols.int().argmax(dim=-1)
    x1 = w - cols.flip(-1).int().argmax(dim=-1)
    y0 = rows.int().argmax(dim=-1)
    y1 = h - rows.flip(-1).int().argmax(dim=-1)
    boxes = torch.stack([x0 / w, y0 / h, x1 / w, y1 / h], dim=-1).float()
    return boxes * found[..., None], found


def crop_and_letterbox(image: Tensor, boxes: Tensor, valid: Tensor, size: int) -> Tensor:
    """Crop boxes from images and letterbox each into ``size x size`` (black bars).

    Args:
        image: ``B x 3 x H x W`` in [0, 1].
        boxes: ``B x K x 4`` as x0, y0, x1, y1 in [0, 1] of the image.
        valid: ``B x K`` bool; invalid ROIs give an all-black crop.
    Returns:
        ``B x K x 3 x size x size``. The crop keeps its aspect ratio: the longer side fills
        the square and the box is centred; pixels are bilinearly sampled (no gradient).
    """
    b, k = boxes.shape[:2]
    height, width = image.shape[-2:]
    scale = boxes.new_tensor([width, height, width, height])
    x0, y0, x1, y1 = (boxes.detach() * scale).unbind(-1)  # pixels, B x K
    bw, bh = (x1 - x0).clamp(min=1e-3), (y1 - y0).clamp(min=1e-3)
    side = torch.maximum(bw, bh)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    t = (torch.arange(size, device=image.device, dtype=boxes.dtype) + 0.5) / size * 2 - 1  # pixel centres in [-1, 1]
    xs = cx[..., None] + t * side[..., None] / 2  # B x K x size, image pixels
    ys = cy[..., None] + t * side[..., None] / 2
    inside = ((ys - cy[..., None]).abs() <= bh[..., None] / 2)[..., :, None] & ((xs - cx[..., None]).abs() <= bw[..., None] / 2)[..., None, :]
    inside = inside & valid.bool()[..., None, None]  # B x K x size x size
    grid = torch.stack(
        [(xs / width * 2 - 1)[..., None, :].expand(b, k, size, size), (ys / height * 2 - 1)[..., :, None].expand(b, k, size, size)],
        dim=-1,
    )
    crops = [F.grid_sample(image, grid[:, i], mode="bilinear", padding_mode="zeros", align_corners=False) for i in range(k)]
    return torch.stack(crops, dim=1) * inside[:, :, None].to(image.dtype)


def rasterize_boxes(boxes: Tensor, height: int, width: int) -> Tensor:
    """Boxes ``B x K x 4`` in [0, 1] -> binary masks ``B x K x height x width`` (pixel centre inside the box)."""
    xs = (torch.arange(width, device=boxes.device, dtype=boxes.dtype) + 0.5) / width
    ys = (torch.arange(height, device=boxes.device, dtype=boxes.dtype) + 0.5) / height
    x0, y0, x1, y1 = (v[..., None] for v in boxes.unbind(-1))
    in_x = (xs >= x0) & (xs < x1)  # B x K x width
    in_y = (ys >= y0) & (ys < y1)
    return (in_y[..., :, None] & in_x[..., None, :]).to(boxes.dtype)


def roi_mask_loss(mask_logits: Tensor, roi_boxes: Tensor, roi_valid: Tensor, supervise_absent: bool = True) -> Tensor:
    """Mask loss of SAM-Lite: mean pixel BCE + dice against the rasterized ground-truth boxes.

    Args:
        mask_logits: ``B x 4 x h x w``.
        roi_boxes: ``B x 4 x 4`` in [0, 1]; roi_valid: ``B x 4`` bool.
        supervise_absent: absent ROIs count in the BCE with an empty target.
    Returns:
        A scalar: BCE averaged over the supervised ROIs (pixel mean per ROI) plus
        (1 - dice) averaged over the valid ROIs; 0 when nothing is supervised.
    """
    valid = roi_valid.bool()
    target = rasterize_boxes(roi_boxes.to(mask_logits.dtype), *mask_logits.shape[-2:]) * valid[..., None, None]
    bce = F.binary_cross_entropy_with_logits(mask_logits, target, reduction="none").mean(dim=(2, 3))  # B x 4
    used = torch.ones_like(valid) if supervise_absent else valid
    loss = (bce * used).sum() / used.sum().clamp(min=1)
    if valid.any():
        prob = torch.sigmoid(mask_logits)
        dice = (2 * (prob * target).sum(dim=(2, 3)) + 1) / (prob.sum(dim=(2, 3)) + target.sum(dim=(2, 3)) + 1)
        loss = loss + ((1 - dice) * valid).sum() / valid.sum()
    return loss
