"""What the reports show, computed once from result records; no rendering here.

The terminal table, the HTML page, the markdown summary and the plots (harness.report) all read these modules, so a
number (a delta, a speed-up, a count, a verdict's wording) is computed in one place and every report agrees with the
others. The view reads only result records (:mod:`harness.core.results`); fields that other stages add later
(accuracy, telemetry, trials) are shown when present and skipped when absent, so an older results file still
renders. Nothing here imports matplotlib, Jinja2 or a renderer.

- :mod:`harness.view.verdicts`: the one word (and the why) a report shows for a case.
- :mod:`harness.view.cells`: table cells: units, accuracy, inputs, NaN / infinities, file-name slugs.
- :mod:`harness.view.cases`: :class:`~harness.view.cases.CaseView` and its gated :class:`~harness.view.cases.Delta`.
- :mod:`harness.view.environment`: the environment and clock facts of a run's header.
- :mod:`harness.view.report_view`: :func:`~harness.view.report_view.build_view`, the whole run's view.
- :mod:`harness.view.series`: which numbers a plot draws (grouping, finite values, baseline spread).
- :mod:`harness.view.rebase`: ``harness report --baseline``, the run judged again against another baseline.
"""
