"""harness.view: what the reports show, computed without any renderer."""

from __future__ import annotations

import subprocess
import sys


def test_the_view_imports_no_renderer_nor_matplotlib_nor_jinja2():
    """Every module of harness.view loads without harness.report, matplotlib or Jinja2: the view is computed once
    for every renderer, and a renderer's heavy libraries stay out of it."""
    code = (
        "import importlib, pkgutil, sys\n"
        "import harness.view\n"
        "names = [m.name for m in pkgutil.iter_modules(harness.view.__path__, 'harness.view.')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "print(len(names))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'jinja2')"
        " or m == 'harness.report' or m.startswith('harness.report.')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    count, loaded = proc.stdout.splitlines()
    assert int(count) >= 7  # verdicts, cells, cases, environment, report_view, series, rebase
    assert loaded == "[]"
