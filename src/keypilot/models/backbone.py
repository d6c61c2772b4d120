"""MobileViT backbone shared by the full screenshot and the ROI crops.

A MobileViT-XXS-class network in plain PyTorch (timm/torchvision cannot be installed beside
this torch): MobileNetV2 inverted residuals, then MobileViT blocks whose transformers see
the map as 2 x 2 patches ("unfold", attention across patches for each position in the patch,
"fold").

Deviations from MobileViT-XXS, both for CPU cost at 512 x 256 (see method.md's budget):
- the MobileViT blocks use a depthwise 3 x 3 + pointwise local representation and a 1 x 1
  fusion convolution (MobileViTv3-style) instead of full 3 x 3 convolutions;
- no inverted residual at the stem's 1/2 resolution (the stem is one strided 3 x 3 conv):
  at 256 x 128 that block alone cost more than the whole stride-16 stage;
- ``stage_channels[4]`` is the width of the stride-32 stage itself (its MobileViT block
  runs at that width) rather than a final 1 x 1 expansion.
Fixed MobileViT ratios (not config): inverted-residual expansion 2 (XXS), 4 attention heads
and an FFN of 2 x the transformer width in the MobileViT blocks, 2 x 2 patches.

The dense map F (``dense_channels`` at 1/4 resolution) is built FPN-style: 1 x 1 lateral
projections of the stride 4, 8, 16 and 32 features, added top-down after bilinear
upsampling. Every 1/4-resolution operation is a 1 x 1 convolution from 24 channels, so F
costs ~40 MMAC at 512 x 256 instead of the ~2.7 GMAC of one 3 x 3 convolution at 192 channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from keypilot.models.layers import TransformerBlock

EXPANSION = 2
VIT_HEADS = 4
PATCH = 2
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a scaled channel count to a multiple of ``divisor`` (at most 10% below it)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class ConvBNAct(nn.Sequential):
    """Convolution, BatchNorm, optional SiLU: ``B x cin x H x W -> B x cout x H/stride x W/stride``."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1, act: bool = True) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.SiLU() if act else nn.Identity(),
        )


class InvertedResidual(nn.Module):
    """MobileNetV2 block: expand 1 x 1, depthwise 3 x 3 (stride), project 1 x 1; residual when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        hidden = cin * EXPANSION
        self.residual = stride == 1 and cin == cout
        self.block = nn.Sequential(
            ConvBNAct(cin, hidden, 1),
            ConvBNAct(hidden, hidden, 3, stride, groups=hidden),
            ConvBNAct(hidden, cout, 1, act=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        y = self.block(x)
        return x + y if self.residual else y


class MobileViTBlock(nn.Module):
    """Local convolution + global attention over 2 x 2 patches: ``B x C x H x W -> B x C x H x W``.

    Odd map sizes (the 112 x 112 ROI crops reach 7 x 7 at stride 16) are zero-padded to a
    multiple of the patch before unfolding and cropped back afterwards.
    """

    def __init__(self, channels: int, dim: int, depth: int) -> None:
        super().__init__()
        self.local = nn.Sequential(
            ConvBNAct(channels, channels, 3, groups=channels),
            nn.Conv2d(channels, dim, 1, bias=False),
        )
        self.transformer = nn.Sequential(*[TransformerBlock(dim, VIT_HEADS, 2 * dim) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.proj = ConvBNAct(dim, channels, 1)
        self.fuse = ConvBNAct(2 * channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        y = self.local(x)
        b, d, h, w = y.shape
        ph, pw = -h % PATCH, -w % PATCH
        y = F.pad(y, (0, pw, 0, ph))
        hp, wp = (h + ph) // PATCH, (w + pw) // PATCH
        # unfold: one sequence per position inside the patch, one token per patch
        y = y.reshape(b, d, hp, PATCH, wp, PATCH).permute(0, 3, 5, 2, 4, 1).reshape(b * PATCH * PATCH, hp * wp, d)
        y = self.norm(self.transformer(y))
        y = y.reshape(b, PATCH, PATCH, hp, wp, d).permute(0, 5, 3, 1, 4, 2).reshape(b, d, hp * PATCH, wp * PATCH)
        y = self.proj(y[:, :, :h, :w])
        return self.fuse(torch.cat([x, y], dim=1))


class MobileViTBackbone(nn.Module):
    """Images ``B x 3 x H x W`` in [0, 1] -> dense map F or a pooled coarse vector.

    ``forward`` gives F: ``B x dense_channels x H/4 x W/4``. ``embed`` gives the average of
    the stride-32 features, ``B x out_channels``, without building F (the ROI crops need
    only that). The ImageNet normalization happens here, so callers pass raw [0, 1] pixels.
    """

    def __init__(
        self,
        width_multiplier: float,
        stage_channels: list[int],
        transformer_dims: list[int],
        transformer_depths: list[int],
        dense_channels: int,
    ) -> None:
        super().__init__()
        if len(stage_channels) != 5 or len(transformer_dims) != 3 or len(transformer_depths) != 3:
            raise ValueError("backbone needs 5 stage_channels and 3 transformer_dims / transformer_depths")
        c = [make_divisible(ch * width_multiplier) for ch in stage_channels]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.stem = ConvBNAct(3, c[0], 3, 2)  # stride 2
        self.stage4 = nn.Sequential(*[InvertedResidual(c[0] if i == 0 else c[1], c[1], 2 if i == 0 else 1) for i in range(3)])
        self.stage8 = nn.Sequential(InvertedResidual(c[1], c[2], 2), MobileViTBlock(c[2], transformer_dims[0], transformer_depths[0]))
        self.stage16 = nn.Sequential(InvertedResidual(c[2], c[3], 2), MobileViTBlock(c[3], transformer_dims[1], transformer_depths[1]))
        self.stage32 = nn.Sequential(InvertedResidual(c[3], c[4], 2), MobileViTBlock(c[4], transformer_dims[2], transformer_depths[2]))
        self.lateral = nn.ModuleList(nn.Conv2d(ch, dense_channels, 1) for ch in (c[1], c[2], c[3], c[4]))
        self.out_channels = c[4]
        self.dense_channels = dense_channels

    def _pyramid(self, image: Tensor) -> list[Tensor]:
        x = self.stem((image - self.mean) / self.std)
        feats = []
        for stage in (self.stage4, self.stage8, self.stage16, self.stage32):
            x = stage(x)
            feats.append(x)
        return feats

    def forward(self, image: Tensor) -> Tensor:
        feats = self._pyramid(image)
        dense = self.lateral[3](feats[3])
        for level in (2, 1, 0):
            lateral = self.lateral[level](feats[level])
            dense = lateral + F.interpolate(dense, size=lateral.shape[-2:], mode="bilinear", align_corners=False)
        return dense

    def embed(self, image: Tensor) -> Tensor:
        return self._pyramid(image)[3].mean(dim=(2, 3))
