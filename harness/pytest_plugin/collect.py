"""pytest collects suite files directly: ``pytest my_suite.yaml``, ``pytest benchmarks/``, ``pytest --suite PATH``.

This follows pytest's own recipe for tests written in YAML ("Working with non-python tests" in the pytest docs): a
``pytest_collect_file`` hook returns a :class:`SuiteFile` (a ``pytest.File``) whose ``collect`` yields one
:class:`CaseItem` per case of the suite's matrix. An item is named by its case id, so its node id reads
``suites/zoo.yaml::resnet50-fp16-b8`` and ``-k resnet50-fp16`` selects it; every other part of the harness (the
interleaved measuring pass, the gate, results.json, reports, shards, xdist workers) finds its case with
:func:`case_of`, as it finds the case of a ``test_case[...]`` item.

Which YAML files are suites:

- a file named on the command line always is, so a mistake in it is reported rather than ignored;
- a file met while pytest walks a folder is one when its name matches the ini option ``harness_suite_files``
  (default ``*.yaml *.yml``; a pattern with a ``/`` matches the path below the rootdir) and it has top-level
  ``suite:`` and ``models:`` keys, which leaves workflow files, ``mkdocs.yml`` and other configuration alone;
- ``--suite PATH`` names the suites to run: the folder walk then collects no suite of its own.

A Python bench module (``def test_case(harness_case, harness_check)``, such as benchmarks/test_benchmarks.py) keeps
working: its ``test_case[<case id>]`` items run the ``--suite`` / ``harness_suites`` suites as before, and a suite
that both collect runs once, as the module's item.

PYTEST_DONT_REWRITE: the package imports this module before pytest registers it as a plugin (``pytest_plugins``);
it holds no assertion to rewrite, and the marker keeps pytest from warning that it cannot.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.core.errors import HarnessError, OutputError
from harness.models.sources import check_sources
from harness.pytest_plugin.state import session_of, state_of
from harness.run.session import HarnessSession
from harness.suite.load import load_suite
from harness.suite.schema import Case

SUITE_SUFFIXES = (".yaml", ".yml")
DEFAULT_PATTERNS = ("*.yaml", "*.yml")
HINT = "no harness suite found: run `harness init model.onnx` or `pytest path/to/suite.yaml`"
# A suite starts its top level with these keys (harness.suite.schema); checked on the text so a large YAML file that is
# not a
# suite costs no parse.
_SUITE_KEY = re.compile(r"^suite\s*:", re.MULTILINE)
_MODELS_KEY = re.compile(r"^models\s*:", re.MULTILINE)
_SNIFF_BYTES = 1 << 20  # a suite file is a few kilobytes; larger YAML found in a folder walk is not read


def case_of(item: pytest.Item) -> Case | None:
    """The benchmark case an item runs: a :class:`CaseItem`'s, or the ``harness_case`` parameter of a
    ``test_case[...]`` item of a Python bench module; None for any other test."""
    if isinstance(item, CaseItem):
        return item.case
    callspec = getattr(item, "callspec", None)
    case = callspec.params.get("harness_case") if callspec is not None else None
    return case if isinstance(case, Case) else None


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "harness_suite_files",
        type="args",
        default=list(DEFAULT_PATTERNS),
        help="glob patterns of the YAML files collected as harness suites when pytest walks a folder (only files "
        "with top-level 'suite:' and 'models:' keys; a pattern with '/' matches the path below the rootdir); "
        "default: *.yaml *.yml",
    )


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> SuiteFile | None:
    if file_path.suffix not in SUITE_SUFFIXES:
        return None
    if not parent.session.isinitpath(file_path):
        config = parent.config
        if config.getoption("suite", None) or not _matches(file_path, config) or not looks_like_suite(file_path):
            return None
    suite_file: SuiteFile = SuiteFile.from_parent(parent, path=file_path)
    return suite_file


def _matches(path: Path, config: pytest.Config) -> bool:
    """The ini option ``harness_suite_files``, matched like pytest's ``python_files``: on the file name, or on the
    path below the rootdir when the pattern holds a ``/``."""
    patterns: list[str] = config.getini("harness_suite_files")
    try:
        relative = path.relative_to(config.rootpath).as_posix()
    except ValueError:
        relative = path.as_posix()
    return any(fnmatch.fnmatch(relative if "/" in p else path.name, p) for p in patterns)


def looks_like_suite(path: Path) -> bool:
    """Whether a YAML file has the top-level keys of a suite (``suite:`` and ``models:``)."""
    try:
        if path.stat().st_size > _SNIFF_BYTES:
            return False
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return False
    return bool(_SUITE_KEY.search(text) and _MODELS_KEY.search(text))


class SuiteFile(pytest.File):
    """A suite YAML file: its items are the cases of its matrix, in the suite's own stable order."""

    def collect(self) -> list[CaseItem]:
        try:
            suite = load_suite(self.path)
            check_sources(suite)
        except HarnessError as exc:  # reported as one line with the others before anything runs
            state_of(self.config).suite_errors.append(str(exc))
            return []
        return [CaseItem.from_parent(self, name=case.id, case=case) for case in suite.cases()]


