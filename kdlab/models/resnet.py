"""CIFAR ResNets (He et al. 2016, section 4.2) as defined in RepDistiller.

depth = 6n + 2: a 3x3 stem conv, three stages of n BasicBlocks (stride 1, 2, 2),
global pooling and a Linear. widths = (stem, stage1, stage2, stage3);
the "x4" variants are four times wider.
"""

import torch
import torch.nn as nn

from .base import StagedNet, pooled_head, repdistiller_init


def conv3x3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """conv-bn-relu-conv-bn, add the shortcut, relu."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = conv3x3(cin, cout, stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = conv3x3(cout, cout)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            # 1x1 conv + BN projection, as RepDistiller (the paper's CIFAR nets zero-pad instead)
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet(StagedNet):
    def __init__(self, depth, widths, num_classes=100, arch="resnet"):
        super().__init__(num_classes, arch)
        assert (depth - 2) % 6 == 0, "CIFAR ResNet depth must be 6n+2"
        n = (depth - 2) // 6
        c = widths[0]
        self.stem = nn.Sequential(conv3x3(3, c), nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.stages = nn.ModuleList()
        for i, w in enumerate(widths[1:]):
            stride = 1 if i == 0 else 2
            blocks = [BasicBlock(c, w, stride)] + [BasicBlock(w, w) for _ in range(n - 1)]
            self.stages.append(nn.Sequential(*blocks))
            c = w
        self.head = pooled_head(c, num_classes)

        # RepDistiller's init: He-normal (fan_out) convs, BN = identity, Linear left at PyTorch default
        repdistiller_init(self)


def resnet8(num_classes=100):
    return ResNet(8, (16, 16, 32, 64), num_classes, "resnet8")


def resnet14(num_classes=100):
    return ResNet(14, (16, 16, 32, 64), num_classes, "resnet14")


def resnet20(num_classes=100):
    return ResNet(20, (16, 16, 32, 64), num_classes, "resnet20")


def resnet32(num_classes=100):
    return ResNet(32, (16, 16, 32, 64), num_classes, "resnet32")


def resnet44(num_classes=100):
    return ResNet(44, (16, 16, 32, 64), num_classes, "resnet44")


def resnet56(num_classes=100):
    return ResNet(56, (16, 16, 32, 64), num_classes, "resnet56")


def resnet110(num_classes=100):
    return ResNet(110, (16, 16, 32, 64), num_classes, "resnet110")


def resnet8x4(num_classes=100):
    return ResNet(8, (32, 64, 128, 256), num_classes, "resnet8x4")


def resnet32x4(num_classes=100):
    return ResNet(32, (32, 64, 128, 256), num_classes, "resnet32x4")
