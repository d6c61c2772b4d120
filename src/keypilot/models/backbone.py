"""MobileViT backbone of the screenshot (and of the ROI crops, with ``roi_tokens: crops``).

A MobileViT-XXS-class network in plain PyTorch (timm/torchvision cannot be installed beside
this torch): MobileNetV2 inverted residuals, then MobileViT blocks with one of two token
mixers (``model.backbone.attention``):

- ``softmax`` (the first design): multi-head softmax attention over 2 x 2 patches ("unfold",
  attention across patches for each position in the patch, "fold"), pre-LayerNorm;
- ``linear``: MobileViTv2's separable self-attention, O(N) in the number of positions. It
  runs on the map itself (1 x 1 convolutions, one softmax over all positions, no unfolding),
  each convolution followed by BatchNorm (LeViT's choice for inference), so that the whole
  block folds into convolutions and stays in the channels-blocked layout ORT gives
  convolutions: no transposes, no N x N maps (the stride-8 ones were 16 MB a layer).

Deviations from MobileViT-XXS, both for CPU cost at 512 x 256 (see method.md's budget):
- the MobileViT blocks use a depthwise 3 x 3 + pointwise local representation and a 1 x 1
  fusion convolution (MobileViTv3-style) instead of full 3 x 3 convolutions;
- no inverted residual at the stem's 1/2 resolution (the stem is one strided 3 x 3 conv):
  at 256 x 128 that block alone cost more than the whole stride-16 stage;
- ``stage_channels[4]`` is the width of the stride-32 stage itself (its MobileViT block
  runs at that width) rather than a final 1 x 1 expansion.
Fixed MobileViT ratios (not config): inverted-residual expansion 2 (XXS), 4 attention heads
(softmax) and an FFN of 2 x the transformer width in the MobileViT blocks, 2 x 2 patches
(softmax). The activation is ``model.backbone.activation`` (SiLU as MobileViT, or ReLU).

The dense map F (``dense_channels`` at 1/4 resolution) is built FPN-style: 1 x 1 lateral
projections of the stride 4, 8, 16 and 32 features, summed after upsampling. Two forms,
with the same uses (``DenseMap``):

- ``MaterializedMap`` (``roi_tokens: crops``): bilinear top-down upsampling, F computed as a
  ``B x C x H/4 x W/4`` tensor (~40 MMAC and a 6 MB tensor at 512 x 256);
- ``PyramidMap`` (``roi_tokens: pooled``): nearest upsampling (as in FPN), F never built:
  every use of F (its mean, its average pooling, a dot product with a prompt, a
  mask-weighted mean) is linear in F, so it is computed on each level at its own resolution
  and projected afterwards, exactly equal to the same operation on the built map.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from keypilot.models.layers import TransformerBlock

ATTENTIONS = ("softmax", "linear")
ACTIVATIONS: dict[str, type[nn.Module]] = {"silu": nn.SiLU, "relu": nn.ReLU}
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
    """Convolution, BatchNorm, optional activation: ``B x cin x H x W -> B x cout x H/stride x W/stride``."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1,
                 act: type[nn.Module] | None = nn.SiLU) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            act() if act is not None else nn.Identity(),
        )


class InvertedResidual(nn.Module):
    """MobileNetV2 block: expand 1 x 1, depthwise 3 x 3 (stride), project 1 x 1; residual when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, act: type[nn.Module] = nn.SiLU) -> None:
        super().__init__()
        hidden = cin * EXPANSION
        self.residual = stride == 1 and cin == cout
        self.block = nn.Sequential(
            ConvBNAct(cin, hidden, 1, act=act),
            ConvBNAct(hidden, hidden, 3, stride, groups=hidden, act=act),
            ConvBNAct(hidden, cout, 1, act=None),
        )

    def forward(self, x: Tensor) -> Tensor:
        y = self.block(x)
        return x + y if self.residual else y


class SeparableAttention(nn.Module):
    """MobileViTv2's separable self-attention over every position of a map: ``B x d x H x W -> B x d x H x W``.

    One score per position, softmax-normalised over all positions, weights the keys into a
    single context vector; each position's ReLU value is gated by it, then projected.
    Keys are a linear function of the input, so the context is computed as the key
    projection of the attention-weighted mean input (the same vector, without projecting
    every position). Cost O(H W d^2), and no H W x H W map.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.score = nn.Conv2d(dim, 1, 1, bias=False)  # a bias would cancel in the softmax
        self.key = nn.Linear(dim, dim)
        self.value = ConvBNAct(dim, dim, act=nn.ReLU)
        self.out = ConvBNAct(dim, dim, act=None)

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        weights = torch.softmax(self.score(x).view(b, 1, h * w), dim=-1).view(b, 1, h, w)
        # a weighted sum written as Mul + ReduceSum (not a MatMul on a flattened map), so
        # that it runs in whatever layout the convolutions around it use
        context = self.key((x * weights).sum(dim=(2, 3)))  # B x d
        return self.out(self.value(x) * context[:, :, None, None])


