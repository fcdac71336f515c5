"""Models the trainers can build: the CIFAR variant of ResNet-18 and LeNet-5.

Both adapt to the dataset they are given (channels, image size, number of classes), so the same
names work for CIFAR-10 (3x32x32), MNIST resized to 1x32x32 and the bundled 1x8x8 digits.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from pytest_sweep.trainers.names import MODELS


class BasicBlock(nn.Module):
    """Two 3x3 conv + BN layers with an identity or 1x1 conv + BN shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        result: torch.Tensor = F.relu(out + self.shortcut(x))
        return result


class ResNet18(nn.Module):
    """ResNet-18, CIFAR variant: 3x3 stride-1 stem, no max-pool, stages at width x (1, 2, 4, 8)."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        stages: list[nn.Module] = []
        in_planes = width
        for multiplier, stride in ((1, 1), (2, 2), (4, 2), (8, 2)):
            planes = width * multiplier
            stages.append(nn.Sequential(BasicBlock(in_planes, planes, stride), BasicBlock(planes, planes, 1)))
            in_planes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        logits: torch.Tensor = self.fc(torch.flatten(self.pool(out), 1))
        return logits


class LeNet5(nn.Module):
    """LeNet-5 with batch norm: two conv(5x5) + BN + ReLU + max-pool stages, then 120-84-classes.

    Images smaller than 16 pixels (the 8x8 digits) get padding 2 on both convolutions so that
    both stages keep a non-empty feature map; the first fully connected layer's input size is
    measured from a dummy forward pass (400 for 32x32 inputs).
    """

    def __init__(self, in_channels: int, image_size: int, num_classes: int) -> None:
        super().__init__()
        padding = 0 if image_size >= 16 else 2
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=padding),
            nn.BatchNorm2d(6),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5, padding=padding),
            nn.BatchNorm2d(16),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.features.eval()  # the probe must not touch the batch-norm running statistics
        with torch.no_grad():
            probe = self.features(torch.zeros(1, in_channels, image_size, image_size))
        self.features.train()
        self.classifier = nn.Sequential(
            nn.Linear(probe.numel(), 120),
            nn.ReLU(inplace=True),
            nn.Linear(120, 84),
            nn.ReLU(inplace=True),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.classifier(torch.flatten(self.features(x), 1))
        return out


def build_model(name: str, *, in_channels: int, image_size: int, num_classes: int, width: int = 64) -> nn.Module:
    """Build a model by name (``"resnet18"`` or ``"lenet5"``) for the given input shape.

    ``width`` is the channel count of ResNet-18's first stage (64 is the published model,
    ~11.2M parameters); LeNet-5 ignores it.
    """
    if in_channels < 1 or image_size < 1 or num_classes < 2:
        raise ValueError(
            f"bad model shape: in_channels={in_channels}, image_size={image_size}, num_classes={num_classes}"
        )
    if name == "resnet18":
        if width < 1:
            raise ValueError(f"resnet18 width must be positive, got {width}")
        return ResNet18(in_channels, num_classes, width)
    if name == "lenet5":
        if image_size < 4:
            raise ValueError(f"lenet5 needs images of at least 4x4 pixels, got {image_size}")
        return LeNet5(in_channels, image_size, num_classes)
    raise ValueError(f"unknown model {name!r}; valid names: {', '.join(MODELS)}")


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not) in ``model``."""
    return sum(p.numel() for p in model.parameters())
