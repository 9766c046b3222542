"""summary.md: GitHub-flavoured markdown for ``$GITHUB_STEP_SUMMARY`` and PR comments.

One headline verdict line, the counts, a table of regressions and improvements with their deltas (a regressed
case's row ends with where the time went, from its layer profile), the failures one line each (what failed, why,
and the inputs that were fed), the cases whose fp32 outputs held NaN / infinities, the environment in one line and
where the full report is. Text from the records is escaped so a model name cannot break a table or inject markup.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from harness.core.metrics import brief_label
from harness.view.attribution import report_attributions
from harness.view.cells import inputs_line
from harness.view.report_view import ReportView
from harness.view.trend_lines import WIDTH, TrendLike, sparkline, summary_trends, trend_text

MAX_ROWS = 50  # a PR comment must stay readable; the full list is in report.html

# HTML entities are decoded by GitHub in text and table cells; *, _, [ and ] would otherwise start emphasis or links.
_ESCAPES = {
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    "|": "&#124;",
    "`": "&#96;",
    "\\": "&#92;",
    "*": "&#42;",
    "_": "&#95;",
    "[": "&#91;",
    "]": "&#93;",
}


def escape(text: object) -> str:
    """Text safe in a table cell or a line of GitHub markdown: no markup, no cell break, no code span, one line.

    Escaped text is never put inside a code span, where GitHub would show the entities literally.
    """
    out = "".join(_ESCAPES.get(ch, ch) for ch in str(text))
    return " ".join(out.split())


def _icon(view: ReportView) -> str:
    if view.failing:
        return ":x:"
    if view.counts.get("ambiguous") or view.counts.get("missing"):
        return ":warning:"
    return ":white_check_mark:" if view.total else ":grey_question:"


def trend_section(view: ReportView, trends: Sequence[TrendLike]) -> list[str]:
    """``**Trends**`` and a table: per changed case, its metric, the bars of its last runs and its newest change."""
    shown = summary_trends(view, trends)
    if not shown:
        return []
    head = f"**Trends (last {WIDTH} runs in the history store):**"
    lines = [head, "", "| case | metric | trend |", "| --- | --- | --- |"]
    for trend in shown[:MAX_ROWS]:
        series = trend.series
        bars = sparkline(series.values[-WIDTH:])
        lines.append(
            f"| {escape(series.case_id)} | {escape(brief_label(series.metric))} "
            f"| `{bars}` {escape(trend_text(series, trend.changes))} |"
        )
    if len(shown) > MAX_ROWS:
        lines.append(f"| … | {len(shown) - MAX_ROWS} more in the full report | |")
    return [*lines, ""]


def run_link() -> str | None:
    """The CI run page on GitHub Actions, where the report artifact can be downloaded."""
    server, repo, run = (os.environ.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID"))
    return f"{server}/{repo}/actions/runs/{run}" if server and repo and run else None


def render_markdown(view: ReportView, report_path: str = "report.html", trends: Sequence[TrendLike] = ()) -> str:
    """The summary; ``trends`` (the cases' series in the history store, when one was given) adds a trend line
    for each case that changed (harness.view.trend_lines)."""
    suites = ", ".join(view.results.suites) or "benchmarks"
    lines = [f"### {_icon(view)} {escape(view.headline)} ({escape(suites)})", ""]
    lines.append(" · ".join(f"**{n} {label}**" if n else f"{n} {label}" for label, n in view.counts.items()))
    lines.append("")

    changed = view.with_label("regressed", "ambiguous", "missing") + view.with_label("improved")
    # a regressed case's first regressed row says where the time went (the layers' groups that explain the change)
    where_of = {a.case_id: a.where for a in report_attributions(view)[0] if a.where}
    rows = []
    for case in changed:
        deltas = [d for d in case.deltas if d.verdict in ("regressed", "improved", "ambiguous")] or case.deltas
        tail = where_of.get(case.id, "") if case.label == "regressed" else ""
        for d in deltas:
            verdict = d.verdict or case.label
            if tail and d.verdict == "regressed":
                verdict, tail = f"{verdict}; {tail}", ""
            rows.append(
                f"| {escape(case.id)} | {escape(d.label)} | {escape(d.baseline_text)} | {escape(d.current_text)} "
                f"| {'**' + d.change_text + '**' if d.verdict == 'regressed' else d.change_text} "
                f"| {d.tolerance_text} | {escape(verdict)} |"
            )
        if not deltas:
            verdict = f"{case.label}; {tail}" if tail else case.label
            rows.append(f"| {escape(case.id)} | – | – | – | – | – | {escape(verdict)} |")
    if rows:
        lines += [
            "| case | metric | baseline | current | change | tolerance | verdict |",
            "| --- | --- | ---: | ---: | ---: | ---: | --- |",
            *rows[:MAX_ROWS],
        ]
        if len(rows) > MAX_ROWS:
            lines.append(f"| … | {len(rows) - MAX_ROWS} more rows in the full report | | | | | |")
        lines.append("")

    failures = view.with_label("failed")
    if failures:
        lines.append(f"**Failed ({len(failures)}):**")
        lines.append("")
        for case in failures[:MAX_ROWS]:
            why = case.reasons[0] if case.reasons else "no message recorded"
            lines.append(f"- {escape(case.id)} ({escape(case.outcome)}): {escape(why)}")
            fed = inputs_line(case.case.inputs)
            if fed:
                lines.append(f"  - inputs: {escape(fed)}")
        if len(failures) > MAX_ROWS:
            lines.append(f"- … and {len(failures) - MAX_ROWS} more in the full report")
        lines.append("")

    undecided = [(c, d) for c in view.cases if c.label != "ambiguous" for d in c.deltas if d.not_deciding]
    if undecided:  # a delta past its tolerance that did not decide must not look like an overlooked regression
        lines.append(f"**Beyond tolerance, not deciding ({len(undecided)}):**")
        lines.append("")
        lines += [f"- {escape(case.id)}: {escape(d.not_deciding)}" for case, d in undecided[:MAX_ROWS]]
        lines.append("")

    flagged = [c for c in view.cases if c.nonfinite]
    if flagged:
        lines.append(f"**Non-finite fp32 outputs ({len(flagged)}):**")
        lines.append("")
        for case in flagged[:MAX_ROWS]:
            lines.append(f"- {escape(case.id)} ({escape(case.outcome)}): {escape('; '.join(case.nonfinite))}")
        if len(flagged) > MAX_ROWS:
            lines.append(f"- … and {len(flagged) - MAX_ROWS} more in the full report")
        lines.append("")

    lines += trend_section(view, trends)
    lines.append(f"Environment: {escape(view.environment_line())}")
    lines.append("")
    where = f"Full report: {escape(report_path)}"
    link = run_link()
    if link:
        where += f" in the artifacts of [this run]({link})"
    lines.append(where)
    return "\n".join(lines) + "\n"