class LinearTransformerBlock(nn.Module):
    """Separable attention then a 1 x 1 FFN (2 x width), each a residual branch: ``B x d x H x W -> B x d x H x W``.

    BatchNorm after each convolution instead of LayerNorm before it: at inference it folds
    into the convolution, so the block is convolutions, one softmax and element-wise ops.
    """

    def __init__(self, dim: int, act: type[nn.Module]) -> None:
        super().__init__()
        self.attn = SeparableAttention(dim)
        self.mlp = nn.Sequential(ConvBNAct(dim, 2 * dim, act=act), ConvBNAct(2 * dim, dim, act=None))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


class MobileViTBlock(nn.Module):
    """Local convolution + global attention: ``B x C x H x W -> B x C x H x W``.

    ``softmax``: attention over 2 x 2 patches. Odd map sizes (the 112 x 112 ROI crops reach
    7 x 7 at stride 16) are zero-padded to a multiple of the patch before unfolding and
    cropped back afterwards. ``linear``: separable attention on the map itself.
    """

    def __init__(self, channels: int, dim: int, depth: int, attention: str = "softmax",
                 act: type[nn.Module] = nn.SiLU) -> None:
        super().__init__()
        if attention not in ATTENTIONS:
            raise ValueError(f"model.backbone.attention must be one of {', '.join(ATTENTIONS)}, got {attention!r}")
        self.attention = attention
        self.local = nn.Sequential(
            ConvBNAct(channels, channels, 3, groups=channels, act=act),
            nn.Conv2d(channels, dim, 1, bias=False),
        )
        if attention == "softmax":
            self.transformer = nn.Sequential(*[TransformerBlock(dim, VIT_HEADS, 2 * dim) for _ in range(depth)])
            self.norm = nn.LayerNorm(dim)
        else:
            self.transformer = nn.Sequential(*[LinearTransformerBlock(dim, act) for _ in range(depth)])
        self.proj = ConvBNAct(dim, channels, 1, act=act)
        self.fuse = ConvBNAct(2 * channels, channels, 1, act=act)

    def forward(self, x: Tensor) -> Tensor:
        y = self.local(x)
        y = self.transformer(y) if self.attention == "linear" else self._patch_attention(y)
        return self.fuse(torch.cat([x, self.proj(y)], dim=1))

    def _patch_attention(self, y: Tensor) -> Tensor:
        b, d, h, w = y.shape
        ph, pw = -h % PATCH, -w % PATCH
        y = F.pad(y, (0, pw, 0, ph))
        hp, wp = (h + ph) // PATCH, (w + pw) // PATCH
        # unfold: one sequence per position inside the patch, one token per patch
        y = y.reshape(b, d, hp, PATCH, wp, PATCH).permute(0, 3, 5, 2, 4, 1).reshape(b * PATCH * PATCH, hp * wp, d)
        y = self.norm(self.transformer(y))
        y = y.reshape(b, PATCH, PATCH, hp, wp, d).permute(0, 5, 3, 1, 4, 2).reshape(b, d, hp * PATCH, wp * PATCH)
        return y[:, :, :h, :w]


