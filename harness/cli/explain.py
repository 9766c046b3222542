"""``harness explain``: where the time of each case went, on the command line.

Per case: the end-to-end change of the profiled pass, the groups of layers with the largest deltas (label, baseline
ms, current ms, delta ms, % of the change, what changed), the groups after them added up, and the unattributed rest
(what the layers do not explain: launch gaps, host work). The rows are those of the report's "where the time went"
section (:mod:`harness.view.attribution`).

Without ``--baseline`` a case is explained against what its record holds: the diff the run recorded, else the profile
kept in its baseline entry. With ``--baseline`` it is diffed against that file's profile of the same case: a baseline
file or folder (``harness.baseline/*``), or another run's results.json, which is how the two TensorRT versions of an
upgrade check or the two jobs of an A/B comparison are compared.

trtexec's own files need no harness run: ``harness explain NEW.profile.json --baseline OLD.profile.json`` diffs two
engines' ``--exportProfile`` files (told from results files by their content: a JSON list of per-layer records).
Each profile's companions are found by name where not given: TREx's naming (``X.profile.json`` beside
``X.graph.json`` or ``X.layers.json``, ``X.timing.json`` or ``X.times.json``, ``X.profile.metadata.json``) and the
trtexec backend's artifact folders (``profile.json`` beside ``layer_info.json`` and ``times.json``). One trtexec
profile may also be compared with one case (``--case``) of a results.json or baseline file that kept its profile.
``--onnx MODEL`` gives the model the engines were built from: a Myelin ``ForeignNode[first...last]`` then stands for
every node between its ends, names are resolved against the real node list, and the layers of a torch.export-based
export are named by their module (:mod:`harness.attribution.scopes`), as a harness run names them.
"""

from __future__ import annotations

import argparse
import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeGuard

from harness.attribution.diff import diff_profiles
from harness.attribution.names import OnnxGraph
from harness.attribution.record import LayerProfile
from harness.attribution.scopes import module_scopes, with_modules
from harness.attribution.trt_files import (
    layer_profile,
    median_latency,
    parse_profile,
    read_layer_info,
    read_metadata,
    read_times,
)
from harness.core.errors import HarnessError
from harness.core.fsio import read_user_json
from harness.core.metrics import format_ms
from harness.core.results import CaseResult, RunResults
from harness.models.sources import load_onnx_structure
from harness.view.attribution import (
    NO_PROFILE,
    TOP_GROUPS,
    CaseAttribution,
    GroupRow,
    baseline_profiles,
    explain,
    percent,
    select_cases,
    signed_ms,
    stored_profiles,
)
from harness.view.verdicts import label_of

LABEL_WIDTH = 56  # a longer group or layer name is cut with an ellipsis; results.json and report.html keep it whole
NODES_SHOWN = 8  # ONNX nodes named per group under the table; the rest are counted

# The companions of an --exportProfile file, by the names TREx's scripts give them (X.profile.json beside
# X.graph.json, ...) and the trtexec backend's artifact folders (profile.json beside layer_info.json, times.json);
# the first that exists is taken.
PROFILE_NAME = "profile.json"
LAYER_INFO_NAMES = ("graph.json", "layers.json", "layer_info.json", "layers.txt")
TIMES_NAMES = ("timing.json", "times.json")
METADATA_NAMES = ("profile.metadata.json",)
NAMES_ONLY = "layers map to ONNX nodes through their fused names only"
# layer_profile's own note for a profile read without layer information; the side's note below says more
_NO_DETAIL = "no detailed layer information"


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "results",
        help="a results.json written by a benchmark run (or its folder), or a trtexec --exportProfile file",
    )
    parser.add_argument(
        "--baseline",
        metavar="PATH",
        help="diff against this file's layer profiles instead of the recorded ones: a baseline file or folder "
        "(baselines/KEY/SUITE.json), another run's results.json (e.g. the other TensorRT version, the other A/B job) "
        "or the other engine's trtexec --exportProfile file",
    )
    parser.add_argument("--case", metavar="ID|GLOB", help="only the case with this id, or the cases matching this glob")
    parser.add_argument(
        "--layer-info",
        metavar="FILE",
        help="trtexec --exportLayerInfo file (or the inspector's one-line text) of the profiled engine; found by "
        "name beside the profile when not given",
    )
    parser.add_argument(
        "--baseline-layer-info",
        metavar="FILE",
        help="the same for the --baseline engine's trtexec profile",
    )
    parser.add_argument(
        "--onnx",
        metavar="MODEL",
        help="the ONNX model the trtexec-profiled engines were built from: Myelin ForeignNode ranges become the "
        "nodes between their ends, and layers of a torch.export-based export are named by their PyTorch module",
    )
    parser.add_argument(
        "--top", type=_positive, default=TOP_GROUPS, metavar="N", help=f"groups shown per case (default {TOP_GROUPS})"
    )
    parser.add_argument(
        "--by-module",
        type=_positive,
        metavar="DEPTH",
        help="also add the groups up by the PyTorch module their layers come from, its path cut to DEPTH parts "
        "(e.g. 4 for encoder.layer.0.intermediate); for models exported from torch, whose layers carry modules",
    )


