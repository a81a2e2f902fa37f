"""The cutover report: per migration the VM's actual pause (QEMU STOP -> RESUME), QEMU's reported
downtime, the UDP echoes lost at 1 kpps and where they died (at the pause or elsewhere; requests
that never reached the guest, replies lost on the way back, drops counted inside the guest), the
same for a second, faster stream, the longest gap in echoes and the blackout beyond the pause, TCP
sessions survived, duplicates, and the phase timeline; medians per mode (cutover-driven,
virsh-started, baseline) and the baseline/cutover ratio. Rendered as text, JSON and an SVG picture
(echo arrivals over time, one panel per migration, with phase markers)."""
import json
import statistics


def _median(rs, key):
    vals = [key(r) for r in rs if key(r) is not None]
    return statistics.median(vals) if vals else None


def prepared_before_pause(r):
    """The protocol's claim for this hop: every VTEP was prepared before the VM paused (None if
    the timeline does not say: the baseline, or a migration cutover only followed)."""
    t = r.get("timeline") or {}
    if "prepared" not in t or "source_paused" not in t:
        return None
    return t["prepared"] < t["source_paused"]


def summarize(results):
    modes = {}
    for r in results:
        modes.setdefault(r["mode"], []).append(r)
    summary = {}
    for mode, rs in modes.items():
        summary[mode] = {
            "migrations": len(rs),
            "median_lost": statistics.median(r["lost"] for r in rs),
            "lost_range": [min(r["lost"] for r in rs), max(r["lost"] for r in rs)],
            "median_lost_fast": _median(rs, lambda r: (r.get("fast") or {}).get("lost")),
            "fast_pps": (rs[0].get("fast") or {}).get("pps"),
            "median_max_gap_ms": statistics.median(r["max_gap_ms"] or 0 for r in rs),
            "median_pause_ms": _median(rs, lambda r: r.get("pause_ms")),
            "median_downtime_ms": statistics.median(r["downtime_ms"] or 0 for r in rs),
            "median_beyond_pause_ms": statistics.median(r["beyond_pause_ms"] for r in rs),
            "duplicates": sum(r["duplicates"] for r in rs),
            "tcp_survived": sum(r["tcp_survived"] for r in rs),
            "tcp_total": sum(r["tcp_sessions"] for r in rs),
            "prepared_late": sum(1 for r in rs if prepared_before_pause(r) is False),
            "median_resume_to_echo_ms": _median(
                rs, lambda r: (r.get("loss") or {}).get("resume_to_first_echo_ms")),
        }
        second = [r["second_nic"] for r in rs if r.get("second_nic")]
        if second:  # the two-NIC VM: each NIC's own figures
            summary[mode]["second_nic"] = {
                "network": second[0]["network"],
                "median_lost": statistics.median(n["lost"] for n in second),
                "lost_range": [min(n["lost"] for n in second), max(n["lost"] for n in second)],
                "duplicates": sum(n["duplicates"] for n in second),
                "tcp_survived": sum(n["tcp_survived"] for n in second),
                "tcp_total": sum(n["tcp_sessions"] for n in second),
            }
    if "baseline" in summary:
        b = summary["baseline"]
        for mode in ("cutover", "postcopy", "external"):
            if mode in summary:
                c = summary[mode]
                summary[f"baseline_over_{mode}"] = {
                    # (baseline + 1) / (cutover + 1): finite when cutover loses nothing.
                    "lost": round((b["median_lost"] + 1) / (c["median_lost"] + 1), 1),
                    "beyond_pause": round(b["median_beyond_pause_ms"] / c["median_beyond_pause_ms"], 2)
                    if c["median_beyond_pause_ms"] else None,
                }
    return summary


def _n(v, fmt="{}"):
    return "-" if v is None else fmt.format(v)