class CaseItem(pytest.Item):
    """One case of a suite: runs it through the session's harness and turns its verdict into the test outcome."""

    def __init__(self, *, case: Case, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case

    def runtest(self) -> None:
        check_case(session_of(self.config), self.case)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{self.case.suite.name}: {self.case.id}"


def check_case(harness_session: HarnessSession, case: Case) -> None:
    """Run a case and turn its result into the test outcome: fail on regression or error, skip with the reason."""
    try:
        result = harness_session.run_case(case)
    except OutputError as exc:
        # The disk or the folder refused a write: every later case would fail the same way. What was finished
        # is on disk (results.json is rewritten atomically after each case); stop with the one line.
        pytest.exit(f"harness: {exc}", returncode=pytest.ExitCode.INTERRUPTED)
    for warning in result.warnings:
        print(f"warning: {case.id}: {warning}")
    if result.status == "skipped":
        pytest.skip(result.message)
    if result.status in ("failed", "error"):
        pytest.fail(result.message, pytrace=False)
    if result.message:
        print(result.message)


@pytest.hookimpl(tryfirst=True)  # before -k, -m and --shard choose among the items
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse suite files that could not be loaded; add the ``--suite`` files when no bench module runs them; run
    every suite once."""
    state = state_of(config)
    bench_module = any("harness_case" in getattr(item, "fixturenames", ()) for item in items)
    items[:] = [item for item in items if not _is_empty_bench_item(item)]
    if config.getoption("suite", None) and not bench_module:
        collected = {item.case.suite.path for item in items if isinstance(item, CaseItem)}
        items.extend(_suite_option_items(session, config, skip=collected))
    if state.suite_errors:
        raise pytest.UsageError(*dict.fromkeys(state.suite_errors))
    items[:], twice = _each_suite_once(items)
    if twice:  # counted by the terminal as collected: say where they went
        config.hook.pytest_deselected(items=twice)
    state.nothing_collected = not items and not session.testsfailed


def _is_empty_bench_item(item: pytest.Item) -> bool:
    """A bench module's ``test_case`` when no suite was selected for it: pytest's placeholder for an empty
    parametrisation, dropped so that suites collected directly run alone."""
    return "harness_case" in getattr(item, "fixturenames", ()) and case_of(item) is None


def _suite_option_items(session: pytest.Session, config: pytest.Config, skip: set[Path]) -> Iterator[pytest.Item]:
    """The cases of the ``--suite`` files (globs allowed) but those in ``skip``, collected the way pytest collects a
    file argument."""
    for pattern in config.getoption("suite"):
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not matches or not all(os.path.isfile(m) for m in matches):
            raise pytest.UsageError(f"--suite {pattern}: no suite file matches; check the path")
        for match in matches:
            path = Path(match).resolve()
            if path in skip:
                continue
            skip.add(path)
            yield from session.genitems(SuiteFile.from_parent(session, path=path, nodeid=_node_id(path, config)))


def _node_id(path: Path, config: pytest.Config) -> str:
    try:
        return path.relative_to(config.rootpath).as_posix()
    except ValueError:
        return Path(os.path.relpath(path, config.rootpath)).as_posix()


def _each_suite_once(items: list[pytest.Item]) -> tuple[list[pytest.Item], list[pytest.Item]]:
    """(items to run, items dropped): a suite's direct items go when a bench module runs the same suite file, and a
    case collected twice (a folder and a file in it, with --keep-duplicates); one case id from two suite files is
    refused, since results and durations are keyed by case id."""
    by_module = {case.suite.path for item in items if (case := case_of(item)) and not isinstance(item, CaseItem)}
    owner: dict[str, Path] = {}
    seen: set[tuple[Path, str]] = set()
    out: list[pytest.Item] = []
    twice: list[pytest.Item] = []
    for item in items:
        case = case_of(item)
        if case is not None and isinstance(item, CaseItem):
            if case.suite.path in by_module or (case.suite.path, case.id) in seen:
                twice.append(item)
                continue
            seen.add((case.suite.path, case.id))
        if case is not None and owner.setdefault(case.id, case.suite.path) != case.suite.path:
            raise pytest.UsageError(
                f"{case.suite.path}: case '{case.id}' also comes from {owner[case.id]}; "
                "rename the model in one of the suites, or run the two in separate pytest sessions"
            )
        out.append(item)
    return out, twice


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Plain ``pytest`` where nothing at all was collected: say how to get a suite, instead of a bare
    ``collected 0 items``."""
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and state_of(config).nothing_collected:
        terminalreporter.write_line(HINT, yellow=True)
