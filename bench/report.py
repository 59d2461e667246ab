"""Turn per-call measurements into the bench's figures, table, JSON and picture."""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from typing import Any

from .callee import CallMeasurement
from .corpus.model import FIELD_CATEGORIES
from .engine_turns import EngineTurns, ends, told
from .stats import summary
from .telnyx_emulator.media import MarkEcho

TARGETS = {
    "turn_latency_p95_ms": 400.0,
    "engine_added_p99_ms": 10.0,
    "barge_in_reaction_p95_ms": 150.0,
    "outbound_late_p99_ms": 5.0,
}


MACHINE_FIGURES = (
    "engine_added_ms",  # the engine's own CPU time on a turn's path
    "outbound_late_frames", "outbound_frames", "outbound_late_ms",  # frames late for CPU or load
    "cpu_s_per_call_minute", "rss_mib_per_call", "engine_rss_mib", "load_cpu_pct", "valid",
)
"""Figures of the machine: zero or meaningless on the virtual clock (bench.virtual), so left out there."""


@dataclass
class RunFigures:
    concurrency: int
    calls: list[CallMeasurement]
    engine_turns: list[dict[str, Any]] = field(default_factory=list)
    engine_unmeasured: list[dict[str, Any]] = field(default_factory=list)
    """Turns the engine answered without measuring them: only how they ended is read."""
    engine_cpu_s: float = 0.0
    engine_rss_mib: float = 0.0
    engine_rss_idle_mib: float = 0.0
    call_minutes: float = 0.0
    load_cpu_pct: float = 0.0
    wall_s: float = 0.0
    failures: list[str] = field(default_factory=list)
    mark_echo: MarkEcho = MarkEcho()
    """When the callees' carrier echoed marks in this run."""
    engine_mark_echoes: dict[str, int] = field(default_factory=dict)
    """The engine's count in this run of marks it took as played with the echo overdue, and of
    echoes that came after that (its /metrics)."""

    def as_json(self) -> dict[str, Any]:
        turns = [t for c in self.calls for t in c.turns]
        latencies = [t.latency_ms for t in turns if t.latency_ms is not None]
        reactions = [t.barge_in_reaction_ms for t in turns if t.barge_in_reaction_ms is not None]
        lateness = [x for c in self.calls for x in c.lateness_ms]
        engine_added = [t["engine_added_ms"] for t in self.engine_turns if t.get("engine_added_ms") is not None]
        engine_latency = [t["turn_latency_ms"] for t in self.engine_turns if t.get("turn_latency_ms") is not None]
        stages: dict[str, list[float]] = {}
        for t in self.engine_turns:
            for stage, ms in (t.get("stages_ms") or {}).items():
                stages.setdefault(stage, []).append(ms)
        completed = sum(1 for c in self.calls if c.completed and c.error is None)
        accounts = EngineTurns(self.engine_turns, self.engine_unmeasured)
        frames_out = sum(c.agent_frames for c in self.calls)
        out: dict[str, Any] = {
            "concurrency": self.concurrency,
            "mark_echo": {"mode": self.mark_echo.mode,
                          **({"late_s": self.mark_echo.late_s} if self.mark_echo.mode == "late" else {})},
            "calls_completed": completed,
            "calls_failed": len(self.calls) - completed + len(self.failures),
            "turns_measured": len(latencies),
            "turn_latency_ms": summary(latencies),
            # The first caller turn follows the greeting; later ones follow a reply, so they are the
            # ones that depend on the reply's end being known (its mark echo, or the playout clock).
            "turn_latency_by_index_ms": {
                "first": summary([t.latency_ms for c in self.calls for t in c.turns[:1]
                                  if t.latency_ms is not None], (50, 95)),
                "later": summary([t.latency_ms for c in self.calls for t in c.turns[1:]
                                  if t.latency_ms is not None], (50, 95)),
            },
            "engine_turn_latency_ms": summary(engine_latency),
            "engine_added_ms": summary(engine_added),
            "stage_ms": {k: summary(v) for k, v in sorted(stages.items())},
            "barge_in_reaction_ms": summary(reactions, (50, 95)),
            "barge_ins_missed": sum(t.barge_in_missed for t in turns),
            "false_barge_ins": sum(t.false_barge_in for t in turns),
            "backchannel_pauses": sum(t.agent_paused for t in turns),
            "missed_turns": sum(t.missed for t in turns),
            "premature_replies": sum(t.premature for t in turns),
            "outbound_late_frames": len(lateness),
            "outbound_frames": frames_out,
            # Over every agent frame the caller received (one on time is 0 ms late), as the target
            # reads; the late ones alone are counted above, and the worst is max.
            "outbound_late_ms": {
                "p99": round(_p99_over_frames(lateness, frames_out), 1), "n": len(lateness),
                "max": round(max(lateness), 1) if lateness else 0.0,
            },
            "engine_turns": len(self.engine_turns),
            "engine_mark_echoes": dict(self.engine_mark_echoes),
            "speculative_turns": sum(1 for t in self.engine_turns if t.get("speculative")),
            "turn_ends": ends(self.engine_turns),  # how the engine's measured turns ended (its policy's account)
            # Per spoken speculative reply: how much sooner the caller heard it than if the request
            # had waited for the turn's text (the engine's timelines, same provider times).
            "speculation_saved_ms": summary(
                [t["speculation_saved_ms"] for t in self.engine_turns if t.get("speculation_saved_ms") is not None],
                (50, 95)),
            "cpu_s_per_call_minute": round(self.engine_cpu_s / self.call_minutes, 3) if self.call_minutes else None,
            "rss_mib_per_call": round((self.engine_rss_mib - self.engine_rss_idle_mib) / max(1, self.concurrency), 2),
            "engine_rss_mib": round(self.engine_rss_mib, 1),
            "load_cpu_pct": round(self.load_cpu_pct, 1),
            "valid": self.load_cpu_pct <= 90.0,
            "wall_s": round(self.wall_s, 1),
            "failures": self.failures[:20],
            "by_category": self._by_category(),
            "by_callers": self._by_callers(),
            "by_final_punctuation": self._by_final_punctuation(),
            "turns": [  # every caller utterance as the carrier saw it, for digging into a tail
                {"script": c.script, "step": t.step_id, "turn_index": i, "expect": t.expect,
                 "latency_ms": None if t.latency_ms is None else round(t.latency_ms, 1),
                 "missed": t.missed, "premature": t.premature, "false_barge_in": t.false_barge_in,
                 "outcome": accounts.outcome(c, t)}  # the engine's: how the turn ended, held, speculated
                for c in self.calls for i, t in enumerate(c.turns)
            ],
        }
        out["pass"] = {
            "turn_latency_p95": _lt(out["turn_latency_ms"]["p95"], TARGETS["turn_latency_p95_ms"]),
            "engine_added_p99": _lt(out["engine_added_ms"]["p99"], TARGETS["engine_added_p99_ms"]),
            "barge_in_reaction_p95": _lt(out["barge_in_reaction_ms"]["p95"], TARGETS["barge_in_reaction_p95_ms"]),
            "outbound_late_p99": out["outbound_late_ms"]["p99"] <= TARGETS["outbound_late_p99_ms"],
            "no_false_barge_ins": out["false_barge_ins"] == 0,
            "no_premature_replies": out["premature_replies"] == 0,
        }
        return out


    def _by_category(self) -> dict[str, Any]:
        groups: dict[str, list[CallMeasurement]] = {}
        for call in self.calls:
            groups.setdefault(call.category, []).append(call)
        out = {}
        for category, calls in sorted(groups.items()):
            turns = [t for c in calls for t in c.turns]
            out[category] = {
                "calls": len(calls),
                "turn_latency_ms": summary([t.latency_ms for t in turns if t.latency_ms is not None], (50, 95)),
                "missed_turns": sum(t.missed for t in turns),
                "premature_replies": sum(t.premature for t in turns),
                "false_barge_ins": sum(t.false_barge_in for t in turns),
            }
        return out


    def _by_callers(self) -> dict[str, Any]:
        """The corpus's calls against the field callers' (``--callers all`` shows both)."""
        groups: dict[str, list[CallMeasurement]] = {}
        for call in self.calls:
            groups.setdefault("field" if call.category in FIELD_CATEGORIES else "corpus", []).append(call)
        return {
            callers: {"calls": len(calls), "turn_latency_ms": summary(
                [t.latency_ms for c in calls for t in c.turns if t.latency_ms is not None], (50, 95))}
            for callers, calls in sorted(groups.items())
        }


    def _by_final_punctuation(self) -> dict[str, Any]:
        """Lines whose text ends in ``.?!`` against those that do not (issue 13: the engine
        waits on an unpunctuated transcript)."""
        groups: dict[str, list[float]] = {}
        for turn in (t for c in self.calls for t in c.turns):
            if turn.punctuated is not None and turn.latency_ms is not None:
                groups.setdefault("ends .?!" if turn.punctuated else "no final punctuation", []).append(turn.latency_ms)
        return {name: {"turn_latency_ms": summary(values, (50, 95))} for name, values in sorted(groups.items())}