class DenseMap:
    """The uses of F that SAM-Lite and the global stream make (``B x C x h x w``, h x w = H/4 x W/4)."""

    def mean(self) -> Tensor:
        """Average over positions: ``B x C``."""
        raise NotImplementedError

    def avg_pool(self, factor: int) -> Tensor:
        """Average pooling by ``factor`` (ceil mode): ``B x C x h/factor x w/factor``."""
        raise NotImplementedError

    def dot(self, queries: Tensor) -> Tensor:
        """Queries ``B x K x C`` -> ``<q_k, F(p)>`` at every position: ``B x K x h x w``."""
        raise NotImplementedError

    def weighted_mean(self, weights: Tensor) -> Tensor:
        """Weights ``B x K x h x w`` -> ``sum_p w_k(p) F(p) / (sum_p w_k(p) + 1e-6)``: ``B x K x C``."""
        raise NotImplementedError


class MaterializedMap(DenseMap):
    """F held as a tensor (bilinear FPN, ``roi_tokens: crops``)."""

    def __init__(self, dense: Tensor) -> None:
        self.dense = dense

    def mean(self) -> Tensor:
        return self.dense.mean(dim=(2, 3))

    def avg_pool(self, factor: int) -> Tensor:
        return F.avg_pool2d(self.dense, factor, ceil_mode=True)

    def dot(self, queries: Tensor) -> Tensor:
        return torch.einsum("bkc,bchw->bkhw", queries, self.dense)

    def weighted_mean(self, weights: Tensor) -> Tensor:
        pooled = torch.einsum("bkhw,bchw->bkc", weights, self.dense)
        return pooled / (weights.sum(dim=(2, 3))[..., None] + 1e-6)


