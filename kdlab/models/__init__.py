"""The kdlab model zoo: the CIFAR-100 teachers and students of RepDistiller
(Tian et al., "Contrastive Representation Distillation", ICLR 2020), rebuilt
layer for layer so that parameter counts and shapes match the published ones.

    model = kdlab.models.create("wrn_40_2", num_classes=100)
    feats, logits = model.forward_features(images)

Every model is a StagedNet (see base.py): stem -> stages[0..N-1] -> head, with
forward == head(stages(stem(x))), `features(x)` returning the N stage outputs,
`stage_channels`, and `classifier` (the head's final nn.Linear).

name          params (100 classes)  N  stage outputs for a 32x32 input (C x H x W)
resnet8          83,892  0.08 M   3  16x32x32   32x16x16   64x8x8
resnet14        181,108  0.18 M   3  16x32x32   32x16x16   64x8x8
resnet20        278,324  0.28 M   3  16x32x32   32x16x16   64x8x8
resnet32        472,756  0.47 M   3  16x32x32   32x16x16   64x8x8
resnet44        667,188  0.67 M   3  16x32x32   32x16x16   64x8x8
resnet56        861,620  0.86 M   3  16x32x32   32x16x16   64x8x8
resnet110     1,736,564  1.74 M   3  16x32x32   32x16x16   64x8x8
resnet8x4     1,233,540  1.23 M   3  64x32x32   128x16x16  256x8x8
resnet32x4    7,433,860  7.43 M   3  64x32x32   128x16x16  256x8x8
wrn_16_1        180,916  0.18 M   3  16x32x32   32x16x16   64x8x8
wrn_16_2        703,284  0.70 M   3  32x32x32   64x16x16   128x8x8
wrn_40_1        569,780  0.57 M   3  16x32x32   32x16x16   64x8x8
wrn_40_2      2,255,156  2.26 M   3  32x32x32   64x16x16   128x8x8
vgg8          3,965,028  3.97 M   4  128x16x16  256x8x8    512x4x4   512x4x4
vgg11         9,277,284  9.28 M   4  128x16x16  256x8x8    512x4x4   512x4x4
vgg13         9,462,180  9.46 M   4  128x16x16  256x8x8    512x4x4   512x4x4
MobileNetV2     812,836  0.81 M   4  12x16x16   16x8x8     48x4x4    160x2x2
ShuffleV1       949,258  0.95 M   3  240x16x16  480x8x8    960x4x4
ShuffleV2     1,355,528  1.36 M   3  116x16x16  232x8x8    464x4x4

These counts equal those of RepDistiller's own definitions (checked against a
transcription of its code, which also gives identical stage outputs).
resnet110 is sometimes quoted as 1.73 M; its 1,736,564 rounds to 1.74 M.

Choices made:
- Stages are RepDistiller's feature points (what its `is_feat=True` returns,
  minus the stem output and the pooled vector): ResNet/WRN/ShuffleNet layer1-3;
  VGG blocks 1-4 (block 0 is the stem; pools sit at the start of a stage);
  MobileNetV2 block groups [0,1], [2], [3,4], [5,6] (the 1x1 conv to 1280
  channels is in the head). WRN stage outputs are pre-activation, as there.
- All heads use adaptive average pooling (RepDistiller pools with fixed sizes),
  so 32x32 and 64x64 inputs both work. VGG does not add RepDistiller's extra
  max pool for 64x64 inputs (see vgg.py).
- vgg* are RepDistiller's vgg*_bn (BatchNorm, as in its model_dict);
  MobileNetV2 is its `mobile_half` (width 0.5, expansion 6); "mobile_half" is
  accepted by `create` as an alias.
- Weight init follows RepDistiller per family (see each file); ShuffleNets use
  PyTorch defaults, as there. No dropout, no pretrained weights.
- RepDistiller's pre-activation ("preact") features are not exposed; the
  pooled penultimate vector (CRD's embedding) is model.head[:-1](feats[-1]).
- Lookup is case-insensitive and treats '-' as '_' ("WRN-40-2" works).
"""

import difflib
import numbers

import torch.nn as nn

from .base import StagedNet
from .mobilenetv2 import mobilenetv2
from .resnet import resnet8, resnet14, resnet20, resnet32, resnet44, resnet56, resnet110, resnet8x4, resnet32x4
from .shufflenet import shufflev1, shufflev2
from .vgg import vgg8, vgg11, vgg13
from .wrn import wrn_16_1, wrn_16_2, wrn_40_1, wrn_40_2

# name -> builder(num_classes); names exactly as RepDistiller's model_dict
REGISTRY = {
    "resnet8": resnet8,
    "resnet14": resnet14,
    "resnet20": resnet20,
    "resnet32": resnet32,
    "resnet44": resnet44,
    "resnet56": resnet56,
    "resnet110": resnet110,
    "resnet8x4": resnet8x4,
    "resnet32x4": resnet32x4,
    "wrn_16_1": wrn_16_1,
    "wrn_16_2": wrn_16_2,
    "wrn_40_1": wrn_40_1,
    "wrn_40_2": wrn_40_2,
    "vgg8": vgg8,
    "vgg11": vgg11,
    "vgg13": vgg13,
    "MobileNetV2": mobilenetv2,
    "ShuffleV1": shufflev1,
    "ShuffleV2": shufflev2,
}
ALIASES = {"mobile_half": "MobileNetV2"}


def names() -> list[str]:
    return list(REGISTRY)


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def canonical(name: str) -> str:
    """The registry's spelling of a model name ('RESNET8' -> 'resnet8', case and '-' or '_' aside); an unknown
    name raises ValueError suggesting the closest one. Cache keys use it, so spellings share one entry."""
    lookup = {_key(n): n for n in REGISTRY} | {_key(a): n for a, n in ALIASES.items()}
    key = _key(str(name))
    if key not in lookup:
        close = difflib.get_close_matches(key, list(lookup), n=1, cutoff=0.0)
        hint = f" Did you mean {lookup[close[0]]!r}?" if close else ""
        raise ValueError(f"unknown model {name!r}.{hint} Available: {', '.join(REGISTRY)}")
    return lookup[key]


def create(name: str, num_classes: int = 100) -> nn.Module:
    """Build a freshly initialised zoo model by name (case-insensitive, '-' == '_').
    Raises ValueError for an unknown name (suggesting the closest one) or a
    num_classes that is not a positive int."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}; pass the dataset's "
                         f"class count, e.g. num_classes=data.num_classes")
    return REGISTRY[canonical(name)](int(num_classes))


__all__ = ["ALIASES", "REGISTRY", "StagedNet", "canonical", "create", "names"]
