"""``harness init model.onnx``: write a starter suite for a user's ONNX model, read from the model's own signature.

The graph says most of what a suite needs. A leading dimension that every input shares is the batch: symbolic,
the suite sweeps batch sizes 1 and 8; fixed at N (an export from PyTorch or TensorFlow at one batch size), the suite
runs batch N. Every other symbolic dimension (a sequence length, an image size) gets one named shape set with a size
guessed from its name, e.g. ``seq128: {sequence_length: 128}``; a dynamic dimension without a name gets a size in the
input's ``shape``. Precisions fp32 and fp16; integer inputs and masks need nothing, the harness generates their values
from the graph. The suite is validated before it is written, and the command prints how to run it.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.core.errors import HarnessError
from harness.core.fsio import atomic_write_text
from harness.models.graph import real_inputs, tensor_info
from harness.models.sources import check_sources, load_onnx_structure
from harness.suite.backend_options import backend_name_problem
from harness.suite.load import load_suite

DEFAULT_OUTPUT = "suite.yaml"
DYNAMIC_BATCH_SIZES = (1, 8)
PRECISIONS = ("fp32", "fp16")
BATCH = "batch"  # the dim name harness.models.inputs.input_shape fills with the case's batch size
# Sizes for symbolic dims, by what their name says; the first pattern that matches wins.
_SIZE_GUESSES: tuple[tuple[re.Pattern[str], str, int], ...] = (
    (re.compile(r"seq|len|token|time|step|position|sentence|word", re.IGNORECASE), "seq", 128),
    (re.compile(r"height|width|^h$|^w$|size|res", re.IGNORECASE), "px", 224),
    (re.compile(r"chan|^c$", re.IGNORECASE), "ch", 3),
)
_OTHER_SIZE = 64


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="the ONNX model file to benchmark")
    parser.add_argument(
        "-o",
        "--output",
        default=DEFAULT_OUTPUT,
        metavar="PATH",
        help=f"suite file to write (default: {DEFAULT_OUTPUT})",
    )
    parser.add_argument("--name", default=None, help="model and suite name (default: the model file's name)")
    parser.add_argument(
        "--backend", default="onnxruntime", help="backend the printed command runs on (default: onnxruntime)"
    )
    parser.add_argument("--force", action="store_true", help="overwrite the suite file when it exists")


@dataclass
class Starter:
    """What the model's signature says a first suite should hold."""

    batch_sizes: tuple[int, ...]
    shapes: dict[str, int] = field(default_factory=dict)  # named dynamic dim (not the batch) -> size
    inputs: dict[str, list[int | str]] = field(default_factory=dict)  # input -> shape, where the model's won't do
    notes: list[str] = field(default_factory=list)  # said once on the terminal, and kept as comments in the file


def run(args: argparse.Namespace) -> int:
    problem = backend_name_problem(args.backend)
    if problem:
        raise HarnessError(f"--backend {args.backend}: {problem}")
    if args.backend == "torch":
        raise HarnessError("--backend torch runs `torch:` model factories, not ONNX files; pick an ONNX backend")
    model = Path(args.model)
    output = Path(args.output)
    if output.exists() and not args.force:
        raise HarnessError(f"{output} already exists; pass --force to overwrite it, or -o PATH to write elsewhere")
    starter = read_starter(model)
    name = args.name or model.stem
    text = render(starter, name=name, model_path=_relative(model, output.parent), command=_command(output, args))
    cases = _validated(text, output)
    atomic_write_text(output, text)
    print(f"wrote {output}: {cases} cases of '{name}' ({', '.join(PRECISIONS)}; batch {_sizes(starter)})")
    for note in starter.notes:
        print(f"  note: {note}")
    print(f"run it: {_command(output, args)}")
    return 0


