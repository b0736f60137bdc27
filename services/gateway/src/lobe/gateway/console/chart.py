"""Cost and tokens per day as inline SVG, drawn here: no script and no style attribute, so the
page's CSP needs no exception; the numbers are in a table beside it for screen readers."""

from __future__ import annotations

from typing import Any

from lobe.gateway.console.page import h

WIDTH, HEIGHT, GAP, BAR = 640, 160, 4, 40  # BAR: the widest a day's bar gets


def bars(title: str, days: list[dict[str, Any]], field: str, css_class: str) -> str:
    values = [float(day[field]) for day in days]
    top = max(values, default=0.0) or 1.0
    step = min(WIDTH / max(len(days), 1), BAR)
    rects = []
    for i, (day, value) in enumerate(zip(days, values, strict=True)):
        height = max(value / top * (HEIGHT - 24), 1.0 if value else 0.0)
        x, y = i * step + GAP / 2, HEIGHT - height
        rects.append(
            f'<rect class="{css_class}" x="{x:.1f}" y="{y:.1f}" width="{step - GAP:.1f}" '
            f'height="{height:.1f}"><title>{h(day["day"])}: {h(day[field])}</title></rect>'
        )
        if i in (0, len(days) - 1):  # the first and last day name the axis
            rects.append(f'<text x="{x:.1f}" y="12">{h(day["day"][5:])}</text>')
    label = f"{title}, {len(days)} days, highest {top:g}"
    return (
        f'<figure><figcaption>{h(title)}</figcaption><svg role="img" aria-label="{h(label)}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}">{"".join(rects)}</svg></figure>'
    )


def day_chart(days: list[dict[str, Any]]) -> str:
    if not days:
        return "<p>No usage in this period yet.</p>"
    return bars("Cost per day (USD)", days, "cost_usd", "cost") + bars(
        "Tokens per day", days, "tokens", "tokens"
    )
