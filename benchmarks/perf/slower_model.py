"""Write a slower variant of an image model: the same network behind N identity 3x3 convolutions on its input.

Run from the repository root::

    python benchmarks/perf/slower_model.py MODEL.onnx OUT.onnx --convs 2
    python benchmarks/perf/slower_model.py --zoo light_squeezenet OUT.onnx --convs 2   # ~ +9 % on ORT CPU

The outputs are unchanged (each convolution copies its input) while every inference does more work, so a model
file replaced by the variant is a real, slower model change: copy it over the suite's model and run ``pytest
benchmarks`` against the old baselines (or use ``--ab-base``) to check that the gate catches it. Measured with ONNX
Runtime's CPU provider, one thread, on squeezenet (1 x 3 x 224 x 224): each convolution adds about 4.5 % of CPU
time (1: +3.5 %, 2: +8.8 %, 3: +13.7 %, 4: +21.5 %). The script prints the ratio it measures here.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def slower_variant(src: Path, dst: Path, convs: int) -> None:
    """Copy ``src`` to ``dst`` with ``convs`` identity 3x3 convolutions in front of its (4-D image) input."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    data = next(i for i in graph.input if i.name not in initializers)
    channels = data.type.tensor_type.shape.dim[1].dim_value
    if len(data.type.tensor_type.shape.dim) != 4 or channels < 1:
        raise SystemExit(f"{src}: input '{data.name}' is not an N x C x H x W image with a fixed channel count")
    weight = np.zeros((channels, channels, 3, 3), np.float32)
    for c in range(channels):
        weight[c, c, 1, 1] = 1.0  # identity: output == input, so accuracy is untouched
    graph.initializer.append(numpy_helper.from_array(weight, "slower_identity_w"))
    last, added = data.name, []
    for k in range(convs):
        out = f"slower_identity_{k}"
        added.append(helper.make_node("Conv", [last, "slower_identity_w"], [out], pads=[1, 1, 1, 1], name=out))
        last = out
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == data.name:
                node.input[i] = last
    original = list(graph.node)
    del graph.node[:]
    graph.node.extend(added + original)
    onnx.save(model, str(dst))


def cpu_ms_per_inference(path: Path, repeats: int = 5, iterations: int = 20) -> float:
    """Median process CPU time per inference (ONNX Runtime CPU, one thread): insensitive to a busy machine."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    feeds = {inp.name: np.random.default_rng(0).random(shape, dtype=np.float32)}
    for _ in range(5):
        session.run(None, feeds)
    values = []
    for _ in range(repeats):
        start = time.process_time_ns()
        for _ in range(iterations):
            session.run(None, feeds)
        values.append((time.process_time_ns() - start) / iterations / 1e6)
    return float(np.median(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", help="source ONNX model (or --zoo NAME)")
    parser.add_argument("output", help="where to write the slower variant")
    parser.add_argument("--zoo", help="a model shipped in the onnx wheel, e.g. light_squeezenet")
    parser.add_argument("--convs", type=int, default=2, help="identity convolutions to add (default 2, ~ +9 %%)")
    parser.add_argument("--no-measure", action="store_true", help="write the variant without timing it")
    args = parser.parse_args()
    if args.zoo:
        from harness.models.sources import zoo_dir

        src = zoo_dir() / f"light_{args.zoo.removeprefix('light_')}.onnx"
    elif args.model:
        src = Path(args.model)
    else:
        parser.error("give MODEL or --zoo NAME")
    slower_variant(src, Path(args.output), args.convs)
    print(f"wrote {args.output}: {src.name} behind {args.convs} identity convolution(s)")
    if not args.no_measure:
        base, slow = cpu_ms_per_inference(src), cpu_ms_per_inference(Path(args.output))
        print(f"CPU time per inference here: {base:.2f} ms -> {slow:.2f} ms ({slow / base - 1:+.1%})")


if __name__ == "__main__":
    main()
