#!/usr/bin/env python3
"""The demo's report: one self-contained HTML file (inline SVG and CSS, no script, nothing
fetched) from the samples demo_sampler.py wrote, the demo's event lines and hospital-a's
daemon log. One time axis for everything: throughput with each rotation and its QKD key_ID,
each CV-QKD link's estimated excess noise, SNR and secret key rate, the pools, the alarms,
and the demo's events (Eve arriving, the alarm, the reroute, fail closed, recovery).

    report.py SAMPLES EVENTS A_LOG OUT.html [TITLE]"""
import datetime, html, json, re, sys

samples_path, events_path, a_log, out = sys.argv[1:5]
title = sys.argv[5] if len(sys.argv) > 5 else "qshield demo"
samples = [json.loads(l) for l in open(samples_path) if l.strip()]
if not samples:
    sys.exit("report: no samples")
t0 = samples[0]["t"]
events = []
for line in open(events_path):
    t, _, label = line.strip().partition(" ")
    if t:
        events.append((float(t) - t0, label))


def log_time(line):
    return datetime.datetime.fromisoformat(line.split()[0].replace("Z", "+00:00")).timestamp() - t0


rotations, key = [], None
for line in open(a_log):
    m = re.search(r"QKD key delivered .*key_id=([0-9a-f-]+)", line)
    if m:
        key = m.group(1)
        continue
    m = re.search(r"session established .*epoch=(\d+).*qkd=(\w+)", line)
    if m:
        rotations.append((log_time(line), int(m.group(1)), key if m.group(2) == "true" else None))

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
W, H, L, R, T, B = 1100, 210, 70, 170, 24, 28
xmax = max(s["t"] for s in samples) - t0 or 1.0


def x(t):
    return L + (W - L - R) * t / xmax


def tick(v):
    """An axis label: whole numbers from 100 up, three significant digits below."""
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def chart(name, unit, series, alarms=(), marks=()):
    """series: [(label, [(t, v)])]; alarms: [(t_start, t_end, label)]; marks: [(t, text)]."""
    vals = [v for _, pts in series for _, v in pts if v is not None]
    top = max(vals) * 1.1 if vals and max(vals) > 0 else 1.0
    def y(v):
        return T + (H - T - B) * (1 - v / top)
    out = [f'<svg viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{html.escape(name)}">',
           f'<text x="{L}" y="15" class="title">{html.escape(name)} ({html.escape(unit)})</text>']
    for a0, a1, label in alarms:
        out.append(f'<rect x="{x(a0):.1f}" y="{T}" width="{max(x(a1) - x(a0), 1):.1f}" height="{H - T - B}" class="alarm">'
                   f'<title>{html.escape(label)}</title></rect>')
    for i in range(5):
        v = top * i / 4
        out.append(f'<line x1="{L}" x2="{W - R}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="grid"/>'
                   f'<text x="{L - 6}" y="{y(v) + 4:.1f}" class="tick" text-anchor="end">{tick(v)}</text>')
    step = max(10, round(xmax / 12 / 10) * 10)
    t = 0
    while t <= xmax:
        out.append(f'<text x="{x(t):.1f}" y="{H - 8}" class="tick" text-anchor="middle">{t:.0f} s</text>')
        t += step
    for i, (label, pts) in enumerate(series):
        path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in pts if v is not None)
        color = COLORS[i % len(COLORS)]
        if path:
            out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.6"/>')
        out.append(f'<text x="{W - R + 8}" y="{T + 14 * i + 10}" class="legend" fill="{color}">{html.escape(label)}</text>')
    for t, text in marks:
        out.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{H - B - 8}" y2="{H - B}" class="rot"><title>{html.escape(text)}</title></line>')
    for i, (t, label) in enumerate(events):
        # labels in four staggered rows, so close events stay readable
        out.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{T}" y2="{H - B}" class="event"/>'
                   f'<text x="{x(t) + 3:.1f}" y="{T + 10 + 11 * (i % 4)}" class="evlabel">{html.escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out)