def run(args: argparse.Namespace) -> int:
    path, data = _read_current(Path(args.results))
    baseline = _trtexec_baseline(args)
    if args.onnx and baseline is None and not is_trtexec_profile(data):
        raise HarnessError(
            f"--onnx applies to trtexec profiles; {path} is a results file, whose run named its layers already"
        )
    model = ModelNames.read(Path(args.onnx)) if args.onnx else None
    if baseline is not None and model is not None:
        baseline = replace(baseline, model=model)
    if is_trtexec_profile(data):
        return _explain_trtexec(args, TrtexecFiles.beside(path, data, args.layer_info, model), baseline)
    if args.layer_info:
        raise HarnessError(
            f"--layer-info applies to a trtexec profile; {path} is a results file, whose cases keep their layers"
        )
    results = RunResults.from_dict(data, str(path))
    if baseline is not None:
        return _results_against_trtexec(args, path, results, baseline)
    cases = select_cases(results, args.case, str(path))
    baseline_of: Callable[[CaseResult], LayerProfile | None] | None = None
    source = ""
    if args.baseline:
        baseline_of, source = baseline_profiles(Path(args.baseline), results)
    explained: list[tuple[CaseResult, CaseAttribution]] = []
    unprofiled = []
    for case in cases:
        attribution = _attribution(case, baseline_of, source)
        if attribution is None:
            unprofiled.append(case.id)
        else:
            explained.append((case, attribution))
    if not explained:
        which = f"case '{cases[0].id}'" if len(cases) == 1 else f"any of its {len(cases)} selected cases"
        raise HarnessError(f"{path}: no layer profile for {which}; rerun without --no-profile")
    if args.baseline and all(a.diff is None for _, a in explained):
        raise HarnessError(
            f"--baseline {args.baseline}: no layer profile for the cases explained; record baselines with "
            "--update-baselines, or pass a results.json of a run that profiled them"
        )
    for index, (case, attribution) in enumerate(explained):
        if index:
            print()
        for line in case_lines(attribution, label_of(case), args.top, args.by_module):
            print(line)
    if unprofiled:
        shown = ", ".join(unprofiled[:8]) + (f" and {len(unprofiled) - 8} more" if len(unprofiled) > 8 else "")
        print(f"\n{NO_PROFILE}: {shown}")
    return 0


def _attribution(
    case: CaseResult, baseline_of: Callable[[CaseResult], LayerProfile | None] | None, source: str
) -> CaseAttribution | None:
    if baseline_of is None:
        return explain(case)
    baseline = baseline_of(case)
    if baseline is None:
        attribution = explain(case, rebased=True)
        if attribution is None:
            return None
        note = f"nothing to compare with: {source} holds no layer profile of this case"
        return CaseAttribution(case.id, attribution.model, attribution.profile, None, note=note)
    return explain(case, baseline, against=source)


