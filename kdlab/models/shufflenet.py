"""ShuffleNet V1 (Zhang et al. 2018) and V2 (Ma et al. 2018) for 32x32 inputs,
as defined in RepDistiller (which follows kuangliu/pytorch-cifar).

CIFAR changes from the ImageNet papers, kept as in RepDistiller: the stem is a
single 1x1 conv (24 channels) + BN + ReLU with no stride and no max pool, so the
three stages run at 16x16, 8x8, 4x4; V1 also has a ReLU after its depthwise conv.
Stages (N = 3) are the three stride-2 stage groups, RepDistiller's feature points.
Weights keep PyTorch's default init, as RepDistiller does for these two nets.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import StagedNet, pooled_head


def channel_shuffle(x, groups):
    # (N, g*k, H, W) -> (N, k*g, H, W): interleave the groups so that the next
    # grouped conv sees channels from every group
    return x.unflatten(1, (groups, -1)).transpose(1, 2).flatten(1, 2)


def conv_bn(cin, cout, k, stride=1, groups=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout))


# ---------------------------------------------------------------- ShuffleNet V1


class ShuffleUnitV1(nn.Module):
    """1x1 group conv - shuffle - 3x3 depthwise - 1x1 group conv, plus shortcut.
    Stride 2 units concatenate an avg-pooled input instead of adding it."""

    def __init__(self, cin, cout, stride, groups):
        super().__init__()
        mid = cout // 4
        self.g1 = 1 if cin == 24 else groups  # the 24-channel stem output is too narrow to group
        self.stride = stride
        self.conv1 = conv_bn(cin, mid, 1, groups=self.g1)
        self.conv2 = conv_bn(mid, mid, 3, stride, groups=mid)
        self.conv3 = conv_bn(mid, cout, 1, groups=groups)
        self.pool = nn.AvgPool2d(3, stride=2, padding=1) if stride == 2 else None

    def forward(self, x):
        out = channel_shuffle(F.relu(self.conv1(x)), self.g1)
        out = self.conv3(F.relu(self.conv2(out)))
        if self.stride == 2:
            return F.relu(torch.cat([out, self.pool(x)], 1))
        return F.relu(out + x)


class ShuffleNetV1(StagedNet):
    def __init__(self, widths=(240, 480, 960), depths=(4, 8, 4), groups=3, num_classes=100, arch="ShuffleV1"):
        super().__init__(num_classes, arch)
        c = 24
        self.stem = nn.Sequential(conv_bn(3, c, 1), nn.ReLU(inplace=True))
        self.stages = nn.ModuleList()
        for w, n in zip(widths, depths):
            # the first unit concatenates its c input channels, so it only adds w - c
            units = [ShuffleUnitV1(c, w - c, 2, groups)] + [ShuffleUnitV1(w, w, 1, groups) for _ in range(n - 1)]
            self.stages.append(nn.Sequential(*units))
            c = w
        self.head = pooled_head(c, num_classes)


def shufflev1(num_classes=100):
    return ShuffleNetV1(num_classes=num_classes, arch="ShuffleV1")


# ---------------------------------------------------------------- ShuffleNet V2


class ShuffleUnitV2(nn.Module):
    """Split channels in half, pass one half through, transform the other
    (1x1 - 3x3 depthwise - 1x1), concatenate and shuffle."""

    def __init__(self, c):
        super().__init__()
        h = c // 2
        self.branch = nn.Sequential(
            conv_bn(h, h, 1), nn.ReLU(inplace=True),
            conv_bn(h, h, 3, groups=h),
            conv_bn(h, h, 1), nn.ReLU(inplace=True),
        )

    def forward(self, x):
        x1, x2 = x.chunk(2, dim=1)
        return channel_shuffle(torch.cat([x1, self.branch(x2)], 1), 2)


class DownUnitV2(nn.Module):
    """Stride 2 unit: both branches see the whole input; widths cin -> cout."""

    def __init__(self, cin, cout):
        super().__init__()
        h = cout // 2
        self.left = nn.Sequential(
            conv_bn(cin, cin, 3, 2, groups=cin),
            conv_bn(cin, h, 1), nn.ReLU(inplace=True),
        )
        self.right = nn.Sequential(
            conv_bn(cin, h, 1), nn.ReLU(inplace=True),
            conv_bn(h, h, 3, 2, groups=h),
            conv_bn(h, h, 1), nn.ReLU(inplace=True),
        )

    def forward(self, x):
        return channel_shuffle(torch.cat([self.left(x), self.right(x)], 1), 2)


class ShuffleNetV2(StagedNet):
    def __init__(self, widths=(116, 232, 464), depths=(3, 7, 3), last=1024, num_classes=100, arch="ShuffleV2"):
        super().__init__(num_classes, arch)
        c = 24
        self.stem = nn.Sequential(conv_bn(3, c, 1), nn.ReLU(inplace=True))
        self.stages = nn.ModuleList()
        for w, n in zip(widths, depths):
            # RepDistiller: one down unit then n (not n - 1) basic units per stage
            self.stages.append(nn.Sequential(DownUnitV2(c, w), *[ShuffleUnitV2(w) for _ in range(n)]))
            c = w
        self.head = pooled_head(last, num_classes, conv_bn(c, last, 1), nn.ReLU(inplace=True))


def shufflev2(num_classes=100):
    """RepDistiller's ShuffleV2: net_size 1 (the paper's 1x widths)."""
    return ShuffleNetV2(num_classes=num_classes, arch="ShuffleV2")
