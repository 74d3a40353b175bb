"""A dependency-free SVG bar chart: one panel per scenario and layout, one horizontal bar per
server (corral highlighted), each labelled with its value and corral's ratio to it."""
from xml.sax.saxutils import escape

WIDTH, LABEL_W, BAR_W, ROW_H, TITLE_H, GAP = 960, 250, 470, 20, 26, 14
CORRAL, PEER, FAIL = "#d9480f", "#5c7cfa", "#adb5bd"


def chart(title, panels):
    """panels: [(title, unit, higher_better, [(label, value or None, is_corral, note)])]."""
    parts, y = [], 44
    for ptitle, unit, higher, rows in panels:
        arrow = "higher is better" if higher else "lower is better"
        parts.append(_text(12, y + 16, f"{ptitle} — {unit}, {arrow}", 14, weight="bold"))
        y += TITLE_H
        vals = [v for _, v, _, _ in rows if v is not None]
        top = max(vals) if vals else 1.0
        corral = next((v for _, v, c, _ in rows if c and v is not None), None)
        for label, value, is_corral, note in rows:
            parts.append(_text(LABEL_W - 8, y + 14, label, 12, anchor="end",
                               weight="bold" if is_corral else "normal"))
            if value is None:
                parts.append(_text(LABEL_W + 4, y + 14, note or "failed / skipped", 12, fill="#868e96"))
            else:
                w = max(1.0, BAR_W * value / top) if top > 0 else 1.0
                parts.append(f'<rect x="{LABEL_W}" y="{y + 3}" width="{w:.1f}" height="{ROW_H - 6}" '
                             f'fill="{CORRAL if is_corral else PEER}"/>')
                txt = _fmt(value)
                if corral is not None and not is_corral and value > 0:
                    txt += f"  (corral/this = {corral / value:.2f})"
                parts.append(_text(LABEL_W + w + 6, y + 14, txt, 12))
            y += ROW_H
        y += GAP
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{y + 10}" '
            f'viewBox="0 0 {WIDTH} {y + 10}" font-family="DejaVu Sans, Arial, sans-serif">'
            f'<rect width="100%" height="100%" fill="white"/>')
    return "\n".join([head, _text(12, 26, title, 17, weight="bold"), *parts, "</svg>\n"])


def _fmt(v):
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.2f}" if v < 10 else f"{v:.1f}"


def _text(x, y, s, size, anchor="start", weight="normal", fill="#212529"):
    return (f'<text x="{x}" y="{y}" font-size="{size}" text-anchor="{anchor}" font-weight="{weight}" '
            f'fill="{fill}">{escape(str(s))}</text>')