def case_lines(attribution: CaseAttribution, label: str, top: int, by_module: int | None = None) -> list[str]:
    """The lines printed for one case: a head line, the groups table (or this run's slowest layers), with
    ``by_module`` the same added up by module, and the tail."""
    diff = attribution.diff
    head = f"{attribution.case_id} ({label})" if label else attribution.case_id
    if diff is None:
        lines = [f"{head}: {attribution.note}", "  this run's slowest layers:"]
        rows: list[tuple[str, ...]] = [
            (_cut(layer.label), layer.kind, format_ms(layer.time_ms), percent(attribution.profile.share(layer)))
            for layer in attribution.profile.layers[:top]
        ]
        return lines + _table(("layer", "type", "ms", "% of layers"), rows, numeric=(2, 3))
    change = attribution.change
    relative = f", {change:+.1%}" if change is not None else ""
    lines = [
        f"{head}: end to end {format_ms(diff.baseline_ms)} -> {format_ms(diff.current_ms)} ms "
        f"({signed_ms(diff.delta_ms)} ms{relative}) against {attribution.against}"
    ]
    groups: list[GroupRow] = attribution.group_rows(top)
    rest = [row for row in (attribution.others(top), attribution.unattributed()) if row is not None]
    rows = [_group_cells(row) for row in groups + rest]
    lines += _table(("group", "baseline ms", "current ms", "delta ms", "% of change", "change"), rows, (1, 2, 3, 4))
    lines += _node_lines(groups)
    if by_module:
        modules = [_group_cells(row)[:5] for row in attribution.module_rows(by_module, top)]
        header = (f"module (first {by_module} parts)", "baseline ms", "current ms", "delta ms", "% of change")
        lines += _table(header, modules, (1, 2, 3, 4))
    lines.append(f"  {attribution.where or 'where: no group changed beyond its noise'}")
    return lines


def _group_cells(row: GroupRow) -> tuple[str, ...]:
    change = "" if row.change == "unattributed" else row.change
    if change and not row.above_noise:
        change += " (within noise)"
    return (
        _cut(row.label),
        format_ms(row.baseline_ms),
        format_ms(row.current_ms),
        signed_ms(row.delta_ms),
        percent(row.share),
        change,
    )


def _node_lines(groups: Sequence[GroupRow]) -> list[str]:
    """The ONNX nodes of each group above the noise whose label does not name them (a Myelin layer, a
    ``ForeignNode``), so that a layer name an engine made up still points at the model."""
    lines = []
    for row in groups:
        if not row.above_noise or not row.nodes or all(node in row.label for node in row.nodes):
            continue
        shown = ", ".join(row.nodes[:NODES_SHOWN])
        more = f" and {len(row.nodes) - NODES_SHOWN} more" if len(row.nodes) > NODES_SHOWN else ""
        lines.append(f"  {_cut(row.label)}: ONNX nodes {shown}{more}")
    return lines


def _cut(text: str) -> str:
    return text if len(text) <= LABEL_WIDTH else text[: LABEL_WIDTH - 1] + "…"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int]) -> list[str]:
    """Columns padded to their widest cell, numbers right-aligned, two spaces of indent."""
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        padded = [cell.rjust(width) if i in numeric else cell.ljust(width) for i, (cell, width) in pairs]
        return ("  " + "  ".join(padded)).rstrip()

    return [line(header), *(line(r) for r in rows)]


# -- trtexec's own files -----------------------------------------------------------------------------------------


def is_trtexec_profile(data: Any) -> TypeGuard[list[Any]]:
    """True for the content of a trtexec ``--exportProfile`` file: a JSON list of per-layer records, after a
    ``{"count": N}`` where trtexec wrote one (a results or baseline file is an object)."""
    if not isinstance(data, list) or not data or not isinstance(data[0], dict):
        return False
    return "count" in data[0] or {"name", "averageMs"} <= data[0].keys()


def _refuse_companion(data: Any, label: str) -> None:
    """A layer-information or times file passed where the profile belongs: say which file to pass instead."""
    if isinstance(data, dict) and "Layers" in data:
        raise HarnessError(
            f"{label}: this is trtexec --exportLayerInfo output; pass the --exportProfile file (the layer "
            "information beside it is found by name, or name it with --layer-info / --baseline-layer-info)"
        )
    if isinstance(data, list) and data and isinstance(data[0], dict) and "latencyMs" in data[0]:
        raise HarnessError(
            f"{label}: this is trtexec --exportTimes output; pass the --exportProfile file (the times beside it "
            "are found by name)"
        )


