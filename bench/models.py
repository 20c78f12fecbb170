"""torch definitions of the CNNs that bench/suite.py runs: ResNet-18 and MobileNetV2 (1000 classes).

torchvision is not a dependency, so the two architectures are written out here (same layer
structure as torchvision's ``resnet18`` and ``mobilenet_v2``; the approach follows
``tests/test_onnx_import.py``).  Weights are random, and every BatchNorm gets random
statistics and affine parameters so that folding it into the convolutions (which every
inference engine does) is not a no-op.  Importing this module does not import torch: the
classes are built on demand by :func:`build`.

>>> import torch
>>> m = build("resnet18", torch)
>>> tuple(m(torch.zeros(1, 3, 64, 64)).shape)
(1, 1000)
"""

from __future__ import annotations

from typing import Any

MODELS = ("resnet18", "mobilenetv2")
LABELS = {"resnet18": "ResNet-18", "mobilenetv2": "MobileNetV2"}


def _classes(torch: Any) -> dict[str, Any]:
    nn = torch.nn

    class BasicBlock(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.down = None
            if stride != 1 or cin != cout:
                self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x: Any) -> Any:
            y = torch.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            return torch.relu(y + (x if self.down is None else self.down(x)))

    class ResNet18(nn.Module):
        def __init__(self, classes: int = 1000) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                                      nn.MaxPool2d(3, 2, 1))
            blocks, cin = [], 64
            for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
                blocks += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
                cin = cout
            self.layers = nn.Sequential(*blocks)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(512, classes)

        def forward(self, x: Any) -> Any:
            return self.fc(torch.flatten(self.pool(self.layers(self.stem(x))), 1))

    class InvertedResidual(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
            super().__init__()
            h = cin * expand
            layers: list = [] if expand == 1 else [nn.Conv2d(cin, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU6()]
            layers += [nn.Conv2d(h, h, 3, stride, 1, groups=h, bias=False), nn.BatchNorm2d(h), nn.ReLU6(),
                       nn.Conv2d(h, cout, 1, bias=False), nn.BatchNorm2d(cout)]
            self.conv = nn.Sequential(*layers)
            self.residual = stride == 1 and cin == cout

        def forward(self, x: Any) -> Any:
            return x + self.conv(x) if self.residual else self.conv(x)

    class MobileNetV2(nn.Module):
        def __init__(self, classes: int = 1000) -> None:
            super().__init__()
            cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                   (6, 320, 1, 1)]
            feats = [nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6())]
            cin = 32
            for t, c, n, s in cfg:
                for i in range(n):
                    feats.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                    cin = c
            feats.append(nn.Sequential(nn.Conv2d(cin, 1280, 1, bias=False), nn.BatchNorm2d(1280), nn.ReLU6()))
            self.features = nn.Sequential(*feats)
            self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, classes))

        def forward(self, x: Any) -> Any:
            x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
            return self.classifier(torch.flatten(x, 1))

    return {"resnet18": ResNet18, "mobilenetv2": MobileNetV2}


def build(name: str, torch: Any, classes: int = 1000, seed: int = 0) -> Any:
    """The torch model ``name`` (one of :data:`MODELS`) in eval mode, random weights and BN statistics.

    The same ``seed`` gives the same weights.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {MODELS}")
    torch.manual_seed(seed)
    model = _classes(torch)[name](classes)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5, generator=g)
                mod.running_var.uniform_(0.5, 1.5, generator=g)
                mod.weight.uniform_(0.5, 1.5, generator=g)
                mod.bias.uniform_(-0.5, 0.5, generator=g)
    return model.eval()


def export_onnx(model: Any, torch: Any, shape: tuple, path: str) -> str:
    """Exports ``model`` with the TorchScript exporter (``dynamo=False``) at opset 17, static ``shape``.

    Input ``x``, output ``y``.  Returns ``path``.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(shape),), path, dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["y"])
    return path