def on_virtual_clock(figures: dict[str, Any]) -> dict[str, Any]:
    """``figures`` of a run on the virtual clock: marked so, without :data:`MACHINE_FIGURES`."""
    out = {k: v for k, v in figures.items() if k not in MACHINE_FIGURES}
    out["pass"] = {k: v for k, v in figures["pass"].items() if k not in ("engine_added_p99", "outbound_late_p99")}
    out["clock"] = "virtual"
    return out


def _p99_over_frames(late_ms: list[float], frames: int) -> float:
    """The 99th percentile of lateness over ``frames`` frames, of which ``late_ms`` were late."""
    if not late_ms or frames <= 0:
        return 0.0
    on_time = max(0, frames - len(late_ms))
    rank = max(1, math.ceil(0.99 * (on_time + len(late_ms))))  # nearest rank, as bench.stats
    return 0.0 if rank <= on_time else sorted(late_ms)[rank - on_time - 1]


def _lt(value: float | None, target: float) -> bool | None:
    return None if value is None else value < target


def print_table(figures: dict[str, Any], console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    echo = figures.get("mark_echo") or {"mode": "played"}
    echo_text = echo["mode"] + (f" {echo['late_s']} s late" if "late_s" in echo else "")
    title = f"callagent bench — {figures['concurrency']} concurrent calls, marks echoed: {echo_text}"
    if figures.get("clock") == "virtual":
        title = (f"callagent bench on the virtual clock — {figures['concurrency']} calls at once, "
                 f"marks echoed: {echo_text}")
    table = Table(title=title, show_lines=False)
    for column in ("figure", "p50", "p95", "p99", "target", "result"):
        table.add_column(column, justify="right" if column != "figure" else "left")

    def row(name: str, key: str, target: str = "", passed: bool | None = None) -> None:
        if key not in figures:  # a figure of the machine, absent on the virtual clock
            return
        s = figures[key]
        mark = "" if passed is None else ("[green]pass[/]" if passed else "[red]MISS[/]")
        table.add_row(name, *(f"{s.get(p)}" if s.get(p) is not None else "—" for p in ("p50", "p95", "p99")),
                      target, mark)

    p = figures["pass"]
    row("turn latency at the carrier (ms)", "turn_latency_ms", "p95 < 400", p["turn_latency_p95"])
    for index, label in (("first", "  first caller turn (ms)"), ("later", "  later caller turns (ms)")):
        s = figures["turn_latency_by_index_ms"][index]
        table.add_row(label, *(f"{s.get(q)}" if s.get(q) is not None else "—" for q in ("p50", "p95")), "—", "", "")
    row("engine's own turn latency (ms)", "engine_turn_latency_ms")
    row("engine-added (ms)", "engine_added_ms", "p99 < 10", p.get("engine_added_p99"))
    row("barge-in reaction (ms)", "barge_in_reaction_ms", "p95 < 150", p["barge_in_reaction_p95"])
    for stage, s in figures["stage_ms"].items():
        table.add_row(f"  stage: {stage} (ms)",
                      *(f"{s.get(q)}" if s.get(q) is not None else "—" for q in ("p50", "p95", "p99")), "", "")
    console.print(table)
    counts = Table(show_header=False)
    counts.add_column("figure")
    counts.add_column("value", justify="right")
    for label, key in (
        ("calls completed / failed", None), ("turns measured", "turns_measured"),
        ("missed turns", "missed_turns"), ("premature replies", "premature_replies"),
        ("false barge-ins", "false_barge_ins"), ("backchannels that paused the agent", "backchannel_pauses"),
        ("barge-ins missed", "barge_ins_missed"),
        ("speculative turns (engine)", "speculative_turns"),
        ("mark echoes overdue / late (engine)", None),
        ("outbound late frames / p99 / max ms", "outbound_late_ms"),
        ("engine CPU s per call-minute", "cpu_s_per_call_minute"),
        ("engine RSS MiB per call", "rss_mib_per_call"), ("load-side CPU %", "load_cpu_pct"),
    ):
        if key is not None and key not in figures:
            continue  # a figure of the machine, absent on the virtual clock
        if key == "speculative_turns":
            saved = figures["speculation_saved_ms"]
            value = f"{figures[key]} of {figures['engine_turns']}"
            if saved.get("p50") is not None:
                value += f", saving p50 {saved['p50']} ms"
        elif label.startswith("calls"):
            value = f"{figures['calls_completed']} / {figures['calls_failed']}"
        elif label.startswith("mark echoes"):
            marks = figures.get("engine_mark_echoes") or {}
            value = f"{marks.get('overdue', '—')} / {marks.get('late', '—')}"
        elif label.startswith("outbound"):
            late = figures["outbound_late_ms"]
            value = f"{figures['outbound_late_frames']} of {figures['outbound_frames']} / {late['p99']} / {late['max']}"
        else:
            assert key is not None  # (only the rows handled above have no key)
            value = str(figures[key])
        counts.add_row(label, value)
    console.print(counts)
    if not figures.get("valid", True):
        console.print("[red]INVALID RUN: the load side's core went above 90 % — figures are not the engine's[/]")


def print_categories(figures: dict[str, Any], console=None) -> None:
    """Turn latency and turn-taking per caller category (and corpus against field callers)."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title="per category: turn latency at the carrier (ms) and turn-taking")
    for column in ("category", "calls", "p50", "p95", "missed", "premature", "false b-in"):
        table.add_column(column, justify="left" if column == "category" else "right", no_wrap=column == "category")
    rows = [(name, g, True) for name, g in figures["by_category"].items()]
    rows += [(f"all {name}", g, False) for name, g in figures.get("by_callers", {}).items()]
    rows += [(f"lines: {name}", g, False) for name, g in figures.get("by_final_punctuation", {}).items()]
    for name, group, counts in rows:
        latency = group["turn_latency_ms"]
        table.add_row(name, str(group.get("calls", "")),
                      *(str(latency.get(p)) if latency.get(p) is not None else "—" for p in ("p50", "p95")),
                      *((str(group[k]) for k in ("missed_turns", "premature_replies", "false_barge_ins"))
                        if counts else ("", "", "")))
    console.print(table)


def print_turns(figures: dict[str, Any], console=None, slow_ms: float = TARGETS["turn_latency_p95_ms"],
                limit: int = 20) -> None:
    """The turns to look at, by script and step: premature replies, missed turns, and replies that
    came ``slow_ms`` or later, slowest first (on the virtual clock: the engine's holds, not load);
    at most ``limit`` of each. Each says how the engine ended the turn where it gave an account
    ("(hold: unsure words)"); then how all the engine's measured turns ended."""
    from rich.console import Console

    console = console or Console()
    turns = figures["turns"]
    for what, picked in (
        ("premature replies", [t for t in turns if t["premature"]]),
        ("missed turns", [t for t in turns if t["missed"]]),
        (f"replies at {slow_ms:.0f} ms or later",
         sorted((t for t in turns if t["latency_ms"] is not None and t["latency_ms"] >= slow_ms),
                key=lambda t: -t["latency_ms"])),
    ):
        listed = ", ".join(f"{t['script']} {t['step']}"
                           + (f" {t['latency_ms']:.0f} ms" if t["latency_ms"] is not None else "")
                           + told(t)
                           for t in picked[:limit])
        more = f", and {len(picked) - limit} more" if len(picked) > limit else ""
        console.print(f"{what} ({len(picked)}): {listed or '—'}{more}", highlight=False, soft_wrap=True)
    turn_ends = figures.get("turn_ends")
    if turn_ends:
        counted = ", ".join(f"{end} {n}" for end, n in turn_ends.items())
        console.print(f"how the engine's turns ended: {counted}", highlight=False, soft_wrap=True)


def write_json(path: str, figures: dict[str, Any]) -> None:
    with open(path, "w") as fh:
        json.dump(figures, fh, indent=2, sort_keys=True)


def write_plot(path: str, runs: list[dict[str, Any]], stage_samples: dict[str, list[float]]) -> None:
    """A self-contained HTML page with inline SVG: latency CDF per stage, latency vs concurrency."""
    width, height, pad = 640, 320, 40
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]

    def cdf_svg() -> str:
        series = {k: sorted(v) for k, v in stage_samples.items() if v}
        top = max((v[-1] for v in series.values()), default=1.0) or 1.0
        parts = [f'<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
                 f'<rect width="{width}" height="{height}" fill="white"/>']
        for i, (name, values) in enumerate(series.items()):
            points = " ".join(
                f"{pad + (x / top) * (width - 2 * pad):.1f},"
                f"{height - pad - (j + 1) / len(values) * (height - 2 * pad):.1f}"
                for j, x in enumerate(values)
            )
            color = colors[i % len(colors)]
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/>')
            parts.append(f'<text x="{width - pad - 150}" y="{pad + 14 * i}" fill="{color}" font-size="12">'
                         f'{html.escape(name)}</text>')
        parts.append(f'<text x="{pad}" y="{height - 8}" font-size="12">0 … {top:.0f} ms</text></svg>')
        return "".join(parts)

    def concurrency_svg() -> str:
        pts = [(r["concurrency"], r["turn_latency_ms"].get("p95")) for r in runs if r["turn_latency_ms"].get("p95")]
        parts = [f'<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
                 f'<rect width="{width}" height="{height}" fill="white"/>']
        if pts:
            cmax = max(c for c, _ in pts) or 1
            lmax = max(max(ms for _, ms in pts), 450.0)
            y400 = height - pad - 400 / lmax * (height - 2 * pad)
            parts.append(f'<line x1="{pad}" x2="{width - pad}" y1="{y400:.1f}" y2="{y400:.1f}" '
                         'stroke="red" stroke-dasharray="4"/>')
            line = " ".join(f"{pad + c / cmax * (width - 2 * pad):.1f},"
                            f"{height - pad - ms / lmax * (height - 2 * pad):.1f}" for c, ms in pts)
            parts.append(f'<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{line}"/>')
            for c, ms in pts:
                x, y = pad + c / cmax * (width - 2 * pad), height - pad - ms / lmax * (height - 2 * pad)
                parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3"/>'
                             f'<text x="{x + 4:.1f}" y="{y - 4:.1f}" font-size="11">{c}: {ms:.0f}</text>')
        parts.append(f'<text x="{pad}" y="{height - 8}" font-size="12">'
                     'concurrent calls → p95 turn latency (ms); red: 400 ms</text></svg>')
        return "".join(parts)

    page = (
        "<!doctype html><meta charset='utf-8'><title>callagent bench</title>"
        "<h2>Latency CDF per stage (engine's own accounting) and at the carrier</h2>" + cdf_svg()
        + "<h2>p95 turn latency vs concurrency</h2>" + concurrency_svg()
    )
    with open(path, "w") as fh:
        fh.write(page)