def _read_current(path: Path) -> tuple[Path, Any]:
    """The file the positional argument names, and its JSON: a folder means its results.json, else the trtexec
    profile it holds."""
    if path.is_dir():
        results = path / "results.json"
        path = results if results.exists() else _profile_in(path) or results
    data = read_user_json(
        path,
        str(path),
        "a results.json or a trtexec --exportProfile file",
        "no such file; pass a results.json written by a run (or its folder) or a trtexec --exportProfile file",
    )
    _refuse_companion(data, str(path))
    return path, data


def _trtexec_baseline(args: argparse.Namespace) -> TrtexecFiles | None:
    """The ``--baseline`` engine's trtexec files when ``--baseline`` names a trtexec profile (or a folder holding
    one); None for a results or baseline file or folder, which the view reads."""
    if not args.baseline:
        if args.baseline_layer_info:
            raise HarnessError("--baseline-layer-info belongs to a --baseline trtexec profile; pass --baseline too")
        return None
    path = Path(args.baseline)
    if path.is_dir():
        path = _profile_in(path) or path
    data = None if path.is_dir() else read_user_json(path, f"--baseline {path}", "a JSON file", "no such file")
    if is_trtexec_profile(data):
        return TrtexecFiles.beside(path, data, args.baseline_layer_info)
    _refuse_companion(data, f"--baseline {path}")
    if args.baseline_layer_info:
        raise HarnessError(
            f"--baseline-layer-info applies to a trtexec profile; --baseline {path} is a results or baseline file, "
            "whose cases keep their layers"
        )
    return None


def _profile_in(folder: Path) -> Path | None:
    """The trtexec profile a folder stands for: its ``profile.json`` (an artifact folder), else its one
    ``X.profile.json``."""
    if (folder / PROFILE_NAME).is_file():
        return folder / PROFILE_NAME
    found = sorted(folder.glob(f"*.{PROFILE_NAME}"))
    return found[0] if len(found) == 1 else None


def _companion_prefix(name: str) -> str | None:
    """What a companion's name starts with: ``X.`` for TREx's ``X.profile.json``, nothing for the artifact
    folder's ``profile.json``; None for another name (no companion is looked for)."""
    if name == PROFILE_NAME:
        return ""
    suffix = "." + PROFILE_NAME
    return name[: -len(PROFILE_NAME)] if name.endswith(suffix) and len(name) > len(suffix) else None


@dataclass(frozen=True)
class ModelNames:
    """What ``--onnx`` tells a trtexec profile: the model's node list (:class:`OnnxGraph`) and its nodes' modules."""

    path: Path
    graph: OnnxGraph
    scopes: dict[str, str]

    @classmethod
    def read(cls, path: Path) -> ModelNames:
        model = load_onnx_structure(path)
        return cls(path, OnnxGraph.from_model(model), module_scopes(model))


