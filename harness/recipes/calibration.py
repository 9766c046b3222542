"""Calibration data for int8 / fp8 recipes: real samples from files, or generated ones with a warning.

A suite points at real samples with ``calibration: {data: PATH, samples: N, method: minmax}``. PATH is relative to
the suite file and is either

- one ``.npz`` file whose arrays are named after the model inputs, samples along the first axis
  (``[N, 3, 224, 224]`` for an input ``[batch, 3, 224, 224]``; a single sample may omit that axis), or
- a folder of ``.npz`` files (each one sample set, arrays named after the inputs, read in name order) or of
  ``<input name>.npy`` files (samples along the first axis; ``/`` in an input name is written ``_``).

Without ``data`` the samples are generated from the model signature with a seed distinct from the benchmark inputs,
and the run carries a warning that int8 accuracy is then only indicative (real activations have other ranges).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.core.errors import HarnessError


@dataclass(frozen=True)
class CalibrationData:
    """Samples per input name, each array ``[N, ...]`` with N samples along the batch axis."""

    samples: dict[str, np.ndarray]
    source: str  # "generated" or the path read
    sha256: str  # of the sample bytes, part of the recipe cache key
    warnings: tuple[str, ...] = field(default=())

    @property
    def count(self) -> int:
        return min((len(v) for v in self.samples.values()), default=0)

    def batches(self, batch: int = 1) -> list[dict[str, np.ndarray]]:
        """Feed dicts of ``batch`` samples each, the form ONNX Runtime's calibrators read: batch 1 for a model with a
        dynamic batch axis, the exported batch for one pinned to it (fewer samples than that are repeated to fill
        one batch; a remainder that does not fill a batch is left out)."""
        count = self.count
        if count == 0:
            return []
        samples = {k: v[:count] for k, v in self.samples.items()}
        if count < batch:
            samples = {k: np.resize(v, (batch, *v.shape[1:])) for k, v in samples.items()}
            count = batch
        return [{k: v[i : i + batch] for k, v in samples.items()} for i in range(0, count - batch + 1, batch)]


def digest(samples: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(samples):
        array = np.ascontiguousarray(samples[name])
        h.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        h.update(array.tobytes())
    return h.hexdigest()


def load_calibration(
    path: Path, inputs: dict[str, tuple[int | str | None, ...]], samples: int, where: str = "calibration.data"
) -> CalibrationData:
    """Read real samples for ``inputs`` (name -> shape from the model); keep the first ``samples``."""
    if not path.exists():
        raise HarnessError(f"{where}: {path} does not exist; point it at an .npz file or a folder of .npy/.npz files")
    arrays: dict[str, list[np.ndarray]] = {name: [] for name in inputs}
    if path.is_file():
        if path.suffix != ".npz":
            raise HarnessError(f"{where}: {path} is not an .npz file; save samples with numpy.savez")
        _add_npz(path, inputs, arrays, where)
    else:
        npz = sorted(path.glob("*.npz"))
        npy = sorted(path.glob("*.npy"))
        if not npz and not npy:
            raise HarnessError(f"{where}: the folder {path} holds no .npz or .npy files")
        for file in npz:
            _add_npz(file, inputs, arrays, where)
        for name in inputs:
            file = path / f"{name.replace('/', '_')}.npy"
            if file.is_file():
                arrays[name].append(_as_samples(np.load(file, allow_pickle=False), inputs[name], name, file, where))
    missing = [name for name, parts in arrays.items() if not parts]
    if missing:
        raise HarnessError(f"{where}: {path} has no samples for the model inputs {missing}; name the arrays after them")
    stacked = {name: np.concatenate(parts)[:samples] for name, parts in arrays.items()}
    counts = {name: len(v) for name, v in stacked.items()}
    if len(set(counts.values())) != 1:
        raise HarnessError(f"{where}: {path} holds different sample counts per input {counts}; give each the same")
    warnings: tuple[str, ...] = ()
    found = next(iter(counts.values()))
    if found < samples:
        warnings = (f"calibration: {path} holds {found} samples, fewer than the {samples} asked for",)
    return CalibrationData(stacked, str(path), digest(stacked), warnings)


def generated_calibration(samples: dict[str, np.ndarray]) -> CalibrationData:
    return CalibrationData(
        samples,
        "generated",
        digest(samples),
        (
            "calibration: no calibration data given, so generated random inputs were used; int8/fp8 accuracy "
            "numbers are then only indicative (set calibration.data to real samples)",
        ),
    )


def _add_npz(file: Path, inputs: dict[str, tuple[int | str | None, ...]], arrays: dict[str, list], where: str) -> None:
    try:
        with np.load(file, allow_pickle=False) as data:
            for name in inputs:
                key = name if name in data.files else name.replace("/", "_")
                if key in data.files:
                    arrays[name].append(_as_samples(data[key], inputs[name], name, file, where))
    except (OSError, ValueError) as exc:
        raise HarnessError(f"{where}: {file} is not a readable .npz file ({exc})") from None


def _as_samples(
    array: np.ndarray, shape: tuple[int | str | None, ...], name: str, file: Path, where: str
) -> np.ndarray:
    """``[N, ...]`` samples of batch 1 from an array with or without the samples axis."""
    rank = len(shape)
    if array.ndim == rank - 1:
        array = array[None]
    if array.ndim != rank:
        raise HarnessError(
            f"{where}: {file}: array '{name}' has shape {array.shape}; expected [samples, ...] matching the input "
            f"shape {list(shape)}"
        )
    for i, dim in enumerate(shape[1:], start=1):
        if isinstance(dim, int) and array.shape[i] != dim:
            raise HarnessError(
                f"{where}: {file}: array '{name}' has shape {array.shape} but the input is {list(shape)}"
            )
    return array
