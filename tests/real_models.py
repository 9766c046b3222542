"""Real-shaped models for the input and batch tests, built from code (random weights, nothing downloaded).

Tiny versions of what users bring: a ``transformers`` BERT (input_ids, attention_mask, token_type_ids and a 64-row
position table) and GPT-2 (batch axis named ``N``, dynamic sequence), a ResNet, a multi-input / multi-output module
with an int64 and a bool input, and CNNs exported at a fixed batch. Each is exported with the TorchScript exporter at
opset 17, as ``torch.onnx.export(..., dynamo=False)`` users do.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

SEQ = 16
BERT_VOCAB, GPT2_VOCAB, POSITIONS, MULTI_ROWS = 100, 120, 64, 10


def export(module: object, args: tuple, path: Path, inputs: list[str], outputs: list[str], axes: dict | None) -> Path:
    torch.manual_seed(0)
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), input_names=inputs, output_names=outputs, dynamic_axes=axes,
                          opset_version=17, dynamo=False)  # fmt: skip
    return path


class _Bert(torch.nn.Module):
    """transformers 5 needs keyword arguments; the exporter passes positional ones."""

    def __init__(self, model: object) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids, position_ids):  # type: ignore[no-untyped-def]
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                         position_ids=position_ids)  # fmt: skip
        return out.last_hidden_state, out.pooler_output


class _Gpt2(torch.nn.Module):
    def __init__(self, model: object) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):  # type: ignore[no-untyped-def]
        return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state


def bert(path: Path, fixed_batch: int | None = None) -> Path:
    """BERT encoder, 2 layers, hidden 32; dynamic batch and sequence unless ``fixed_batch`` pins both."""
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=BERT_VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=POSITIONS,
        type_vocab_size=2,
    )
    module = _Bert(transformers.BertModel(config)).eval()
    batch = fixed_batch or 2
    ids = torch.zeros(batch, SEQ, dtype=torch.long)
    args = (ids, torch.ones_like(ids), torch.zeros_like(ids), torch.arange(SEQ).expand(batch, SEQ))
    names = ["input_ids", "attention_mask", "token_type_ids", "position_ids"]
    axes = None if fixed_batch else {n: {0: "batch", 1: "seq"} for n in names}
    return export(module, args, path, names, ["hidden", "pooled"], axes)


def gpt2(path: Path) -> Path:
    """GPT-2 decoder, 2 layers, hidden 32; the batch axis is named ``N``, the sequence ``seq``."""
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=GPT2_VOCAB, n_embd=32, n_layer=2, n_head=2, n_positions=POSITIONS,
                                     bos_token_id=0, eos_token_id=0)  # fmt: skip
    module = _Gpt2(transformers.GPT2Model(config)).eval()
    ids = torch.zeros(2, SEQ, dtype=torch.long)
    axes = {n: {0: "N", 1: "seq"} for n in ("input_ids", "attention_mask")}
    return export(module, (ids, torch.ones_like(ids)), path, ["input_ids", "attention_mask"], ["hidden"], axes)


def resnet(path: Path) -> Path:
    """transformers ResNet, two stages, 32x32 images."""
    torch.manual_seed(0)
    config = transformers.ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                                       layer_type="basic", num_labels=10)  # fmt: skip
    model = transformers.ResNetForImageClassification(config).eval()

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, pixel_values):  # type: ignore[no-untyped-def]
            return self.model(pixel_values=pixel_values).logits

    args = (torch.zeros(2, 3, 32, 32),)
    return export(Logits().eval(), args, path, ["pixel_values"], ["logits"], {"pixel_values": {0: "batch"}})


class _Multi(torch.nn.Module):
    """An image, token ids (an embedding of ``MULTI_ROWS`` rows) and a bool mask in; scores and features out."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.embed = torch.nn.Embedding(MULTI_ROWS, 4)
        self.head = torch.nn.Linear(8, 5)

    def forward(self, image, ids, keep):  # type: ignore[no-untyped-def]
        pixels = self.conv(image).mean(dim=(2, 3))
        tokens = (self.embed(ids) * keep.unsqueeze(-1).float()).sum(dim=1)
        features = torch.cat([pixels, tokens], dim=1)
        return self.head(features), features


def multi(path: Path) -> Path:
    torch.manual_seed(0)
    args = (torch.zeros(2, 3, 8, 8), torch.zeros(2, 6, dtype=torch.long), torch.ones(2, 6, dtype=torch.bool))
    names = ["image", "ids", "keep"]
    axes = {n: {0: "batch"} for n in [*names, "scores", "features"]}
    return export(_Multi().eval(), args, path, names, ["scores", "features"], axes)


class _FlatCnn(torch.nn.Module):
    """conv -> ``view(batch, -1)`` -> linear: a fixed-batch export bakes the batch into the Reshape's shape."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):  # type: ignore[no-untyped-def]
        y = torch.relu(self.conv(x))
        return self.fc(y.view(x.shape[0], -1))


def fixed_cnn(path: Path, batch: int) -> Path:
    """A CNN exported at ``batch`` without dynamic axes: every shape in the graph is fixed."""
    torch.manual_seed(0)
    return export(_FlatCnn().eval(), (torch.zeros(batch, 3, 8, 8),), path, ["x"], ["y"], None)