@dataclass(frozen=True)
class TrtexecFiles:
    """One engine's trtexec exports: the ``--exportProfile`` file and the companions given or found beside it."""

    profile: Path
    data: list[Any]
    layer_info: Path | None = None
    times: Path | None = None
    metadata: Path | None = None  # a profiling *.metadata.json, read for the end-to-end median where no times are
    found: tuple[Path, ...] = ()  # the companions found by their names rather than given
    model: ModelNames | None = None  # --onnx: the model the engine was built from

    @classmethod
    def beside(
        cls, profile: Path, data: list[Any], layer_info: str | None, model: ModelNames | None = None
    ) -> TrtexecFiles:
        prefix = _companion_prefix(profile.name)

        def first(names: Sequence[str]) -> Path | None:
            if prefix is None:
                return None
            return next((p for p in (profile.with_name(prefix + n) for n in names) if p.is_file()), None)

        info = Path(layer_info) if layer_info else first(LAYER_INFO_NAMES)
        times = first(TIMES_NAMES)
        metadata = None if times else first(METADATA_NAMES)
        found = tuple(p for p in (None if layer_info else info, times, metadata) if p is not None)
        return cls(profile, data, info, times, metadata, found, model)

    @property
    def name(self) -> str:
        """The engine's name: ``X`` of ``X.profile.json``, the case folder of an artifact folder's profile.json."""
        prefix = _companion_prefix(self.profile.name)
        if prefix:
            return prefix[:-1]
        if prefix == "":
            folder = self.profile.resolve().parent
            return (folder.parent if folder.name == "profile" else folder).name or self.profile.name
        return self.profile.stem

    @property
    def end_to_end_from(self) -> str:
        """What the end-to-end median is taken from, in words ('' where the layers' total stands for it)."""
        if self.times:
            return "per-inference times"
        return "a profiling summary" if self.metadata else ""

    def describe(self) -> str:
        """``P, layer info L, times T``: the files read, for the line that says so."""
        parts = [str(self.profile)]
        parts += [f"layer info {self.layer_info}"] if self.layer_info else []
        parts += [f"times {self.times}"] if self.times else []
        parts += [f"end to end from {self.metadata}"] if self.metadata else []
        parts += [f"model {self.model.path}"] if self.model else []
        return ", ".join(parts)

    def read(self) -> LayerProfile:
        """The profile of the files, source ``trtexec``; a companion that cannot be read is named in the error."""
        rows = self.data if "count" in self.data[0] else [{"count": 0}, *self.data]
        count, layers = parse_profile(rows, str(self.profile))
        info = self._companion(read_layer_info, self.layer_info)
        latencies = self._companion(read_times, self.times) or []
        metadata = self._companion(read_metadata, self.metadata)
        end_to_end = median_latency(metadata) if metadata else None
        graph = self.model.graph if self.model else None
        profile = layer_profile(
            layers, info, iterations=count, graph=graph, latencies_ms=latencies, end_to_end_ms=end_to_end
        )
        return with_modules(profile, self.model.scopes) if self.model else profile

    def notes(self, profile: LayerProfile) -> list[str]:
        """What the profile could not say; without layer information, that nodes come from the layer names."""
        if self.layer_info is not None:  # names only below detailed verbosity: the nodes come from them too
            return [f"{note}; {NAMES_ONLY}" if note.startswith(_NO_DETAIL) else note for note in profile.notes]
        missing = (
            f"{self.profile}: no layer information (trtexec --exportLayerInfo; none found beside it by name, "
            f"pass it with --layer-info / --baseline-layer-info): {NAMES_ONLY}"
        )
        return [missing, *(note for note in profile.notes if not note.startswith(_NO_DETAIL))]

    def _companion(self, reader: Callable[[Path], Any], path: Path | None) -> Any:
        if path is None:
            return None
        try:
            return reader(path)
        except HarnessError as exc:
            if path in self.found:
                raise HarnessError(f"{exc} (found by its name beside {self.profile})") from None
            raise


def _explain_trtexec(args: argparse.Namespace, current: TrtexecFiles, baseline: TrtexecFiles | None) -> int:
    """A trtexec profile against the other engine's (``--baseline``), or against one case's stored profile."""
    if not args.baseline:
        raise HarnessError(
            f"{current.profile}: --baseline is required for a trtexec profile: pass the other engine's "
            "--exportProfile file (or a results.json or baseline file and --case)"
        )
    now = current.read()
    notes = current.notes(now)
    if baseline is not None:
        if args.case:
            raise HarnessError(
                f"--case picks a case of a results or baseline file; {current.profile} and {baseline.profile} "
                "are trtexec profiles"
            )
        before = baseline.read()
        against, files = str(baseline.profile), f"files: {current.describe()}; baseline {baseline.describe()}"
        notes = _merged(notes, baseline.notes(before))
        if current.end_to_end_from != baseline.end_to_end_from and before.end_to_end_ms and now.end_to_end_ms:
            # a summary's median and the median of exported times are of different runs: compare layers only
            before, now = replace(before, end_to_end_ms=None), replace(now, end_to_end_ms=None)
            notes.append(
                f"end to end from the layers' totals: the current's is from {current.end_to_end_from}, the "
                f"baseline's from {baseline.end_to_end_from}, not the same measure"
            )
            return _print_trtexec(args, current, files, notes, before, now, against)
    else:
        before, against = _stored_case_profile(args, current.profile)
        files = f"files: {current.describe()}; baseline {against}"
    return _print_trtexec(args, current, files, notes + _end_to_end_notes(before, now), before, now, against)