class PyramidMap(DenseMap):
    """F = sum over levels l of nearest-upsampled ``lateral_l(X_l)``, kept as the levels ``X_l``.

    ``X_l`` are the backbone features at strides 4 * 2^l (l = 0..3), each an exact 2^l-fold
    subsampling of the stride-4 grid (image sides multiples of 32). Each method equals the
    ``MaterializedMap`` one on the built F: the lateral 1 x 1 convolutions commute with
    pooling, with dot products and with nearest upsampling, and the adjoint of nearest
    upsampling is sum pooling.
    """

    def __init__(self, levels: Sequence[Tensor], laterals: nn.ModuleList) -> None:
        h, w = levels[0].shape[-2:]
        if any(tuple(x.shape[-2:]) != (h // 2**l, w // 2**l) or h % 2**l or w % 2**l for l, x in enumerate(levels)):
            raise ValueError(f"image sides must be multiples of {4 * 2 ** (len(levels) - 1)} for the pyramid form of F "
                             f"(roi_tokens: pooled); got levels {[tuple(x.shape[-2:]) for x in levels]}")
        self.levels = list(levels)
        self.laterals = laterals

    def _project(self, level: int, vectors: Tensor) -> Tensor:
        """The lateral 1 x 1 convolution of ``level`` on vectors ``... x c_l`` (bias not added)."""
        return vectors @ self.laterals[level].weight[:, :, 0, 0].T

    def mean(self) -> Tensor:
        # nearest upsampling repeats each value equally often, so the mean of F is the sum of the levels' means
        return sum(self._project(l, x.mean(dim=(2, 3))) + self.laterals[l].bias for l, x in enumerate(self.levels))

    def avg_pool(self, factor: int) -> Tensor:
        if factor != 2 ** (len(self.levels) - 1):
            raise ValueError(f"PyramidMap pools onto its coarsest level only (factor {2 ** (len(self.levels) - 1)}), got {factor}")
        # each level averaged onto the coarsest grid; the coarsest one as it is
        return sum(lateral(F.avg_pool2d(x, factor // 2**l) if l < len(self.levels) - 1 else x)
                   for l, (x, lateral) in enumerate(zip(self.levels, self.laterals)))

    def dot(self, queries: Tensor) -> Tensor:
        logits = None
        for l in reversed(range(len(self.levels))):  # coarse to fine, upsampling the running sum
            lateral = self.laterals[l]
            level = torch.einsum("bkc,bchw->bkhw", queries @ lateral.weight[:, :, 0, 0], self.levels[l])
            level = level + (queries @ lateral.bias)[..., None, None]
            logits = level if logits is None else level + F.interpolate(logits, scale_factor=2, mode="nearest")
        return logits

    def level_sums(self, weights: Tensor) -> list[Tensor]:
        """``weights`` (stride 4) sum-pooled onto every level's grid: ``B x K x h_l x w_l`` per level."""
        sums = [weights]
        for _ in self.levels[1:]:
            sums.append(F.avg_pool2d(sums[-1], 2) * 4)
        return sums

    def level_mean(self, weights: Tensor, level: int) -> Tensor:
        """The ``weights``-weighted mean of the raw features of ``level`` (not of F): ``B x K x c_l``."""
        pooled = torch.einsum("bkhw,bchw->bkc", self.level_sums(weights)[level], self.levels[level])
        return pooled / (weights.sum(dim=(2, 3))[..., None] + 1e-6)

    def weighted_mean(self, weights: Tensor) -> Tensor:
        total = weights.sum(dim=(2, 3))[..., None]  # B x K x 1
        pooled = 0
        for l, (x, w) in enumerate(zip(self.levels, self.level_sums(weights))):
            pooled = pooled + self._project(l, torch.einsum("bkhw,bchw->bkc", w, x)) + total * self.laterals[l].bias
        return pooled / (total + 1e-6)


class MobileViTBackbone(nn.Module):
    """Images ``B x 3 x H x W`` in [0, 1] -> dense map F or a pooled coarse vector.

    ``forward`` gives F: ``B x dense_channels x H/4 x W/4`` (bilinear FPN). ``pyramid`` gives
    the features at strides 4, 8, 16, 32 (what ``PyramidMap`` reads). ``embed`` gives the
    average of the stride-32 features, ``B x out_channels``, without building F (the ROI
    crops need only that). The ImageNet normalization happens here, so callers pass raw
    [0, 1] pixels.
    """

    def __init__(
        self,
        width_multiplier: float,
        stage_channels: list[int],
        transformer_dims: list[int],
        transformer_depths: list[int],
        dense_channels: int,
        attention: str = "softmax",
        activation: str = "silu",
    ) -> None:
        super().__init__()
        if len(stage_channels) != 5 or len(transformer_dims) != 3 or len(transformer_depths) != 3:
            raise ValueError("backbone needs 5 stage_channels and 3 transformer_dims / transformer_depths")
        if activation not in ACTIVATIONS:
            raise ValueError(f"model.backbone.activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
        act = ACTIVATIONS[activation]
        c = [make_divisible(ch * width_multiplier) for ch in stage_channels]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.stem = ConvBNAct(3, c[0], 3, 2, act=act)  # stride 2
        self.stage4 = nn.Sequential(*[InvertedResidual(c[0] if i == 0 else c[1], c[1], 2 if i == 0 else 1, act) for i in range(3)])

        def stage(cin: int, cout: int, i: int) -> nn.Sequential:
            return nn.Sequential(InvertedResidual(cin, cout, 2, act),
                                 MobileViTBlock(cout, transformer_dims[i], transformer_depths[i], attention, act))

        self.stage8, self.stage16, self.stage32 = stage(c[1], c[2], 0), stage(c[2], c[3], 1), stage(c[3], c[4], 2)
        self.lateral = nn.ModuleList(nn.Conv2d(ch, dense_channels, 1) for ch in (c[1], c[2], c[3], c[4]))
        self.out_channels = c[4]
        self.dense_channels = dense_channels

    def pyramid(self, image: Tensor) -> list[Tensor]:
        """Features at strides 4, 8, 16, 32: ``B x c_l x H/s x W/s``."""
        x = self.stem((image - self.mean) / self.std)
        feats = []
        for stage in (self.stage4, self.stage8, self.stage16, self.stage32):
            x = stage(x)
            feats.append(x)
        return feats

    def forward(self, image: Tensor) -> Tensor:
        feats = self.pyramid(image)
        dense = self.lateral[3](feats[3])
        for level in (2, 1, 0):
            lateral = self.lateral[level](feats[level])
            dense = lateral + F.interpolate(dense, size=lateral.shape[-2:], mode="bilinear", align_corners=False)
        return dense

    def embed(self, image: Tensor) -> Tensor:
        return self.pyramid(image)[3].mean(dim=(2, 3))
