"""StagedNet: the one shape every kdlab model has.

    logits = head(stages[N-1](... stages[0](stem(x))))

Distillers tap the output of each stage (`features`), and SFTN-style training
runs teacher stage outputs through copies of the student's later stages and
head, so stem, stages and head must compose into forward and nothing else.
"""

import torch
import torch.nn as nn


class StagedNet(nn.Module):
    """Base class. Subclasses call super().__init__ and then set:

    stem:   nn.Module       image -> first feature map
    stages: nn.ModuleList   N modules; stage outputs are the distillation features
    head:   nn.Sequential   last stage output -> logits, ending in the nn.Linear
                            classifier (also reachable as `model.classifier`)
    """

    def __init__(self, num_classes: int, arch: str):
        super().__init__()
        self.num_classes = num_classes
        self.arch = arch
        self._stage_channels = None  # filled lazily by stage_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Output of every stage, in order (the head is not run)."""
        feats = []
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats

    def forward_features(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Stage outputs and logits from a single pass."""
        feats = self.features(x)
        return feats, self.head(feats[-1])

    @property
    def classifier(self) -> nn.Linear:
        return self.head[-1]

    def __setattr__(self, name, value):
        # `classifier` is an alias, so assigning it must swap the Linear inside
        # the head; nn.Module.__setattr__ would otherwise register a stray module
        if name == "classifier":
            self.head[-1] = value
            self.num_classes = value.out_features
            return
        super().__setattr__(name, value)

    def stage_shapes(self, image_size: int = 32) -> list[tuple[int, int, int]]:
        """(C, H, W) of each stage output for one image_size x image_size input, from a dummy forward. Every
        module is put in eval mode for it (so BatchNorm running stats are untouched) and its own train/eval flag
        restored afterwards."""
        p = next(self.parameters())
        modes = [(m, m.training) for m in self.modules()]
        self.eval()
        try:
            with torch.no_grad():
                feats = self.features(torch.zeros(1, 3, image_size, image_size, device=p.device, dtype=p.dtype))
        finally:
            for m, training in modes:
                m.training = training
        return [tuple(f.shape[1:]) for f in feats]

    @property
    def stage_channels(self) -> list[int]:
        """Channel count of each stage output, measured once (`stage_shapes` at 32x32)."""
        if self._stage_channels is None:
            self._stage_channels = [c for c, _, _ in self.stage_shapes()]
        return list(self._stage_channels)

    def extra_repr(self) -> str:
        return f"arch={self.arch!r}, num_classes={self.num_classes}"


def pooled_head(in_channels: int, num_classes: int, *pre: nn.Module) -> nn.Sequential:
    """[pre...] -> global average pool -> flatten -> Linear. Adaptive pooling
    (RepDistiller uses fixed-size pools) so that 32x32 and 64x64 inputs both work."""
    return nn.Sequential(*pre, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_channels, num_classes))


def repdistiller_init(model: nn.Module, *, classifier: str = "default", conv_bias: bool = False) -> None:
    """RepDistiller's initialisation: He-normal (fan_out) convolutions and BatchNorm as the identity; the
    classifier as each RepDistiller file does it: "default" (PyTorch's), "zero_bias" (WRN) or "normal"
    (N(0, 0.01) weights, zero bias: VGG, MobileNetV2). `conv_bias` zeroes convolution biases (VGG)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if conv_bias:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and classifier != "default":
            if classifier == "normal":
                nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