def _print_trtexec(
    args: argparse.Namespace,
    current: TrtexecFiles,
    files: str,
    notes: list[str],
    before: LayerProfile,
    now: LayerProfile,
    against: str,
) -> int:
    attribution = CaseAttribution(current.name, current.name, now, diff_profiles(before, now), against=against)
    for line in [files, *(f"note: {note}" for note in notes), *case_lines(attribution, "", args.top, args.by_module)]:
        print(line)
    return 0


def _results_against_trtexec(args: argparse.Namespace, path: Path, results: RunResults, baseline: TrtexecFiles) -> int:
    """One case of a results file against an engine's trtexec profile (``--baseline``)."""
    cases = [case for case in select_cases(results, args.case, str(path)) if case.profile]
    if not cases:
        raise HarnessError(f"{path}: no layer profile for the cases selected; rerun without --no-profile")
    if len(cases) > 1:
        raise HarnessError(
            f"--baseline {baseline.profile} is one engine's trtexec profile: pick the one case of {path} to compare "
            f"with it with --case ({_listed([case.id for case in cases])})"
        )
    case = cases[0]
    before = baseline.read()
    attribution = explain(case, before, against=str(baseline.profile))
    if attribution is None:  # the case was chosen for its profile
        raise HarnessError(f"{path}: no layer profile for case '{case.id}'; rerun without --no-profile")
    notes = baseline.notes(before) + _end_to_end_notes(before, attribution.profile)
    lines = [f"files: {path} case '{case.id}'; baseline {baseline.describe()}", *(f"note: {n}" for n in notes)]
    for line in lines + case_lines(attribution, label_of(case), args.top, args.by_module):
        print(line)
    return 0


def _stored_case_profile(args: argparse.Namespace, profile: Path) -> tuple[LayerProfile, str]:
    """The one case's profile (``--case``) that a results.json or baseline file given as ``--baseline`` keeps."""
    path = Path(args.baseline)
    if path.is_dir() and not any(path.glob("*.json")):
        raise HarnessError(
            f"--baseline {path}: this folder holds no trtexec profile (profile.json, one X.profile.json) and no "
            "baseline file; pass the other engine's --exportProfile file, or a baseline file and --case"
        )
    stored, description = stored_profiles(path, RunResults(environment={}, cases=[]))
    ids = sorted({case_id for _suite, case_id in stored})
    if not ids:
        raise HarnessError(
            f"--baseline {path}: no case has a layer profile to compare with the trtexec profile {profile}; record "
            "baselines with --update-baselines, or pass a results.json of a run that profiled the case"
        )
    pattern = args.case
    chosen = [key for key in stored if pattern is None or key[1] == pattern]
    if pattern is not None and not chosen:
        chosen = [key for key in stored if fnmatch.fnmatchcase(key[1], pattern)]
        if not chosen:
            raise HarnessError(
                f"--case {pattern}: no case of {description} with a layer profile has this id or matches it; "
                f"cases with one: {_listed(ids)}"
            )
    if len(chosen) > 1:
        raise HarnessError(
            f"--baseline {path}: {len(chosen)} cases have a layer profile; pick the one to compare with the trtexec "
            f"profile {profile} with --case ({_listed(sorted(key[1] for key in chosen))})"
        )
    suite, case_id = chosen[0]
    where = f"--baseline {path}: case '{case_id}': profile"
    return LayerProfile.from_dict(stored[(suite, case_id)], where), f"{description} case '{case_id}'"


def _end_to_end_notes(baseline: LayerProfile, current: LayerProfile) -> list[str]:
    """Where the end-to-end change comes from when not from both sides' per-inference times."""
    sides = [side for side, p in (("baseline", baseline), ("current", current)) if p.end_to_end_ms is not None]
    if len(sides) == 2:
        return []
    why = f"only the {sides[0]} has per-inference times" if sides else "no per-inference times (--exportTimes)"
    return [f"end to end from the layers' totals ({why}): nothing is left unattributed"]


def _merged(current: list[str], baseline: list[str]) -> list[str]:
    """Both sides' notes, a note of both once, one side's named by its side."""
    both = [note for note in current if note in baseline]
    return (
        both
        + [f"current: {note}" for note in current if note not in both]
        + [f"baseline: {note}" for note in baseline if note not in both]
    )


def _listed(ids: Sequence[str]) -> str:
    return ", ".join(ids[:8]) + (f" and {len(ids) - 8} more" if len(ids) > 8 else "")
