"""Plotly figures built on the server from the services' data (plotly.graph_objects), and the
overview's sparklines as small inline SVG.

Colours come from the Okabe-Ito palette, which stays distinguishable with the common colour
vision deficiencies, and every trace also differs by marker shape or line dash, so no reading
depends on colour alone. User-supplied strings go through `plot_text` (Plotly reads HTML tags in
its labels). A builder returns None where there is nothing to draw: the page says why instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from markupsafe import Markup
from plotly.subplots import make_subplots

from web.render import fmt_number, plot_text

OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
SYMBOLS = ["circle", "square", "diamond", "triangle-up", "cross", "star", "hexagon", "pentagon"]
DASHES = ["solid", "dot", "dash", "longdash", "dashdot"]
REGRESSION = "#D55E00"  # vermillion, with a downward triangle
IMPROVEMENT = "#009E73"  # bluish green, with an upward triangle
FAILURE = "#CC79A7"  # reddish purple, with an x
FONT = {"family": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", "size": 13, "color": "#1a1a1a"}


def strings(values: list[str]) -> Any:
    """A numpy array of strings: plotly.py takes it whole instead of checking each element."""
    return np.array(values, dtype=object)


def style(i: int) -> dict[str, Any]:
    return {"color": OKABE_ITO[i % len(OKABE_ITO)], "symbol": SYMBOLS[i % len(SYMBOLS)]}


def _layout(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        # No plotly.py theme: the styling is all here (and each figure's JSON is 7 KB smaller).
        "template": "none",
        "font": FONT,
        "margin": {"l": 70, "r": 20, "t": 40, "b": 60},
        "plot_bgcolor": "#ffffff",
        "paper_bgcolor": "#ffffff",
        "hovermode": "closest",
        "legend": {"orientation": "h", "y": -0.25, "x": 0},
        "hoverlabel": {"namelength": -1},
    }
    base.update(over)
    return base


def _axis(**over: Any) -> dict[str, Any]:
    return {"gridcolor": "#e6e6e6", "zerolinecolor": "#cccccc", "linecolor": "#999999", **over}


def metric_title(metric: dict[str, Any]) -> str:
    better = "higher" if metric["direction"] == "higher" else "lower"
    return f"{plot_text(metric['name'])} [{plot_text(metric['unit'])}] ({better} is better)"


LOG_TOGGLE = {
    "type": "buttons",
    "direction": "right",
    "x": 0,
    "xanchor": "left",
    "y": 1.14,
    "yanchor": "bottom",
    "showactive": True,
    "buttons": [
        {"label": "linear", "method": "relayout", "args": [{"yaxis.type": "linear"}]},
        {"label": "log", "method": "relayout", "args": [{"yaxis.type": "log"}]},
    ],
}


def series_figure(
    data: dict[str, Any], *, compact: bool = False, mark_sha: str | None = None
) -> go.Figure | None:
    """One metric over commits (x: position in first-parent order, labelled by short sha): a
    trace per entry of data["traces"], error bars for the spread of each point, alerts as
    triangles, failures as crosses along the bottom, annotations as vertical lines. Points carry
    their sha first in customdata, so a click opens the commit."""
    traces = [t for t in data["traces"] if t["value"]]
    if not traces:
        return None
    fig = go.Figure()
    fig.add_trace(_commit_trace(traces))
    y_at: dict[tuple[str | None, int], float] = {}
    for i, t in enumerate(traces):
        s = style(i)
        # Numbers as numpy arrays: plotly.py validates them at once and writes them as typed
        # arrays (base64), several times smaller and faster than lists of floats.
        value = np.asarray(t["value"], dtype=float)
        spread, below = np.asarray(t["hi"], dtype=float) - value, value - np.asarray(t["lo"], dtype=float)
        has_spread = bool((spread > 0).any() or (below > 0).any())
        name = plot_text(t["label"])
        fig.add_trace(
            go.Scatter(
                x=np.asarray(t["order"], dtype=float),
                y=value,
                mode="lines+markers",
                name=name,
                line={"color": s["color"], "width": 1.5},
                marker={"color": s["color"], "symbol": s["symbol"], "size": 6 if not compact else 4},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": spread,
                    "arrayminus": below,
                    "thickness": 1,
                    "width": 0,
                    "color": s["color"],
                }
                if has_spread
                else None,
                customdata=strings([sha[:12] for sha in t["sha"]]),
                hovertemplate="%{y:.4g}",
                meta={"link": "commit"},
            )
        )
        for x, y in zip(t["order"], t["value"], strict=True):
            y_at[(t["label"], x)] = y
    _alert_markers(fig, data.get("alerts", []), y_at, traces)
    _failure_markers(fig, data.get("failures", []))
    shapes, notes = _annotation_lines(data.get("annotations", []), mark_sha, traces)
    ticks = sorted({x for t in traces for x in t["order"]})
    sha_at = {x: sha for t in traces for x, sha in zip(t["order"], t["sha"], strict=True)}
    step = max(1, len(ticks) // (6 if compact else 12))
    tickvals = ticks[::step]
    fig.update_layout(
        **_layout(
            height=260 if compact else 520,
            margin={"l": 70, "r": 20, "t": 20 if compact else 60, "b": 50},
            showlegend=not compact,
            legend={"orientation": "v", "x": 1.01, "y": 1, "xanchor": "left", "yanchor": "top"},
            shapes=shapes,
            annotations=notes,
            updatemenus=[] if compact else [LOG_TOGGLE],
            yaxis2={"overlaying": "y", "range": [0, 1], "visible": False, "fixedrange": True},
            hovermode="x unified",
        ),
        xaxis=_axis(
            title={"text": "" if compact else "commit (first-parent order)"},
            tickvals=tickvals,
            ticktext=[sha_at[x][:8] for x in tickvals],
            rangeslider={"visible": not compact, "thickness": 0.08},
        ),
        yaxis=_axis(title={"text": "" if compact else metric_title(data["metric"])}),
    )
    return fig


def _commit_trace(traces: list[dict[str, Any]]) -> go.Scatter:
    """The commits under the series, drawn invisibly along the bottom: in the unified hover
    (every trace at the hovered commit) its row names the commit once for all traces, so the
    text of a 2,000-commit history is sent once, not once per trace."""
    seen: dict[int, tuple[str, str]] = {}
    for t in traces:
        for x, sha, when, author, message, n in zip(
            t["order"], t["sha"], t["committed_at"], t["author"], t["message"], t["n"], strict=True
        ):
            if x not in seen:
                text = (
                    f"<b>{sha[:12]}</b> {(when or '')[:16].replace('T', ' ')}, {plot_text(author or '?')}"
                    f"{f', n={n}' if n > 1 else ''}<br>{plot_text((message or '')[:70])}"
                )
                seen[x] = (sha[:12], text)
    xs = sorted(seen)
    return go.Scatter(
        x=np.asarray(xs, dtype=float),
        y=np.zeros(len(xs)),
        yaxis="y2",
        mode="markers",
        name="commit",
        showlegend=False,
        marker={"size": 1, "opacity": 0},
        customdata=strings([seen[x][0] for x in xs]),
        text=strings([seen[x][1] for x in xs]),
        hovertemplate="%{text}<extra></extra>",
        meta={"link": "commit"},
    )


def _alert_markers(
    fig: go.Figure,
    alerts: list[dict[str, Any]],
    y_at: dict[tuple[str | None, int], float],
    traces: list[dict[str, Any]],
) -> None:
    default = traces[0]["label"] if len(traces) == 1 else None
    for kind, color, symbol in (
        ("regression", REGRESSION, "triangle-down"),
        ("improvement", IMPROVEMENT, "triangle-up"),
    ):
        marks = [
            (a, y_at[(a["trace"] or default, a["order"])])
            for a in alerts
            if a["kind"] == kind and (a["trace"] or default, a["order"]) in y_at
        ]
        if not marks:
            continue
        fig.add_trace(
            go.Scatter(
                x=[a["order"] for a, _ in marks],
                y=[y for _, y in marks],
                mode="markers",
                name=f"{kind}s (alerts)",
                marker={
                    "symbol": symbol,
                    "size": 16,
                    "color": color,
                    "line": {"width": 1.5, "color": "#000000"},
                },
                customdata=[a["sha"][:12] for a, _ in marks],
                text=[
                    f"{plot_text(a['trace'] or '')}: "
                    f"{'—' if a['magnitude'] is None else format(a['magnitude'], '+.1%')}"
                    f"<br>state: {plot_text(a['state'])}"
                    for a, _ in marks
                ],
                hovertemplate=f"<b>{kind}</b> at %{{customdata}}<br>%{{text}}<extra></extra>",
                meta={"link": "commit", "marker": kind},
            )
        )


def _failure_markers(fig: go.Figure, failures: list[dict[str, Any]]) -> None:
    if not failures:
        return
    fig.add_trace(
        go.Scatter(
            x=[f["order"] for f in failures],
            y=[0.04] * len(failures),
            yaxis="y2",
            mode="markers",
            name="failures",
            marker={"symbol": "x", "size": 12, "color": FAILURE, "line": {"width": 1, "color": "#000000"}},
            customdata=[f["sha"][:12] for f in failures],
            text=[
                f"{plot_text(f['failure_class'])}<br>{plot_text(f['hardware_class'])}<br>"
                f"{plot_text(f['message'][:100])}"
                for f in failures
            ],
            hovertemplate="<b>failure</b> at %{customdata}<br>%{text}<extra></extra>",
            meta={"link": "commit", "marker": "failure"},
        )
    )


def _annotation_lines(
    annotations: list[dict[str, Any]], mark_sha: str | None, traces: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    shapes: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    for a in annotations:
        shapes.append(
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": a["order"],
                "x1": a["order"],
                "y0": 0,
                "y1": 1,
                "line": {"color": "#555555", "width": 1, "dash": "dot"},
            }
        )
        text = f"{a['kind']}: {a['text']}"
        label = plot_text(text[:48] + ("…" if len(text) > 48 else ""))
        notes.append(
            {
                "x": a["order"],
                "xref": "x",
                "y": 1,
                "yref": "paper",
                "yanchor": "bottom",
                "text": label,
                "showarrow": False,
                "font": {"size": 11, "color": "#333333"},
                "hovertext": plot_text(text),
            }
        )
    if mark_sha:
        at = next(
            (x for t in traces for x, sha in zip(t["order"], t["sha"], strict=True) if sha == mark_sha), None
        )
        if at is not None:
            shapes.append(
                {
                    "type": "line",
                    "xref": "x",
                    "yref": "paper",
                    "x0": at,
                    "x1": at,
                    "y0": 0,
                    "y1": 1,
                    "line": {"color": REGRESSION, "width": 1.5, "dash": "dash"},
                }
            )
    return shapes, notes


def sparkline(values: Sequence[float], *, width: int = 80, height: int = 24) -> Markup:
    """A line of the newest values as inline SVG (numbers only: nothing user-supplied)."""
    if len(values) < 2:
        return Markup("")
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    step = (width - 4) / (len(values) - 1)
    points = " ".join(
        f"{2 + i * step:.1f},{height - 3 - (v - lo) / span * (height - 6):.1f}" for i, v in enumerate(values)
    )
    last_x, last_y = points.rsplit(" ", 1)[-1].split(",")
    return Markup(
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'aria-hidden="true">'
        f'<polyline fill="none" stroke="#0072B2" stroke-width="1.5" points="{points}"/>'
        f'<circle cx="{last_x}" cy="{last_y}" r="2.5" fill="#0072B2"/></svg>'
    )


def hardware_figure(data: dict[str, Any]) -> go.Figure | None:
    """A benchmark's metric per hardware class: absolute, per accelerator, per watt and per
    dollar-hour, as four bar charts (a missing bar is a figure not configured for that class)."""
    rows = [r for r in data["rows"] if r["value"] is not None]
    sel = data["selected"]
    if not rows or sel is None:
        return None
    panels = [("value", f"absolute [{plot_text(sel['unit'])}]")]
    if sel["normalisable"]:
        panels += [
            ("per_accelerator", "per accelerator"),
            ("per_watt", "per watt"),
            ("per_dollar_hour", "per dollar-hour"),
        ]
    fig = make_subplots(
        rows=1,
        cols=len(panels),
        subplot_titles=[title for _, title in panels],
        shared_yaxes=True,
        horizontal_spacing=0.04,
    )
    names = [plot_text(r["hardware_class"]) for r in rows]
    colors = [OKABE_ITO[i % len(OKABE_ITO)] for i in range(len(rows))]
    for col, (key, title) in enumerate(panels, 1):
        values = [r[key] for r in rows]
        fig.add_trace(
            go.Bar(
                y=names,
                # A figure not configured for a class: an empty bar that says so.
                x=[0 if v is None else v for v in values],
                orientation="h",
                name=title,
                marker={"color": colors, "line": {"color": "#000000", "width": 0.5}},
                text=["not configured" if v is None else fmt_number(v) for v in values],
                textposition="outside",
                cliponaxis=False,
                hovertemplate="%{y}: %{text}<extra>" + title + "</extra>",
                showlegend=False,
            ),
            row=1,
            col=col,
        )
        # Room right of the longest bar for its label.
        top = max((v for v in values if v is not None), default=0) or 1
        fig.update_xaxes(range=[0, top * 1.35], row=1, col=col)
    fig.update_layout(
        **_layout(height=120 + 48 * len(rows), margin={"l": 20, "r": 30, "t": 50, "b": 40}, bargap=0.3)
    )
    fig.update_xaxes(**_axis())
    fig.update_yaxes(**_axis(automargin=True, autorange="reversed"))
    return fig


def serving_figures(data: dict[str, Any]) -> tuple[go.Figure | None, go.Figure | None]:
    """Throughput per accelerator against interactivity (tokens/s per user), and TTFT
    percentiles against load. The commit's curves are solid, the baseline's dashed; each
    hardware class has its colour and marker."""
    curves = data["curves"]
    if not curves:
        return None, None
    hw_index = {name: i for i, name in enumerate(dict.fromkeys(c["hardware_class"] for c in curves))}
    load = plot_text(data.get("load") or "load")
    several_groups = len({c["group"] for c in curves}) > 1

    def name(c: dict[str, Any], *extra: str) -> str:
        parts = [c["hardware_class"] + (" (per machine)" if not c["accelerators"] else "")]
        parts += [c["group"]] if several_groups and c["group"] else []
        return plot_text(" · ".join([*parts, *extra, c["run"]]))

    tput = go.Figure()
    for c in curves:
        pts = [
            p
            for p in c["points"]
            if p["interactivity"] is not None and p["throughput_per_accelerator"] is not None
        ]
        if not pts:
            continue
        s = style(hw_index[c["hardware_class"]])
        label = name(c)
        tput.add_trace(
            go.Scatter(
                x=[p["interactivity"] for p in pts],
                y=[p["throughput_per_accelerator"] for p in pts],
                mode="lines+markers+text",
                text=[f"{p['load']}" for p in pts],
                textposition="top center",
                name=label,
                line={"color": s["color"], "dash": "solid" if c["run"] == "commit" else "dash"},
                marker={
                    "color": s["color"],
                    "symbol": s["symbol"] + ("" if c["run"] == "commit" else "-open"),
                    "size": 9,
                },
                hovertemplate=(
                    f"{load}=%{{text}}<br>%{{x:.4g}} tok/s per user<br>"
                    f"%{{y:.4g}} tok/s per accelerator<extra>{label}</extra>"
                ),
            )
        )
    tput.update_layout(
        **_layout(height=480),
        xaxis=_axis(title={"text": "interactivity: tokens/s per user (1000 / TPOT)"}),
        yaxis=_axis(title={"text": "output throughput per accelerator [tok/s]"}),
    )
    ttft = go.Figure()
    percentiles = sorted(
        {k for c in curves for p in c["points"] for k in p["ttft_ms"]}, key=lambda k: float(k[1:])
    )
    for c in curves:
        s = style(hw_index[c["hardware_class"]])
        for j, pct in enumerate(percentiles):
            pts = [p for p in c["points"] if pct in p["ttft_ms"]]
            if not pts:
                continue
            label = name(c, pct)
            ttft.add_trace(
                go.Scatter(
                    x=[p["load"] for p in pts],
                    y=[p["ttft_ms"][pct] for p in pts],
                    mode="lines+markers",
                    name=label,
                    line={
                        "color": s["color"],
                        "dash": DASHES[j % len(DASHES)] if c["run"] == "commit" else "dash",
                        "width": 2 if c["run"] == "commit" else 1,
                    },
                    marker={
                        "color": s["color"],
                        "symbol": SYMBOLS[j % len(SYMBOLS)] + ("" if c["run"] == "commit" else "-open"),
                        "size": 8,
                    },
                    hovertemplate=f"{load}=%{{x}}<br>TTFT {pct}: %{{y:.4g}} ms<extra>{label}</extra>",
                )
            )
    loads = [p["load"] for c in curves for p in c["points"] if isinstance(p["load"], int | float)]
    # A sweep over 1, 4, 16, 64 ... reads best on a log axis.
    log_load = bool(loads) and min(loads) > 0 and max(loads) / min(loads) >= 8
    ttft.update_layout(
        **_layout(height=520, updatemenus=[LOG_TOGGLE], legend={"orientation": "h", "y": -0.32, "x": 0}),
        xaxis=_axis(
            title={"text": f"load ({load})"},
            type="log" if log_load else "linear",
            tickvals=sorted(set(loads)) if log_load else None,
        ),
        yaxis=_axis(title={"text": "TTFT [ms] (lower is better)"}),
    )
    return (tput if tput.data else None), (ttft if ttft.data else None)


def binary_size(n: int) -> str:
    """1024 -> 1 KiB, 16777216 -> 16 MiB (the sizes nccl-tests sweeps are powers of two)."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:g} {unit}"
    return f"{n} B"


