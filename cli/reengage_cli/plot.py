"""`reengage stats --plot FILE`: the campaign funnel and the sends per day as an SVG (or an HTML page).

Drawn from the same counters `reengage status` reads, so a user trying reengage locally
sees what the CloudWatch dashboard would show. Plain SVG: no plotting library needed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from html import escape
from typing import Any

WIDTH, HEIGHT = 900, 420
BAR_COLOURS = ("#4c78a8", "#72b7b2", "#54a24b", "#eeca3b", "#e45756")


def funnel(statistics: dict[str, Any], totals: dict[str, int]) -> list[tuple[str, int]]:
    responses = statistics["by_response_status"]
    return [
        ("Leads", statistics["total_leads"]),
        ("Followed up", totals.get("followed_up", 0)),
        ("Followup_2 sent", statistics["by_followup_stage"].get("Followup_2", 0)),
        ("Replied", sum(responses.get(s, 0) for s in ("Interested", "Rejected", "Converted"))),
        ("Converted", responses.get("Converted", 0)),
    ]


def render_svg(statistics: dict[str, Any], totals: dict[str, int], days: dict[str, int], now: datetime) -> str:
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'font-family="Helvetica, Arial, sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        '<text x="20" y="28" font-size="18" font-weight="bold">reengage: campaign funnel and sends per day</text>',
        f'<text x="20" y="48" fill="#555">as of {now:%Y-%m-%d %H:%M} UTC; success rate '
        f"{statistics['reengagement_success_rate']:.1%}; recent re-engagements (7 days) "
        f"{statistics['recent_reengagements']}</text>",
    ]
    steps = funnel(statistics, totals)
    top = max((value for _, value in steps), default=0) or 1
    for index, (label, value) in enumerate(steps):
        y = 80 + index * 56
        width = int(300 * value / top)
        parts.append(f'<text x="20" y="{y + 22}">{escape(label)}</text>')
        parts.append(f'<rect x="130" y="{y}" width="{max(width, 1)}" height="34" fill="{BAR_COLOURS[index]}"/>')
        parts.append(f'<text x="{136 + width}" y="{y + 22}" font-weight="bold">{value}</text>')
    first = (now - timedelta(days=29)).date()
    series = [(first + timedelta(days=offset)).isoformat() for offset in range(30)]
    peak = max((days.get(day, 0) for day in series), default=0) or 1
    left, base, height = 500, 360, 260
    parts.append(f'<text x="{left}" y="80" font-weight="bold">Follow-ups sent per day (30 days)</text>')
    parts.append(f'<line x1="{left}" y1="{base}" x2="{left + 370}" y2="{base}" stroke="#999"/>')
    for index, day in enumerate(series):
        value = days.get(day, 0)
        bar = int(height * value / peak)
        x = left + index * 12.3
        parts.append(
            f'<rect x="{x:.1f}" y="{base - bar}" width="10" height="{bar}" fill="#4c78a8">'
            f"<title>{day}: {value}</title></rect>"
        )
    parts.append(f'<text x="{left}" y="{base + 18}" fill="#555">{series[0]}</text>')
    parts.append(f'<text x="{left + 300}" y="{base + 18}" fill="#555">{series[-1]}</text>')
    parts.append(f'<text x="{left}" y="{base - height - 6}" fill="#555">max {peak}/day</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def render_html(svg: str, statistics: dict[str, Any]) -> str:
    rows = "".join(f"<tr><th>{escape(key)}</th><td>{escape(str(value))}</td></tr>" for key, value in statistics.items())
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>reengage statistics</title></head>"
        f"<body>{svg}<table>{rows}</table></body></html>\n"
    )