def text(results, summary):
    lines = ["", "CUTOVER REPORT", "",
             f"{'mode':<9} {'hop':<8} {'pause':>6} {'QEMU':>5} {'lost':>5} {'@pause':>6} "
             f"{'else':>5} {'req':>4} {'rep':>4} {'guest':>5} {'fast':>5} {'max gap':>8} "
             f"{'beyond':>7} {'TCP':>5} {'dups':>4} {'GARPs':>5} {'HTTP':>4} {'prep':>4}"]
    for r in results:
        w = r.get("loss") or {}
        n2 = r.get("second_nic")
        fast = r.get("fast") or {}
        prep = prepared_before_pause(r)
        lines.append(
            f"{r['mode']:<9} {r['hop']:<8} {_n(r.get('pause_ms'), '{:.0f}'):>6} "
            f"{r['downtime_ms'] or 0:>5.0f} {r['lost']:>5} {_n(w.get('at_pause')):>6} "
            f"{_n(w.get('elsewhere')):>5} {_n(w.get('requests')):>4} {_n(w.get('replies')):>4} "
            f"{_n(w.get('in_guest')):>5} {_n(fast.get('lost')):>5} "
            f"{r['max_gap_ms'] or 0:>5.0f} ms {r['beyond_pause_ms']:>4.0f} ms "
            f"{r['tcp_survived']:>2}/{r['tcp_sessions']:<2} {r['duplicates']:>4} "
            f"{'-' if r.get('garps') is None else r['garps']:>5} "
            f"{'-' if r.get('http_ok') is None else ('ok' if r['http_ok'] else 'FAIL'):>4} "
            f"{'-' if prep is None else ('ok' if prep else 'LATE'):>4}")
        if n2:
            lines.append(f"{'':<9} {'':<8} second NIC ({n2['network']}): lost {n2['lost']} at 1 kpps,"
                         f" max gap {n2['max_gap_ms'] or 0:.0f} ms, TCP {n2['tcp_survived']}/"
                         f"{n2['tcp_sessions']}, {n2['duplicates']} dups")
    lines.append("")
    for mode, s in summary.items():
        if mode.startswith("baseline_over_"):
            other = mode[len("baseline_over_"):]
            lines.append(f"baseline / {other}: (lost + 1) x{s['lost']}, blackout beyond pause "
                         f"x{_n(s['beyond_pause'])}")
            continue
        lines.append(
            f"{mode}: {s['migrations']} migrations, median lost {s['median_lost']} (range "
            f"{s['lost_range'][0]}-{s['lost_range'][1]}) at 1 kpps, {_n(s['median_lost_fast'])} at "
            f"{_n(s['fast_pps'])} pps; median pause {_n(s['median_pause_ms'], '{:.0f}')} ms (QEMU "
            f"downtime {s['median_downtime_ms']:.0f} ms), max gap {s['median_max_gap_ms']:.0f} ms, "
            f"beyond pause {s['median_beyond_pause_ms']:.0f} ms (resume to first echo "
            f"{_n(s['median_resume_to_echo_ms'], '{:.0f}')} ms); {s['duplicates']} duplicates; TCP "
            f"{s['tcp_survived']}/{s['tcp_total']}"
            + (f"; PREPARED AFTER THE PAUSE in {s['prepared_late']}" if s["prepared_late"] else ""))
        if s.get("second_nic"):
            n = s["second_nic"]
            lines.append(
                f"{mode}, the VM's second NIC (network {n['network']}, migrated with the first): "
                f"median lost {n['median_lost']} (range {n['lost_range'][0]}-{n['lost_range'][1]})"
                f" at 1 kpps; {n['duplicates']} duplicates; TCP {n['tcp_survived']}/{n['tcp_total']}")
    for r in results:
        if r["mode"] == "baseline" or not r.get("timeline"):
            continue
        t0 = min(r["timeline"].values())
        phases = ", ".join(f"{k} +{(v - t0) / 1000:.0f}" for k, v in
                           sorted(r["timeline"].items(), key=lambda kv: kv[1]))
        lines.append(f"timeline {r['mode']} {r['hop']} (ms): {phases}")
    lines.append("")
    lines.append("pause = the VM's actual pause, QEMU STOP on the source to RESUME on the destination "
                 "(QEMU's own event times); QEMU = the downtime QEMU reports")
    lines.append("lost = UDP echoes missing at 1 kpps; @pause = of those, requests sent during the "
                 "pause, else = the rest; req = requests that never reached the guest's socket, "
                 "rep = replies the guest sent that did not come back, guest = drops counted in the "
                 "guest (UDP InErrors: a full socket buffer, UDP's memory cap or a bad "
                 "checksum; eth0 rx_dropped); "
                 "fast = echoes lost by the second stream")
    lines.append("beyond = longest gap in echoes minus the pause; dups = echoes of frames delivered "
                 "twice; GARPs = the destination agent's announcement frames; HTTP = a new "
                 "connection to the guest afterwards; prep = every VTEP prepared before the pause")
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
        pause = (r.get("loss") or {}).get("pause_s")
        if pause:  # the VM's actual pause, QEMU STOP -> RESUME
            out.append(f'<rect x="{sx(pause[0]):.1f}" y="{y0 + 15}" width="{max(1.0, sx(pause[1]) - sx(pause[0])):.1f}" '
                       f'height="{panel_h - 45}" fill="#ff7f0e" fill-opacity="0.15"/>')
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
