"""The cutover report: per migration the QEMU-reported downtime, packets lost, the longest gap
in echoes, the network blackout beyond the VM's own pause, TCP sessions survived, and the phase
timeline; medians per mode (cutover vs baseline) and their ratio. Rendered as text, JSON and an
SVG picture (echo arrivals over time, one panel per migration, with phase markers)."""
import json
import statistics


def summarize(results):
    modes = {}
    for r in results:
        modes.setdefault(r["mode"], []).append(r)
    summary = {}
    for mode, rs in modes.items():
        summary[mode] = {
            "migrations": len(rs),
            "median_lost": statistics.median(r["lost"] for r in rs),
            "median_max_gap_ms": statistics.median(r["max_gap_ms"] or 0 for r in rs),
            "median_downtime_ms": statistics.median(r["downtime_ms"] or 0 for r in rs),
            "median_beyond_pause_ms": statistics.median(r["beyond_pause_ms"] for r in rs),
            "tcp_survived": sum(r["tcp_survived"] for r in rs),
            "tcp_total": sum(r["tcp_sessions"] for r in rs),
        }
    if "cutover" in summary and "baseline" in summary:
        c, b = summary["cutover"], summary["baseline"]
        summary["baseline_over_cutover"] = {
            "lost": round(b["median_lost"] / c["median_lost"], 2) if c["median_lost"] else None,
            "beyond_pause": round(b["median_beyond_pause_ms"] / c["median_beyond_pause_ms"], 2)
            if c["median_beyond_pause_ms"] else None,
        }
    return summary


def text(results, summary):
    lines = ["", "CUTOVER REPORT", "",
             f"{'mode':<9} {'hop':<9} {'QEMU downtime':>13} {'lost':>6} {'max gap':>9} "
             f"{'beyond pause':>12} {'TCP':>7} {'dups':>5} {'GARPs':>5} {'HTTP':>5}"]
    for r in results:
        lines.append(f"{r['mode']:<9} {r['hop']:<9} {r['downtime_ms'] or 0:>10.0f} ms {r['lost']:>6} "
                     f"{r['max_gap_ms'] or 0:>6.0f} ms {r['beyond_pause_ms']:>9.0f} ms "
                     f"{r['tcp_survived']:>3}/{r['tcp_sessions']:<3} {r['duplicates']:>5} "
                     f"{'-' if r.get('garps') is None else r['garps']:>5} "
                     f"{'-' if r.get('http_ok') is None else ('ok' if r['http_ok'] else 'FAIL'):>5}")
    lines.append("")
    for mode, s in summary.items():
        if mode == "baseline_over_cutover":
            lines.append(f"baseline / cutover: packets lost x{s['lost']}, blackout beyond pause "
                         f"x{s['beyond_pause']}")
            continue
        lines.append(f"{mode}: median lost {s['median_lost']}, median max gap "
                     f"{s['median_max_gap_ms']:.0f} ms, median QEMU downtime "
                     f"{s['median_downtime_ms']:.0f} ms, median beyond pause "
                     f"{s['median_beyond_pause_ms']:.0f} ms, TCP {s['tcp_survived']}/{s['tcp_total']}")
    for r in results:
        if r["mode"] != "cutover" or not r.get("timeline"):
            continue
        t0 = min(r["timeline"].values())
        phases = ", ".join(f"{k} +{(v - t0) / 1000:.0f}" for k, v in
                           sorted(r["timeline"].items(), key=lambda kv: kv[1]))
        lines.append(f"timeline {r['hop']} (ms): {phases}")
    lines.append("")
    lines.append("GARPs = gratuitous ARP + RARP frames the destination agent sent in its paced "
                 "rounds at activation (- = not cutover's migration); HTTP = a new TCP connection to "
                 "the guest's web server from the client after the hop")
    lines.append("lost = UDP echoes missing at 1 kpps (both directions); beyond pause = max gap - "
                 "QEMU downtime; dups = echoes of frames delivered twice (frames the destination "
                 "delivered although the source had already consumed them)")
    return "\n".join(lines)


