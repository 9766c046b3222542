"""Example PyTorch model factories for suites (``torch: benchmarks.models.torch_zoo:resnet50``).

Written with ``torch.nn`` alone (no torchvision, nothing downloaded). Each factory returns ``(module, inputs)``:
the module with random weights (the harness seeds torch first) or weights loaded from a local ``state_dict`` file,
and example inputs by name at batch 1. The harness exports the module to ONNX with a dynamic batch dimension for the
ONNX-based backends and runs it natively under ``--backend torch``.

To benchmark trained weights, wrap a factory in your own module::

    def my_resnet():
        return resnet50(weights="/data/resnet50-state-dict.pt")
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _load(module: nn.Module, weights: str | None) -> nn.Module:
    if weights:
        module.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return module


# -- ResNet-50 class: bottleneck residual CNN, 25.6 M parameters, about 4.1 GMAC per 224x224 image ---------------
class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = nn.Conv2d(in_ch, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.down: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.down = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + self.down(x))


class ResNet(nn.Module):
    def __init__(self, layers: tuple[int, ...] = (3, 4, 6, 3), num_classes: int = 1000, base: int = 64) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, base, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(base),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        blocks: list[nn.Module] = []
        in_ch = base
        for stage, count in enumerate(layers):
            width = base * 2**stage
            for i in range(count):
                blocks.append(Bottleneck(in_ch, width, stride=2 if (i == 0 and stage > 0) else 1))
                in_ch = width * Bottleneck.expansion
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(in_ch, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(images))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def resnet50(weights: str | None = None) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """ResNet-50 layout (3, 4, 6, 3 bottlenecks), input ``images`` float32 [batch, 3, 224, 224]."""
    return _load(ResNet(), weights), {"images": torch.rand(1, 3, 224, 224)}


def resnet_tiny(weights: str | None = None) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """The same architecture cut down (one block a stage, 8 base channels, 32x32 input): for fast tests."""
    return _load(ResNet(layers=(1, 1, 1, 1), num_classes=10, base=8), weights), {"images": torch.rand(1, 3, 32, 32)}


# -- Transformer encoder class: BERT-base shape (12 layers, d_model 768, 12 heads, FFN 3072), sequence 128 -------
class EncoderLayer(nn.Module):
    def __init__(self, d_model: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.ff1 = nn.Linear(d_model, ffn)
        self.ff2 = nn.Linear(ffn, d_model)
        self.norm2 = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        q, k, v = self.qkv(x).view(b, s, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        attn = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, s, d)
        x = self.norm1(x + self.proj(attn))  # post-norm, as in BERT
        return self.norm2(x + self.ff2(F.gelu(self.ff1(x))))


class Encoder(nn.Module):
    def __init__(self, vocab: int, seq: int, d_model: int, layers: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab, d_model)
        self.positions = nn.Parameter(torch.randn(1, seq, d_model) * 0.02)
        self.norm = nn.LayerNorm(d_model)
        self.layers = nn.ModuleList(EncoderLayer(d_model, heads, ffn) for _ in range(layers))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.tokens(tokens) + self.positions[:, : tokens.shape[1]])
        for layer in self.layers:
            x = layer(x)
        return x


def bert_base(weights: str | None = None) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """BERT-base-shaped encoder (85 M encoder parameters, 8192-token vocabulary), input ``tokens`` int64
    [batch, 128]; about 11 GFLOP per sequence."""
    model = Encoder(vocab=8192, seq=128, d_model=768, layers=12, heads=12, ffn=3072)
    return _load(model, weights), {"tokens": torch.randint(0, 8192, (1, 128))}


def encoder_tiny(weights: str | None = None) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """Two layers, d_model 64, sequence 16: for fast tests."""
    model = Encoder(vocab=100, seq=16, d_model=64, layers=2, heads=4, ffn=128)
    return _load(model, weights), {"tokens": torch.randint(0, 100, (1, 16))}
