"""MobileNetV2 (Sandler et al. 2018) as RepDistiller's `mobile_half`:
width multiplier 0.5, expansion 6, for 32x32 inputs.

Differences from torchvision's MobileNetV2 that RepDistiller has (and so do we):
the stem conv has stride 2 but the second group of blocks has stride 1, so a
32x32 image ends at 2x2; every block, even the t=1 one, starts with a 1x1
expansion conv; widths are int(c * 0.5) with no rounding to multiples of 8;
the last 1x1 conv keeps 1280 channels.

Stages (N = 4) follow RepDistiller's feature points: block groups
[0, 1], [2], [3, 4], [5, 6] of the table below.
"""

import torch.nn as nn

from .base import StagedNet, pooled_head, repdistiller_init

# output channels c, repeats n, first stride s (before width scaling);
# the first group uses expansion 1, all others the model's t
SETTINGS = [
    (16, 1, 1),
    (24, 2, 1),
    (32, 3, 2),
    (64, 4, 2),
    (96, 3, 1),
    (160, 3, 2),
    (320, 1, 1),
]
STAGE_GROUPS = [[0, 1], [2], [3, 4], [5, 6]]


def conv_bn_relu(cin, cout, k, stride=1, groups=1):
    return [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class InvertedResidual(nn.Module):
    """1x1 expand - 3x3 depthwise - 1x1 linear projection; residual when shapes allow."""

    def __init__(self, cin, cout, stride, t):
        super().__init__()
        mid = cin * t
        self.use_res = stride == 1 and cin == cout
        self.conv = nn.Sequential(
            *conv_bn_relu(cin, mid, 1),
            *conv_bn_relu(mid, mid, 3, stride, groups=mid),
            nn.Conv2d(mid, cout, 1, bias=False),
            nn.BatchNorm2d(cout),  # no ReLU: the "linear bottleneck"
        )

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(StagedNet):
    def __init__(self, width=0.5, t=6, num_classes=100, arch="MobileNetV2"):
        super().__init__(num_classes, arch)
        c = int(32 * width)
        self.stem = nn.Sequential(*conv_bn_relu(3, c, 3, stride=2))
        groups = []
        for i, (c_i, n, s) in enumerate(SETTINGS):
            cout = int(c_i * width)
            blocks = []
            for j in range(n):
                blocks.append(InvertedResidual(c, cout, s if j == 0 else 1, 1 if i == 0 else t))
                c = cout
            groups.append(blocks)
        self.stages = nn.ModuleList(nn.Sequential(*[b for g in idx for b in groups[g]]) for idx in STAGE_GROUPS)
        last = int(1280 * width) if width > 1.0 else 1280
        self.head = pooled_head(last, num_classes, *conv_bn_relu(c, last, 1))

        # RepDistiller's init: He-normal (fan_out) convs, BN = identity, Linear N(0, 0.01) with zero bias
        repdistiller_init(self, classifier="normal")


def mobilenetv2(num_classes=100):
    """RepDistiller's mobile_half."""
    return MobileNetV2(0.5, 6, num_classes, "MobileNetV2")