def collectives_figure(data: dict[str, Any], metric: str) -> go.Figure | None:
    """busbw or algbw against message size (log-scaled sizes) per hardware class; the commit
    solid, the baseline dashed."""
    sweeps = [s for s in data["sweeps"] if any(v is not None for v in s[metric])]
    if not sweeps:
        return None
    hw_index = {name: i for i, name in enumerate(dict.fromkeys(s["hardware_class"] for s in sweeps))}
    several_groups = len({s["group"] for s in sweeps}) > 1
    every = sorted({x for s in sweeps for x in s["sizes"]})
    sizes = every[:: max(1, len(every) // 12)]
    fig = go.Figure()
    for s in sweeps:
        st = style(hw_index[s["hardware_class"]])
        pts = [(size, v) for size, v in zip(s["sizes"], s[metric], strict=True) if v is not None]
        group = f" · {s['group']}" if several_groups and s["group"] else ""
        label = plot_text(f"{s['hardware_class']}{group} · {s['run']}")
        fig.add_trace(
            go.Scatter(
                x=[size for size, _ in pts],
                y=[v for _, v in pts],
                mode="lines+markers",
                name=label,
                line={"color": st["color"], "dash": "solid" if s["run"] == "commit" else "dash"},
                marker={
                    "color": st["color"],
                    "symbol": st["symbol"] + ("" if s["run"] == "commit" else "-open"),
                    "size": 7,
                },
                hovertemplate="%{x:.3s}B: %{y:.4g} GB/s<extra>" + label + "</extra>",
            )
        )
    fig.update_layout(
        **_layout(height=440, updatemenus=[LOG_TOGGLE]),
        xaxis=_axis(
            type="log",
            title={"text": "message size (log)"},
            tickvals=sizes,
            ticktext=[binary_size(x) for x in sizes],
        ),
        yaxis=_axis(title={"text": f"{metric} [GB/s] (higher is better)"}),
    )
    return fig