def svg(results, path):
    width, panel_h, pad = 900, 170, 40
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
           f'height="{panel_h * len(results) + pad}" font-family="sans-serif" font-size="11">']
    for i, r in enumerate(results):
        y0 = i * panel_h + 20
        echoes = r.get("echoes", [])
        if not echoes:
            continue
        tmax = max(t for t, _ in echoes) or 1
        smax = max(s for _, s in echoes) or 1
        sx = lambda t: pad + (width - 2 * pad) * t / tmax  # noqa: E731
        sy = lambda s: y0 + panel_h - 30 - (panel_h - 50) * s / smax  # noqa: E731
        out.append(f'<text x="{pad}" y="{y0 + 10}">{r["mode"]} {r["hop"]}: lost {r["lost"]}, '
                   f'max gap {r["max_gap_ms"]} ms, QEMU downtime {r["downtime_ms"]} ms</text>')
        out.append(f'<rect x="{pad}" y="{y0 + 15}" width="{width - 2 * pad}" height="{panel_h - 45}" '
                   'fill="none" stroke="#ccc"/>')
        pts = " ".join(f"{sx(t):.1f},{sy(s):.1f}" for t, s in echoes[::max(1, len(echoes) // 1500)])
        out.append(f'<polyline points="{pts}" fill="none" stroke="#1f77b4" stroke-width="1"/>')
        for name, at in (r.get("phases_s") or {}).items():
            if 0 <= at <= tmax:
                x = sx(at)
                out.append(f'<line x1="{x:.1f}" y1="{y0 + 15}" x2="{x:.1f}" y2="{y0 + panel_h - 30}" '
                           'stroke="#d62728" stroke-dasharray="3,3"/>')
                out.append(f'<text x="{x + 2:.1f}" y="{y0 + panel_h - 32}" fill="#d62728" '
                           f'font-size="9" transform="rotate(-90 {x + 2:.1f},{y0 + panel_h - 32})">{name}</text>')
        out.append(f'<text x="{pad}" y="{y0 + panel_h - 15}">0 s</text>'
                   f'<text x="{width - pad - 30}" y="{y0 + panel_h - 15}">{tmax:.1f} s</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out))


def storage_text(results, probes):
    lines = []
    if probes:
        lines.append("")
        lines.append("NVMe/TCP path probe (userspace, from the client's host):")
        for name, p in probes.items():
            detail = p.get("message") or ""
            if p.get("ok"):
                ns = p.get("namespaces", [])
                ana = ", ".join(f"group {g['group']} {g['state']}" for g in p.get("ana", []))
                detail = (f"{len(ns)} namespace(s), nguid {ns[0]['nguid'] if ns else '-'}, ANA {ana}, "
                          f"{p.get('elapsed_ms', 0):.0f} ms")
            lines.append(f"  {name:<12} {p.get('error')}: {detail}")
    io = [r for r in results if "io_stall_ms" in r]
    if io:
        lines.append("")
        lines.append("Storage through the migrations (in-guest NVMe/TCP volume, verified 4 KiB "
                     "write+read loop, host-side timestamps):")
        for r in io:
            lines.append(f"  {r['mode']:<9} {r['hop']:<9} I/O stall {r['io_stall_ms']:>7.1f} ms, "
                         f"{r['io_completed']} I/Os, {r['io_errors']} errors")
        lines.append(f"  median I/O stall {statistics.median(r['io_stall_ms'] for r in io):.1f} ms, "
                     f"{sum(r['io_errors'] for r in io)} I/O errors in all")
    return lines


def write(results, directory, probes=None):
    summary = summarize(results)
    slim = [{k: v for k, v in r.items() if k != "echoes"} for r in results]
    with open(f"{directory}/cutover-report.json", "w") as f:
        json.dump({"migrations": slim, "summary": summary, "storage_probe": probes}, f, indent=1)
    svg(results, f"{directory}/cutover-report.svg")
    return text(results, summary) + "\n".join([""] + storage_text(results, probes))