def read_starter(path: Path) -> Starter:
    """The batch sizes, shape set and input shapes a first suite for the ONNX model at ``path`` needs."""
    graph = _load_graph(path)
    infos = [tensor_info(vi) for vi in real_inputs(graph)]
    if not infos:
        raise HarnessError(f"{path}: the model has no inputs to feed; export it with its inputs as graph inputs")
    leading = {info.shape[0] for info in infos if info.shape}
    shared = len(leading) == 1  # one leading dimension common to every input: the batch
    batch_dim = leading.pop() if shared else None
    starter = Starter(batch_sizes=DYNAMIC_BATCH_SIZES)
    if isinstance(batch_dim, int):
        starter.batch_sizes = (batch_dim,)
        starter.notes.append(
            f"the model was exported at batch {batch_dim}: the suite runs that batch (other sizes run only where "
            "the harness can make the batch dynamic)"
        )
    elif not shared:
        starter.batch_sizes = (1,)
        starter.notes.append("the inputs share no leading dimension, so none is a batch: the suite runs batch 1")
    for info in infos:
        shape = [_dim(dim, position, shared, batch_dim, starter.shapes) for position, dim in enumerate(info.shape)]
        if shape != list(info.shape):
            starter.inputs[info.name] = shape
    return starter


def _dim(dim: int | str | None, position: int, shared: bool, batch_dim: Any, shapes: dict[str, int]) -> int | str:
    """One dimension of an input as the suite writes it: ``batch``, a named dim sized in ``shapes``, or a size."""
    if isinstance(dim, int):
        return dim
    if shared and (dim == batch_dim if isinstance(dim, str) else position == 0):
        return BATCH
    if isinstance(dim, str):
        shapes.setdefault(dim, _guess(dim)[1])
        return dim
    return _guess(f"#{position}")[1]  # dynamic without a name: only a size in the input's shape can fix it


def _load_graph(path: Path) -> Any:
    return load_onnx_structure(path).graph  # the signature is all that is needed: weights stay on disk


def _guess(dim: str) -> tuple[str, int]:
    """(label stem, size) for a symbolic dim, from what its name says."""
    for pattern, stem, size in _SIZE_GUESSES:
        if pattern.search(dim):
            return stem, size
    return re.sub(r"[^A-Za-z0-9]", "", dim)[:12] or "dim", _OTHER_SIZE


def shape_label(dims: dict[str, int]) -> str:
    """A case-id friendly label for a shape set, e.g. ``seq128`` or ``seq128_px224``."""
    parts = dict.fromkeys(f"{_guess(name)[0]}{size}" for name, size in dims.items())
    return "_".join(parts)


def render(starter: Starter, *, name: str, model_path: str, command: str) -> str:
    """The suite file: a comment header, then plain YAML (keys in the order the suites reference shows them)."""
    model: dict[str, Any] = {"name": name, "path": model_path}
    if starter.inputs:
        model["inputs"] = {input_name: {"shape": shape} for input_name, shape in starter.inputs.items()}
    data: dict[str, Any] = {
        "suite": _suite_name(name),
        "description": f"Starter suite for {Path(model_path).name}, written by harness init.",
        "models": [model],
        "precisions": list(PRECISIONS),
        "batch_sizes": list(starter.batch_sizes),
    }
    if starter.shapes:
        data["shapes"] = {shape_label(starter.shapes): dict(starter.shapes)}
    data["tolerance"] = "10%"
    header = [
        f"# Run it: {command}",
        f"# Record baselines for this machine: {command} --update-baselines (then commit baselines/)",
        *(f"# Note: {note}" for note in starter.notes),
    ]
    if starter.shapes or starter.inputs:
        header.append("# Sizes of dynamic dimensions are guesses: set them to sizes your model sees in 'shapes'.")
    header.append("# More keys (int8, measure, input ranges, tolerances per metric): the suites reference in the docs.")
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, allow_unicode=True, width=100)
    return "\n".join(header) + "\n" + body


def _suite_name(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-_.")
    return slug or "suite"


def _relative(model: Path, folder: Path) -> str:
    """The model's path as the suite file sees it (relative to the suite's folder where one exists)."""
    try:
        return Path(os.path.relpath(model.resolve(), folder.resolve())).as_posix()
    except ValueError:  # another drive on Windows
        return model.resolve().as_posix()


def _command(output: Path, args: argparse.Namespace) -> str:
    backend = f" --backend {args.backend}" if args.backend != "onnxruntime" else ""
    return f"pytest {output.as_posix()}{backend}"


def _sizes(starter: Starter) -> str:
    return ", ".join(str(b) for b in starter.batch_sizes)


def _validated(text: str, output: Path) -> int:
    """Load the suite text the way a run will (paths relative to ``output``); return its number of cases."""
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".yaml", dir=output.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        suite = load_suite(tmp)
        check_sources(suite)
        return len(suite.cases())
    finally:
        Path(tmp).unlink(missing_ok=True)