# hospital-a's throughput from its byte counters
thr = []
prev = None
for s in samples:
    a = s.get("a")
    if not a or not a.get("peers"):
        continue
    sent = a["peers"][0]["total_bytes_sent"]
    if prev:
        dt = s["t"] - prev[0]
        if dt > 0:
            thr.append((s["t"] - t0, max(0, sent - prev[1]) * 8 / dt / 1e6))
    prev = (s["t"], sent)

# links, by their leader's side
links = {}
for s in samples:
    for node, doc in s["kmes"].items():
        for l in doc["links"]:
            if l["role"] != "leader":
                continue
            name = f'{doc["kme_id"].removeprefix("kme-")} → {l["peer"].removeprefix("kme-")}'
            c = l.get("cvqkd") or {}
            links.setdefault(name, []).append((s["t"] - t0, l["send_pool_bits"], c))
alarms = []
for name, pts in links.items():
    start = None
    for t, _, c in pts:
        if c.get("alarm") and start is None:
            start = (t, c["alarm"])
        elif not c.get("alarm") and start is not None:
            alarms.append((start[0], t, f"{name}: ALARM {start[1]}"))
            start = None
    if start is not None:
        alarms.append((start[0], xmax, f"{name}: ALARM {start[1]}"))


def link_series(key, scale=1.0):
    return [(name, [(t, (c.get(key) * scale) if c.get(key) is not None else None) for t, _, c in pts])
            for name, pts in links.items()]


marks = [(t, f"session {e}: " + (f"QKD key_ID {k}" if k else "no QKD key")) for t, e, k in rotations]
charts = [
    chart("hospital-a → hospital-b through the tunnel", "Mbit/s", [("sent by hospital-a", thr)], alarms, marks),
    chart("estimated excess noise ξ̂", "SNU", link_series("excess_noise_estimate_snu"), alarms),
    chart("estimated SNR", "ratio", link_series("snr"), alarms),
    chart("secret key rate since start", "kbit/s", link_series("secret_key_rate_bits_per_second", 1e-3), alarms),
    chart("pool the leader may send", "Mbit", [(n, [(t, p / 1e6) for t, p, _ in pts]) for n, pts in links.items()], alarms),
]
rot_rows = "\n".join(
    f"<tr><td>{t:.1f} s</td><td>{e}</td><td><code>{html.escape(k or 'none (no QKD key)')}</code></td></tr>"
    for t, e, k in rotations)
ev_rows = "\n".join(f"<tr><td>{t:.1f} s</td><td>{html.escape(l)}</td></tr>" for t, l in events)
page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }}
h1 {{ font-size: 20px; }} h2 {{ font-size: 16px; margin-top: 28px; }}
svg {{ display: block; margin: 8px 0 18px; background: #fafafa; border: 1px solid #ddd; }}
.title {{ font-size: 13px; font-weight: 600; }} .tick {{ font-size: 10px; fill: #666; }}
.legend {{ font-size: 11px; }} .grid {{ stroke: #e5e5e5; }} .alarm {{ fill: #d6272822; }}
.event {{ stroke: #444; stroke-dasharray: 4 3; }} .evlabel {{ font-size: 10px; fill: #444; }}
.rot {{ stroke: #2ca02c; stroke-width: 2; }}
table {{ border-collapse: collapse; }} td {{ padding: 2px 10px; border-bottom: 1px solid #eee; }}
.note {{ color: #666; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="note">{len(samples)} samples, one a second, over {xmax:.0f} s. Red bands: a link under alarm;
dashed lines: the demo's events; green ticks: rotations (hover for the QKD key_ID). Links are
simulated CV-QKD device pairs: NOT QKD-secured.</p>
{''.join(charts)}
<h2>Events</h2><table>{ev_rows}</table>
<h2>Rotations at hospital-a</h2><table><tr><td>time</td><td>session</td><td>QKD key_ID</td></tr>{rot_rows}</table>
</body></html>
"""
with open(out, "w") as f:
    f.write(page)
print(out)
