"""Charts drawn on the server as inline SVG: no script, no network, readable by screen readers (each chart
is an `img` with a label, each bar or point carries a <title> with its exact figure).

Every function takes plain numbers and returns markup that is safe to put in a template as it is (every
label is escaped). The value axis starts at zero and ends at a round number (1, 2 or 5 times a power of
ten) at or above the largest value, with ticks at round steps.

A chart is drawn in its own units (its viewBox) and takes the width its container gives it: the page's CSS
lays charts out. A bar or point may link to what it counts (`links`, shaped as the figures: the list of
the leads behind a funnel step, say). A row label too long for its room is wrapped onto two lines, cut in
the middle if need be, kept distinct from the other rows' and whole in its <title>."""

from __future__ import annotations

import math
from collections.abc import Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Series colours, in order: the admin's blue, then colours told apart by colour-blind readers too.
COLOURS = ("#417690", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00")
MUTED = "#c4cfd6"
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 10, 22  # plot margins: value labels left, category labels below


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 5 x 10^n at or above `value` (1 for nothing to show)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power + 1e-9 * power:
            return float(step * power)
    return float(10 * power)  # pragma: no cover (the loop ends at 10)


def ticks(top: float) -> list[float]:
    """Axis ticks from 0 to `top` (a nice_ceiling) in 5, 4 or 2 equal steps, whichever step is itself a
    round figure (1, 2, 2.5 or 5 times a power of ten): 0-5 by 1, 0-20 by 5, 0-200 by 50."""
    for parts in (5, 4, 2):
        step = top / parts
        mantissa = step / 10 ** math.floor(math.log10(step))
        if any(math.isclose(mantissa, nice) for nice in (1, 2, 2.5, 5)):
            return [step * n for n in range(parts + 1)]
    return [0.0, top]


CHAR_WIDTH = 5.6  # an average character's width at the charts' 10 px font, in the chart's units
# One address (or None: not linked) per figure, shaped as the figures: per series for bar and line charts,
# per row for stacked bars.
Links = Sequence[Sequence[str | None]] | None


def _room(width: float) -> int:
    """How many characters `width` units hold at the charts' font."""
    return max(int(width // CHAR_WIDTH), 4)


def _cut_middle(text: str, room: int) -> str:
    """`text` in at most `room` characters, its middle dropped for an ellipsis: both ends stay readable
    (the end often tells names apart: "… of Phoenix", "… (346)")."""
    if len(text) <= room:
        return text
    head = room // 2
    tail = room - 1 - head
    return text[:head].rstrip() + "…" + (text[len(text) - tail :].lstrip() if tail > 0 else "")


def label_lines(text: str, width: float) -> list[str]:
    """`text` on one line, or on two broken at a space, in what `width` units hold; a second line still
    too long, or a first word longer than a line, is cut in the middle."""
    room = _room(width)
    if len(text) <= room:
        return [text]
    words = text.split(" ")
    for count in range(len(words) - 1, 0, -1):
        first = " ".join(words[:count])
        if len(first) <= room:
            return [first, _cut_middle(" ".join(words[count:]), room)]
    return [_cut_middle(text, room)]


def labels_distinct(texts: Sequence[str], width: float) -> list[list[str]]:
    """label_lines of each of `texts`, with different texts kept apart once fitted: those that would still
    read alike are numbered in their order (#1, #2), their full text being in the label's title."""
    fitted = [label_lines(text, width) for text in texts]
    alike: dict[tuple[str, ...], list[int]] = {}
    for index, lines in enumerate(fitted):
        alike.setdefault(tuple(lines), []).append(index)
    for indexes in alike.values():
        if len({texts[index] for index in indexes}) < 2:
            continue
        for number, index in enumerate(indexes, start=1):
            suffix = f" #{number}"
            lines = fitted[index]
            fitted[index] = [*lines[:-1], _cut_middle(lines[-1], _room(width) - len(suffix)) + suffix]
    return fitted


def _label(lines: Sequence[str], full: str, *, x: float, y: float, line_height: float = 10) -> str:
    """A row label of one or two lines (centred on `y`), with the full text as its title."""
    top = y - line_height * (len(lines) - 1) / 2
    spans = "".join(
        f'<tspan x="{x:.1f}" y="{top + line_height * number:.1f}">{escape(line)}</tspan>'
        for number, line in enumerate(lines)
    )
    return f'<text class="chart-label" text-anchor="end"><title>{escape(full)}</title>{spans}</text>'


def _link(markup: str, href: str | None) -> str:
    """`markup` (a bar, a point) as a link to `href`, or as it is without one."""
    return f'<a class="chart-link" href="{escape(href)}">{markup}</a>' if href else markup


def _link_of(links: Links, outer: int, inner: int) -> str | None:
    return links[outer][inner] if links is not None else None


def _number(value: float, decimals: int = 1) -> str:
    """A figure for a label: whole numbers with thousands separators, others to `decimals` decimals."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.{decimals}f}"


def _svg(label: str, width: int, height: int, body: list[str]) -> SafeString:
    return mark_safe(
        f'<svg class="chart" role="img" aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {width} {height}" width="100%" preserveAspectRatio="xMinYMin meet">'
        f"<title>{escape(label)}</title>{''.join(body)}</svg>"
    )


def _empty(label: str, width: int, height: int) -> SafeString:
    return _svg(
        label,
        width,
        height,
        [f'<text class="chart-empty" x="{width / 2:.1f}" y="{height / 2:.1f}" text-anchor="middle">No data yet</text>'],
    )


def _value_axis(top: float, plot_top: float, plot_bottom: float, left: float, right: float, unit: str) -> list[str]:
    """Horizontal grid lines at the ticks of `top`, labelled on the left."""
    parts = []
    for value in ticks(top):
        y = plot_bottom - (plot_bottom - plot_top) * value / top
        parts.append(f'<line class="chart-grid" x1="{left}" x2="{right:.1f}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(
            f'<text class="chart-tick" x="{left - 4}" y="{y + 3:.1f}" text-anchor="end">{_number(value)}{unit}</text>'
        )
    return parts


def _label_every(count: int, room: float, width_per_label: float = 34) -> int:
    """Show every n-th category label so that they do not overlap."""
    return max(1, math.ceil(count * width_per_label / room)) if room > 0 else 1


def bar_chart(
    label: str,
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    *,
    width: int = 560,
    height: int = 200,
    unit: str = "",
    top: float | None = None,
    compare: bool = False,
    links: Links = None,
) -> SafeString:
    """Vertical bars: one group per category, one bar per series in each group. With `compare`, the series
    after the first are earlier figures of the same thing (a histogram of the previous run beside this
    one's) and are drawn muted. `top` fixes the axis (100 for percentages); else it is rounded up."""
    values = [value for _, numbers in series for value in numbers]
    if not categories or not series or not any(values):
        return _empty(label, width, height)
    top = top or nice_ceiling(max(values))
    plot_left, plot_right, plot_top, plot_bottom = LEFT, width - RIGHT, TOP, height - BOTTOM
    group = (plot_right - plot_left) / len(categories)
    bar = group * 0.8 / len(series)
    body = _value_axis(top, plot_top, plot_bottom, plot_left, plot_right, unit)
    every = _label_every(len(categories), plot_right - plot_left)
    for index, category in enumerate(categories):
        x0 = plot_left + group * index + group * 0.1
        for number, (name, numbers) in enumerate(series):
            value = numbers[index]
            bar_height = (plot_bottom - plot_top) * min(value, top) / top
            colour = MUTED if compare and number else COLOURS[number % len(COLOURS)]
            title = f"{category}: {_number(value)}{unit}" + (f" ({name})" if name else "")
            body.append(
                _link(
                    f'<rect class="chart-bar" x="{x0 + bar * number:.1f}" y="{plot_bottom - bar_height:.1f}" '
                    f'width="{max(bar - 1, 1):.1f}" height="{bar_height:.1f}" fill="{colour}">'
                    f"<title>{escape(title)}</title></rect>",
                    _link_of(links, number, index),
                )
            )
        if index % every == 0:
            body.append(
                f'<text class="chart-label" x="{x0 + group * 0.4:.1f}" y="{height - 6}" text-anchor="middle">'
                f"{escape(category)}</text>"
            )
    return _svg(label, width, height, body)


def line_chart(
    label: str,
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    *,
    width: int = 560,
    height: int = 200,
    decimals: int = 1,
    links: Links = None,
) -> SafeString:
    """One line per series over the categories (days), each point a circle with its figure (to `decimals`
    decimals: 3 for an AUC)."""
    values = [value for _, numbers in series for value in numbers]
    if not categories or not series or not any(values):
        return _empty(label, width, height)
    top = nice_ceiling(max(values))
    plot_left, plot_right, plot_top, plot_bottom = LEFT, width - RIGHT, TOP, height - BOTTOM
    step = (plot_right - plot_left) / max(len(categories) - 1, 1)
    body = _value_axis(top, plot_top, plot_bottom, plot_left, plot_right, "")

    def x_of(index: int) -> float:
        return plot_left + step * index if len(categories) > 1 else (plot_left + plot_right) / 2

    for number, (name, numbers) in enumerate(series):
        colour = COLOURS[number % len(COLOURS)]
        points = [(x_of(i), plot_bottom - (plot_bottom - plot_top) * value / top) for i, value in enumerate(numbers)]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        body.append(f'<polyline class="chart-line" points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for index, ((x, y), category, value) in enumerate(zip(points, categories, numbers, strict=True)):
            href = _link_of(links, number, index)
            body.append(
                _link(
                    f'<circle class="chart-point" cx="{x:.1f}" cy="{y:.1f}" r="{4 if href else 2.5}" fill="{colour}">'
                    f"<title>{escape(f'{category}: {_number(value, decimals)} {name}'.strip())}</title></circle>",
                    href,
                )
            )
    every = _label_every(len(categories), plot_right - plot_left, width_per_label=44)
    for index, category in enumerate(categories):
        if index % every == 0:
            body.append(
                f'<text class="chart-label" x="{x_of(index):.1f}" y="{height - 6}" text-anchor="middle">'
                f"{escape(category)}</text>"
            )
    return _svg(label, width, height, body)


def stacked_bars(
    label: str,
    rows: Sequence[tuple[str, Sequence[float]]],
    parts: Sequence[str],
    *,
    width: int = 560,
    row_height: int = 22,
    label_width: int = 110,
    unit: str = "",
    top: float | None = None,
    grouped: bool = False,
    links: Links = None,
) -> SafeString:
    """Horizontal bars, one per row, each cut into `parts` (e.g. owned and free ZIPs per trade). With one
    part it is a plain horizontal bar chart; `grouped` draws the parts as thin bars one under the other
    instead of end to end (rates that do not add up); `top` fixes the axis."""
    height = TOP + row_height * max(len(rows), 1) + BOTTOM
    totals = [max(values) if grouped else sum(values) for _, values in rows]
    if not rows or not any(totals):
        return _empty(label, width, height)
    top = top or nice_ceiling(max(totals))
    plot_left, plot_right = label_width, width - RIGHT - 40
    body = []
    for value in ticks(top):
        x = plot_left + (plot_right - plot_left) * value / top
        body.append(f'<line class="chart-grid" x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{height - BOTTOM}"/>')
        body.append(
            f'<text class="chart-tick" x="{x:.1f}" y="{height - 6}" text-anchor="middle">{_number(value)}{unit}</text>'
        )
    labels = labels_distinct([name for name, _ in rows], plot_left - 8)
    for index, (name, values) in enumerate(rows):
        y = TOP + row_height * index
        body.append(_label(labels[index], name, x=plot_left - 6, y=y + row_height * 0.65))
        x, thickness = float(plot_left), (row_height - 6) / (len(parts) if grouped else 1)
        for number, (part, value) in enumerate(zip(parts, values, strict=True)):
            bar_width = (plot_right - plot_left) * min(value, top) / top
            title = f"{name}: {_number(value)}{unit}" + (f" {part}" if part else "")
            bar_y = y + 3 + (thickness * number if grouped else 0)
            body.append(
                _link(
                    f'<rect class="chart-bar" x="{x:.1f}" y="{bar_y:.1f}" width="{bar_width:.1f}" '
                    f'height="{thickness:.1f}" fill="{COLOURS[number % len(COLOURS)]}">'
                    f"<title>{escape(title)}</title></rect>",
                    _link_of(links, index, number),
                )
            )
            if not grouped:
                x += bar_width
        if not grouped:
            body.append(
                f'<text class="chart-value" x="{x + 4:.1f}" y="{y + row_height * 0.65:.1f}">'
                f"{_number(sum(values))}{unit}</text>"
            )
    return _svg(label, width, height, body)


def legend(names: Sequence[str], *, muted_after_first: bool = False) -> SafeString:
    """The series' colours and names, as the charts above draw them."""
    items = []
    for number, name in enumerate(names):
        colour = "muted" if muted_after_first and number > 0 else number % len(COLOURS)
        # A class, not a style attribute: the pages' Content-Security-Policy refuses inline styles; the
        # classes in leadengine/static/leadengine/admin.css give COLOURS and MUTED.
        items.append(
            f'<span class="chart-key"><span class="chart-swatch chart-colour-{colour}"></span>{escape(name)}</span>'
        )
    return mark_safe(f'<p class="chart-legend">{"".join(items)}</p>')
