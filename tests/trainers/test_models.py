from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

from pytest_sweep.trainers.models import build_model, count_parameters
from pytest_sweep.trainers.names import MODELS

#: torch at one thread, as a sweep's xdist worker on this 2-core machine would run it
pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_resnet18_has_the_published_parameter_count() -> None:
    model = build_model("resnet18", in_channels=3, image_size=32, num_classes=10)
    assert count_parameters(model) == 11_173_962  # ~11.17M, the CIFAR ResNet-18


def test_resnet18_is_the_cifar_variant() -> None:
    model: Any = build_model("resnet18", in_channels=3, image_size=32, num_classes=10, width=16)
    stem = model.conv1
    assert isinstance(stem, nn.Conv2d)
    assert stem.kernel_size == (3, 3) and stem.stride == (1, 1) and stem.bias is None
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    widths = [layer[0].conv1.out_channels for layer in (model.layer1, model.layer2, model.layer3, model.layer4)]
    strides = [layer[0].conv1.stride[0] for layer in (model.layer1, model.layer2, model.layer3, model.layer4)]
    assert widths == [16, 32, 64, 128] and strides == [1, 2, 2, 2]
    assert isinstance(model.layer2[0].shortcut, nn.Sequential)  # 1x1 conv + BN
    assert model.fc.in_features == 128


def test_resnet18_uses_kaiming_fan_out_init() -> None:
    torch.manual_seed(0)
    model: Any = build_model("resnet18", in_channels=3, image_size=32, num_classes=10)
    w = model.layer4[0].conv1.weight.detach()  # 512 x 256 x 3 x 3: plenty of samples
    expected = math.sqrt(2.0 / (w.shape[0] * 9))
    assert abs(float(w.std()) - expected) / expected < 0.02


def test_lenet5_matches_the_reference_shape_at_32_pixels() -> None:
    model: Any = build_model("lenet5", in_channels=1, image_size=32, num_classes=10)
    assert model.classifier[0].in_features == 400
    assert count_parameters(model) == 61_750  # ~62K


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("channels,size", [(3, 32), (1, 32), (1, 8), (1, 28)])
def test_forward_shapes(name: str, channels: int, size: int) -> None:
    model = build_model(name, in_channels=channels, image_size=size, num_classes=7, width=8)
    out = model(torch.randn(4, channels, size, size))
    assert out.shape == (4, 7)


def test_lenet_probe_leaves_batchnorm_untouched() -> None:
    model: Any = build_model("lenet5", in_channels=1, image_size=8, num_classes=10)
    bn = model.features[1]
    assert int(bn.num_batches_tracked) == 0 and model.training


def test_unknown_model_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="resnet18, lenet5"):
        build_model("vgg", in_channels=3, image_size=32, num_classes=10)


def test_count_parameters() -> None:
    assert count_parameters(nn.Linear(3, 2)) == 8
