"""CIFAR VGGs with BatchNorm as defined in RepDistiller (its vgg*_bn).

Five conv blocks of 3x3 conv(bias)-BN-ReLU layers, separated by 2x2 max pools,
no FC layers: global pooling and one Linear(512, classes) instead.

Stages (N = 4) follow RepDistiller's feature points: the stem is block 0, and
stage i is [max pool, block i], so every stage output is a post-ReLU block
output taken before the next pool. At 32x32 there is no pool before block 4
(its input is already 4x4). Deviation: RepDistiller adds that fourth pool when
the input is 64x64; here the nets are the same at every input size, so for
64x64 inputs block 4 runs at 8x8 (same parameters, different features).
"""

import torch.nn as nn

from .base import StagedNet, pooled_head, repdistiller_init

# conv widths of blocks 0..4
CONFIGS = {
    "vgg8": [[64], [128], [256], [512], [512]],
    "vgg11": [[64], [128], [256, 256], [512, 512], [512, 512]],
    "vgg13": [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
}


def conv_block(cin, widths):
    layers = []
    for w in widths:
        layers += [nn.Conv2d(cin, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
        cin = w
    return layers


class VGG(StagedNet):
    def __init__(self, cfg, num_classes=100, arch="vgg"):
        super().__init__(num_classes, arch)
        self.stem = nn.Sequential(*conv_block(3, cfg[0]))
        self.stages = nn.ModuleList()
        for i in range(1, 5):
            pool = [nn.MaxPool2d(2)] if i < 4 else []
            self.stages.append(nn.Sequential(*pool, *conv_block(cfg[i - 1][-1], cfg[i])))
        self.head = pooled_head(cfg[4][-1], num_classes)

        # RepDistiller's init: He-normal (fan_out) convs with zero bias, BN = identity,
        # Linear N(0, 0.01) with zero bias
        repdistiller_init(self, classifier="normal", conv_bias=True)


def vgg8(num_classes=100):
    return VGG(CONFIGS["vgg8"], num_classes, "vgg8")


def vgg11(num_classes=100):
    return VGG(CONFIGS["vgg11"], num_classes, "vgg11")


def vgg13(num_classes=100):
    return VGG(CONFIGS["vgg13"], num_classes, "vgg13")
