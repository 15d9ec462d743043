"""Inline SVG plots (no script, no external resource): ULP histograms and budget-ratio bars.

Every text that goes into the SVG is escaped here; colours come from the page's CSS classes,
so the plots follow the light and dark schemes.
"""

from __future__ import annotations

import math

from markupsafe import Markup, escape

BINS: tuple[tuple[str, str], ...] = (
    ("<=0", "0"),
    ("<=1", "1"),
    ("<=2", "2"),
    ("<=4", "4"),
    ("<=8", "8"),
    ("<=16", "16"),
    ("<=64", "64"),
    ("<=256", "256"),
    ("<=1024", "1k"),
    ("<=65536", "64k"),
    ("<=4294967296", "2³²"),
    (">2^32", ">2³²"),
)
"""The histogram bins of `conformance.record` (key, axis label): at most N strict ULP."""


def _bins(counts: dict[str, int]) -> list[tuple[str, str, int]]:
    known = {k for k, _ in BINS}
    out = [(key, label, int(counts.get(key, 0))) for key, label in BINS]
    out += [(k, k, int(v)) for k, v in sorted(counts.items()) if k not in known]
    return out


def histogram(counts: dict[str, int], title: str) -> Markup:
    """Bars of inputs per strict-ULP bin, counts written above the bars."""
    bins = _bins(counts)
    total = sum(n for _, _, n in bins)
    peak = max((n for _, _, n in bins), default=0) or 1
    bar_w, gap, left, top, plot_h = 24, 4, 6, 26, 70
    width = left * 2 + len(bins) * (bar_w + gap)
    height = top + plot_h + 30
    described = ", ".join(
        f"{n} at {'≤' if k.startswith('<=') else ''}{lab}" for k, lab, n in bins if n
    )
    parts = [
        f'<svg class="hist" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(title)}: {escape(described or "no inputs")}">',
        f"<title>{escape(title)}</title>",
        f'<text class="t" x="{left}" y="13">{escape(title)} ({total} inputs)</text>',
        f'<line class="axis" x1="{left}" x2="{width - left}" y1="{top + plot_h}" '
        f'y2="{top + plot_h}"/>',
    ]
    for i, (key, label, n) in enumerate(bins):
        x = left + i * (bar_w + gap)
        if n:
            h = max(2.0, plot_h * n / peak)
            y = top + plot_h - h
            cls = "bar" if key in ("<=0", "<=1", "<=2", "<=4") else "bar far"
            parts.append(
                f'<rect class="{cls}" x="{x}" y="{y:.1f}" width="{bar_w}" height="{h:.1f}">'
                f"<title>{n} inputs with max strict ULP {escape(key)}</title></rect>"
            )
            parts.append(
                f'<text class="n" x="{x + bar_w / 2}" y="{y - 3:.1f}" '
                f'text-anchor="middle">{n}</text>'
            )
        parts.append(
            f'<text class="l" x="{x + bar_w / 2}" y="{top + plot_h + 14}" '
            f'text-anchor="middle">{escape(label)}</text>'
        )
    parts.append(
        f'<text class="l" x="{width / 2}" y="{height - 3}" text-anchor="middle">'
        "max strict ULP per input (at most)</text>"
    )
    parts.append("</svg>")
    return Markup("".join(parts))


RATIO_MIN, RATIO_MAX = 1e-3, 1e3
"""The ratio bar's log scale; the budget (ratio 1) sits in the middle."""


def ratio_bar(ratio: float | None) -> Markup:
    """A horizontal bar of a budget ratio on a log scale, with the budget marked at 1."""
    width, height = 120, 14
    if ratio is None:
        return Markup("")
    if math.isnan(ratio):
        frac = 1.0
    elif ratio <= RATIO_MIN:
        frac = 0.0
    else:
        clipped = min(ratio, RATIO_MAX)
        frac = math.log10(clipped / RATIO_MIN) / math.log10(RATIO_MAX / RATIO_MIN)
    over = not (ratio <= 1.0)
    mid = width / 2
    label = f"budget ratio {ratio:.3g}" + (" (over budget)" if over else "")
    return Markup(
        f'<svg class="ratio" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(label)}"><title>{escape(label)}</title>'
        f'<rect class="track" x="0" y="3" width="{width}" height="8"/>'
        f'<rect class="{"over" if over else "ok"}" x="0" y="3" width="{max(1.0, frac * width):.1f}"'
        f' height="8"/><line class="budget" x1="{mid}" x2="{mid}" y1="0" y2="{height}"/></svg>'
    )
