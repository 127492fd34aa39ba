"""Wide ResNets (Zagoruyko & Komodakis 2016) as defined in RepDistiller.

wrn_D_k: depth D = 6n + 4, widen factor k. A bare 3x3 stem conv, three stages
of n pre-activation blocks with widths 16k, 32k, 64k (stride 1, 2, 2), then
BN-ReLU, global pooling and a Linear. No dropout (RepDistiller's dropRate=0).

Blocks are pre-activation, so stage outputs are sums *before* BN/ReLU (the same
tensors RepDistiller returns as features); the final BN-ReLU lives in the head.
"""

import torch.nn as nn

from .base import StagedNet, pooled_head, repdistiller_init


class PreActBlock(nn.Module):
    """bn-relu-conv-bn-relu-conv, plus the shortcut."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        # RepDistiller projects only when the width changes (which is also
        # whenever the stride is 2 in these nets); the projection is a bare 1x1 conv
        self.shortcut = None if cin == cout else nn.Conv2d(cin, cout, 1, stride=stride, bias=False)

    def forward(self, x):
        o = self.bn1(x).relu()
        out = self.conv2(self.bn2(self.conv1(o)).relu())
        # identity shortcut takes the raw input; the projection takes the activated one
        return out + (x if self.shortcut is None else self.shortcut(o))


class WideResNet(StagedNet):
    def __init__(self, depth, widen, num_classes=100, arch="wrn"):
        super().__init__(num_classes, arch)
        assert (depth - 4) % 6 == 0, "WRN depth must be 6n+4"
        n = (depth - 4) // 6
        c = 16
        self.stem = nn.Conv2d(3, c, 3, padding=1, bias=False)
        self.stages = nn.ModuleList()
        for i, w in enumerate((16 * widen, 32 * widen, 64 * widen)):
            stride = 1 if i == 0 else 2
            blocks = [PreActBlock(c, w, stride)] + [PreActBlock(w, w) for _ in range(n - 1)]
            self.stages.append(nn.Sequential(*blocks))
            c = w
        self.head = pooled_head(c, num_classes, nn.BatchNorm2d(c), nn.ReLU(inplace=True))

        # RepDistiller's init: N(0, sqrt(2 / (k*k*out))) convs, i.e. He-normal fan_out;
        # BN = identity; Linear bias zeroed, weight left at PyTorch default
        repdistiller_init(self, classifier="zero_bias")


def wrn_16_1(num_classes=100):
    return WideResNet(16, 1, num_classes, "wrn_16_1")


def wrn_16_2(num_classes=100):
    return WideResNet(16, 2, num_classes, "wrn_16_2")


def wrn_40_1(num_classes=100):
    return WideResNet(40, 1, num_classes, "wrn_40_1")


def wrn_40_2(num_classes=100):
    return WideResNet(40, 2, num_classes, "wrn_40_2")
