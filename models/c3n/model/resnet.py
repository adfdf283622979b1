"""ResNet-50 visual backbone as AVSBench's ``ResNet_AVSModel`` holds it (keys ``resnet.*``, strict).

Our own implementation of the bottleneck ResNet (He et al., CVPR 2016), laid out like AVSBench's
two-branch ResNet-50 so that its checkpoint sub-dict loads strictly: stem ``conv1`` 7×7/2,
``bn1``, ReLU, 3×3/2 max pool; ``layer1``, ``layer2``, ``layer3_1``, ``layer4_1`` (3/4/6/3
bottlenecks, widths 64/128/256/512, expansion 4, stride on the 3×3 convolution, projection
shortcut ``downsample.{0,1}``), and an unused second branch ``layer3_2`` / ``layer4_2`` (present
in the checkpoint, never run). BatchNorm in eval mode. There is no ImageNet head in AVSBench's
network; ``num_classes > 0`` adds one (``fc``, on the mean of stage 4; torchvision's layout) for
tests of :mod:`c3n.model.camgrad`.

Stages at 224×224: [N,256,56,56], [N,512,28,28], [N,1024,14,14], [N,2048,7,7]. There is no stage
norm: the stage maps are the last blocks' outputs (the taps).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .pvt_v2 import _head_map


class _Bottleneck(nn.Module):
    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        cout = 4 * width
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


def _layer(cin: int, width: int, depth: int, stride: int) -> nn.Sequential:
    return nn.Sequential(*[_Bottleneck(cin if i == 0 else 4 * width, width, stride if i == 0 else 1)
                           for i in range(depth)])


class ResNet50Backbone(nn.Module):
    """ResNet-50 (AVSBench layout) returning the four stage maps; ``visual_logits`` is None unless
    ``num_classes > 0``. Smaller ``widths`` / ``depths`` / ``stem`` give test-sized networks."""

    tap_dims = (2, 3)  # the taps are the stage maps [N,C,H,W]

    def __init__(self, widths: Sequence[int] = (64, 128, 256, 512), depths: Sequence[int] = (3, 4, 6, 3),
                 stem: int = 64, num_classes: int = 0, second_branch: bool = True):
        super().__init__()
        self.stage_channels = tuple(4 * w for w in widths)
        self.conv1 = nn.Conv2d(3, stem, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.layer1 = _layer(stem, widths[0], depths[0], 1)
        self.layer2 = _layer(4 * widths[0], widths[1], depths[1], 2)
        self.layer3_1 = _layer(4 * widths[1], widths[2], depths[2], 2)
        self.layer4_1 = _layer(4 * widths[2], widths[3], depths[3], 2)
        if second_branch:  # in AVSBench's checkpoint, unused by its forward
            self.layer3_2 = _layer(4 * widths[1], widths[2], depths[2], 2)
            self.layer4_2 = _layer(4 * widths[2], widths[3], depths[3], 2)
        self.fc = nn.Linear(4 * widths[3], num_classes) if num_classes > 0 else None

    def train(self, mode: bool = True):  # BatchNorm statistics stay frozen, as at inference
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    def forward_taps(self, x: torch.Tensor):
        """x [N,3,H,W] -> (4 stage maps, visual_logits or None, taps = the same 4 maps)."""
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        stages = []
        for layer in (self.layer1, self.layer2, self.layer3_1, self.layer4_1):
            x = layer(x)
            stages.append(x)
        logits = self.fc(x.mean(dim=(2, 3))) if self.fc is not None else None
        return stages, logits, stages

    def forward(self, x: torch.Tensor):
        """x [N,3,224,224] -> (4 stage maps, visual_logits or None)."""
        stages, logits, _ = self.forward_taps(x)
        return stages, logits

    def logit_map(self, stage4: torch.Tensor) -> torch.Tensor:
        """The head at every stage-4 cell (only with ``num_classes > 0``)."""
        if self.fc is None:
            raise ValueError("AVSBench's ResNet-50 has no ImageNet head")
        return _head_map(self.fc, stage4)


def resnet50(num_classes: int = 0) -> ResNet50Backbone:
    """AVSBench's ResNet-50 (no head by default)."""
    return ResNet50Backbone(num_classes=num_classes)
