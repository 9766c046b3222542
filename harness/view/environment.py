"""The environment of a run as the reports show it: one line (markdown, headline), label / value rows (the HTML
header) and the clock and throttling notes gathered from GPU telemetry and the cases' measurements.
"""

from __future__ import annotations

from typing import Any

from harness.view.cases import CaseView


def environment_line(env: dict[str, Any]) -> str:
    """The environment in one line: backend, hardware, commit, date."""
    backend = env.get("backend") or {}
    cpu = env.get("cpu") or {}
    gpus = env.get("gpus") or []
    hardware = gpus[0].get("name", "GPU") if env.get("uses_gpu") and gpus else f"{cpu.get('model', 'unknown CPU')}"
    if not (env.get("uses_gpu") and gpus) and cpu.get("count"):
        hardware += f" ({cpu['count']} CPUs)"
    elif gpus and env.get("uses_gpu"):
        hardware += f", driver {gpus[0].get('driver', '?')}"
    commit = env.get("commit") or {}
    parts = [f"{backend.get('name', '?')} {backend.get('version', '')}".strip(), hardware]
    if commit.get("id"):
        parts.append(
            f"commit {str(commit['id'])[:10]}{' (dirty)' if commit.get('dirty') else ''}"
            + (f" on {commit['branch']}" if commit.get("branch") else "")
        )
    if env.get("date"):
        parts.append(str(env["date"]))
    if env.get("key"):
        parts.append(f"key {env['key']}")
    return " · ".join(parts)


def environment_rows(env: dict[str, Any], cases: list[CaseView] | None = None) -> list[tuple[str, str]]:
    """Label / value pairs for the report header; only facts that are present."""
    rows: list[tuple[str, str]] = []
    backend = env.get("backend") or {}
    if backend:
        settings = backend.get("settings") or {}
        text = f"{backend.get('name', '?')} {backend.get('version', '')}".strip()
        if settings:
            text += " (" + ", ".join(f"{k}={v}" for k, v in sorted(settings.items())) + ")"
        rows.append(("Backend", text))
    for gpu in env.get("gpus") or []:
        facts = [
            gpu.get("name", "GPU"),
            f"driver {gpu['driver']}" if gpu.get("driver") else "",
            f"CUDA {gpu['cuda_driver']}" if gpu.get("cuda_driver") else "",
            f"sm {gpu['compute_capability']}" if gpu.get("compute_capability") else "",
            f"{gpu['memory_bytes'] / 2**30:.0f} GiB" if isinstance(gpu.get("memory_bytes"), (int, float)) else "",
        ]
        rows.append((f"GPU {gpu.get('index', '')}".strip(), ", ".join(f for f in facts if f)))
    cpu = env.get("cpu") or {}
    if cpu:
        rows.append(
            ("CPU", f"{cpu.get('model', '?')}, {cpu.get('count', '?')} CPUs, {cpu.get('arch', '')}".strip(", "))
        )
    for key, label in (("os", "OS"), ("python", "Python"), ("harness_version", "Harness"), ("hostname", "Host")):
        if env.get(key):
            rows.append((label, str(env[key])))
    commit = env.get("commit") or {}
    if commit.get("id"):
        text = str(commit["id"]) + (" (dirty)" if commit.get("dirty") else "")
        if commit.get("branch"):
            text += f" on {commit['branch']}"
        rows.append(("Commit", text))
    if env.get("date"):
        rows.append(("Date", str(env["date"])))
    if env.get("key"):
        rows.append(("Baseline key", str(env["key"])))
    notes = clock_notes(env, cases or [])
    rows.append(("Clocks", "; ".join(notes) if notes else "no throttling or clock notes recorded"))
    return rows


def clock_notes(env: dict[str, Any], cases: list[CaseView]) -> list[str]:
    """Clock and throttling facts from GPU telemetry and measurement warnings, one line per distinct note."""
    notes: list[str] = []
    telemetry = env.get("telemetry")
    if isinstance(telemetry, dict) and telemetry.get("status") not in (None, "ok") and env.get("uses_gpu"):
        # Only worth saying on a GPU run: there the clocks could not be watched (a CPU run needs no NVML).
        notes.append(f"GPU telemetry {telemetry.get('status')}: {telemetry.get('reason', 'no reason recorded')}")
    for gpu in env.get("gpus") or []:
        limits = [
            f"max SM {gpu['max_sm_clock_mhz']:.0f} MHz"
            if isinstance(gpu.get("max_sm_clock_mhz"), (int, float))
            else "",
            f"max memory {gpu['max_mem_clock_mhz']:.0f} MHz"
            if isinstance(gpu.get("max_mem_clock_mhz"), (int, float))
            else "",
            f"power limit {gpu['power_limit_w']:.0f} W" if isinstance(gpu.get("power_limit_w"), (int, float)) else "",
            f"persistence mode {'on' if gpu['persistence_mode'] else 'off'}" if "persistence_mode" in gpu else "",
        ]
        if any(limits):
            notes.append(f"GPU {gpu.get('index', '')}: " + ", ".join(x for x in limits if x))
    clocks = [c.sm_clock_mhz for c in cases if c.sm_clock_mhz is not None]
    if clocks:
        notes.append(f"SM clock during measurement (median per case): {min(clocks):.0f}–{max(clocks):.0f} MHz")
    throttled: dict[str, list[str]] = {}
    for view in cases:
        telemetry = getattr(view.case, "telemetry", None)
        reasons = view.telemetry_flags or (_throttle_reasons(telemetry) if isinstance(telemetry, dict) else [])
        for reason in reasons:
            throttled.setdefault(reason, []).append(view.id)
    for reason, ids in throttled.items():
        shown = ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
        notes.append(f"{reason} ({shown})")
    return [n for n in notes if n]


def _throttle_reasons(telemetry: dict[str, Any]) -> list[str]:
    """Throttling named in a telemetry record that carries no ready-made ``flags``."""
    reasons: list[str] = []
    for key, value in telemetry.items():
        if "throttl" not in key.lower() or isinstance(value, bool):
            continue
        if isinstance(value, (list, tuple)):
            reasons.extend(f"throttled: {v}" for v in value if v)
        elif isinstance(value, dict):
            reasons.extend(f"throttled: {k}" for k, v in value.items() if v)
        elif value:
            reasons.append(f"throttled: {value}" if isinstance(value, str) else f"{key} seen")
    return reasons
