#!/usr/bin/env python3
"""Helpers for bench/run (standard library only).

  report.py busy SECONDS       print how busy the machine is (% of all cores) over SECONDS
  report.py snap FILE          record CPU time per core and per process (from /proc) into FILE
  report.py render DIR         print the markdown results table from the files bench/run left in DIR
  report.py instructions REQUESTS BATCH BIN DIR [BIN_B DIR_B]
                               print bench/instructions' table from callgrind's per-thread files

CPU snapshots taken before and after each phase show how busy each core was and how much of
that was Weir, the mock and the load tool, and how much CPU other processes on the machine
used while the benchmark ran (the machine is shared).
"""

import json
import os
import sys

TICK = os.sysconf("SC_CLK_TCK")


def snap(path):
    cores = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                name, *v = line.split()
                v = [int(x) for x in v]
                idle = v[3] + v[4]  # idle + iowait
                # steal: time the hypervisor ran something else on this vCPU.
                cores[name] = {"total": sum(v[:8]), "idle": idle, "steal": v[7]}
    procs = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                s = f.read()
        except OSError:
            continue
        comm = s[s.index("(") + 1 : s.rindex(")")]
        rest = s[s.rindex(")") + 2 :].split()
        # utime, stime are fields 14 and 15 (1-based), i.e. rest[11], rest[12].
        procs[pid] = {"comm": comm, "cpu": int(rest[11]) + int(rest[12])}
    with open(path, "w") as f:
        json.dump({"cores": cores, "procs": procs}, f)


def load_kv(path):
    out = {}
    try:
        with open(path) as f:
            for line in f:
                k, sep, v = line.strip().partition("=")
                if sep:
                    out[k] = v
    except OSError:
        pass
    return out


def cpu_between(before_path, after_path, ours):
    """Per-core busy %, CPU % of our processes, and the busiest other processes."""
    with open(before_path) as f:
        a = json.load(f)
    with open(after_path) as f:
        b = json.load(f)
    cores = {}
    stolen = {}
    wall = None
    for name, cb in b["cores"].items():
        ca = a["cores"].get(name)
        if not ca:
            continue
        total = cb["total"] - ca["total"]
        idle = cb["idle"] - ca["idle"]
        steal = cb.get("steal", 0) - ca.get("steal", 0)
        cores[name] = 100.0 * (total - idle - steal) / total if total else 0.0
        stolen[name] = 100.0 * steal / total if total else 0.0
        wall = total / TICK if wall is None else wall
    mine = {}
    others = []
    for pid, pb in b["procs"].items():
        pa = a["procs"].get(pid)
        used = (pb["cpu"] - (pa["cpu"] if pa else 0)) / TICK
        if pid in ours:
            mine[ours[pid]] = used
        elif used > 0:
            others.append((used, pb["comm"], pid))
    others.sort(reverse=True)
    return cores, mine, others, wall or 0.0, stolen


def weir_cpu_per_request(d, phase, ours, requests, name="weir"):
    """CPU time Weir (or the process named `name`) used during a phase divided by the requests
    it completed, in µs."""
    bp, ap = os.path.join(d, f"{phase}.before"), os.path.join(d, f"{phase}.after")
    if not (os.path.exists(bp) and os.path.exists(ap)) or requests <= 0:
        return None
    _, mine, _, _, _ = cpu_between(bp, ap, ours)
    return 1e6 * mine.get(name, 0.0) / requests


# Over this much p99 added by Weir's core alone (the floor mock against the direct path), the
# report calls that core noisy.
FLOOR_NOISY_US = 200


def us(v):
    return f"{float(v):,.0f} µs"


def render(d):
    k = lambda name: load_kv(os.path.join(d, name))  # noqa: E731
    meta = k("meta.txt")
    rounds = int(meta.get("rounds", "0") or 0)
    # Phase (a) round by round: the paths measured in the same round, read once. A round counts
    # when both direct and Weir have figures; floor and B (WEIR_BIN_B) may be missing ({}).
    a_rounds = [
        {p: k(f"a_{p}.{r}.kv") for p in ("direct", "weir", "floor", "weirb")}
        for r in range(1, rounds + 1)
    ]
    a_rounds = [x for x in a_rounds if x["direct"] and x["weir"]]
    a_dirs = [x["direct"] for x in a_rounds]
    a_weirs = [x["weir"] for x in a_rounds]
    a_floors = [x["floor"] for x in a_rounds if x["floor"]]
    ab = [(x["direct"], x["weir"], x["weirb"]) for x in a_rounds if x["weirb"]]
    med = lambda v: sorted(v)[len(v) // 2]  # noqa: E731 (upper median)
    a_med = lambda kvs, key: med([float(x[key]) for x in kvs])  # noqa: E731
    b_dir, b_weir = k("b_direct.kv"), k("b_weir.kv")
    e_dir, e_weir = k("e_direct.kv"), k("e_weir.kv")
    c = k("c_ttfb.kv")
    mem = k("mem.kv")
    ours = {meta.get("weir_pid", ""): "weir", meta.get("mock_pid", ""): "mock",
            meta.get("floor_pid", ""): "floor mock", meta.get("weirb_pid", ""): "weir B"}
    ours.pop("", None)

    rows = []
    verdicts = []

    def row(figure, direct, weir, added, target="", met=""):
        rows.append(f"| {figure} | {direct} | {weir} | {added} | {target} | {met} |")

    def verdict(name, ok):
        verdicts.append((name, ok))
        return "**yes**" if ok else "**NO**"

    # (a) latency at one connection: rounds alternating direct and Weir; each figure is the
    # median over the rounds, "added" the median of each round's Weir minus direct.
    n_rounds = len(a_weirs)
    for p, tgt in (("50", 200), ("99", 1000)):
        key = f"p{p}_us"
        diffs = [float(w[key]) - float(dd[key]) for dd, w in zip(a_dirs, a_weirs)]
        added = med(diffs)
        row(
            f"(a) non-streaming, 1 connection, p{p} latency",
            us(a_med(a_dirs, key)),
            us(a_med(a_weirs, key)),
            f"**+{added:,.0f} µs** (rounds: {min(diffs):+,.0f} to {max(diffs):+,.0f})",
            f"added ≤ {tgt:,} µs",
            verdict(f"added latency p{p} ≤ {tgt} µs", added <= tgt),
        )
    row(
        "(a) … p99.9 / max",
        f"{us(a_med(a_dirs, 'p99_9_us'))} / {us(max(float(x['max_us']) for x in a_dirs))}",
        f"{us(a_med(a_weirs, 'p99_9_us'))} / {us(max(float(x['max_us']) for x in a_weirs))}",
        "",
        "",
        "",
    )
    # The noise floor of Weir's core: the same mock, run there, one connection from the load
    # core. Its excess over the direct path is what that core adds whatever runs on it.
    noisy = None
    if a_floors:
        f50, f99 = a_med(a_floors, "p50_us"), a_med(a_floors, "p99_us")
        excess = f99 - a_med(a_dirs, "p99_us")
        row(
            "(a) … floor: the mock itself on Weir's core, p50 / p99",
            f"{us(f50)} / {us(f99)}",
            "",
            f"p99 {excess:+,.0f} µs over direct",
            "",
            "",
        )
        if excess > FLOOR_NOISY_US:
            noisy = excess
        # What Weir adds over a trivial server on its own core (same core, same noise): for
        # information, the target is judged against the direct path.
        pairs = [(x["weir"], x["floor"]) for x in a_rounds if x["floor"]]
        for p in ("50", "99"):
            key = f"p{p}_us"
            over = [float(w[key]) - float(f[key]) for w, f in pairs]
            row(
                f"(a) … p{p} through Weir minus the floor's, same round",
                "",
                "",
                f"+{med(over):,.0f} µs (rounds: {min(over):+,.0f} to {max(over):+,.0f})",
                "(information)",
                "",
            )
    # B against A, round by round (the same conditions for both).
    for p in ("50", "99"):
        if not ab:
            break
        key = f"p{p}_us"
        added_b = [float(b[key]) - float(dd[key]) for dd, _, b in ab]
        b_minus_a = [float(b[key]) - float(w[key]) for _, w, b in ab]
        row(
            f"(a) … **B** (WEIR_BIN_B), p{p} latency",
            "",
            us(med([float(b[key]) for _, _, b in ab])),
            f"+{med(added_b):,.0f} µs; B − A {med(b_minus_a):+,.0f} µs "
            f"(rounds: {min(b_minus_a):+,.0f} to {max(b_minus_a):+,.0f})",
            "(comparison)",
            "",
        )
    # Nagle + delayed ACK on a reused connection delays every request by ~40 ms, so it shows
    # in the median; rarer slow requests have other causes (the CPU table, the README).
    slow = lambda kvs: max(float(x.get("slow35_pct", 0)) for x in kvs)  # noqa: E731
    row(
        "(a) … TCP_NODELAY check: requests ≥ 35 ms",
        f"{slow(a_dirs):.2f}%",
        f"{slow(a_weirs):.2f}%",
        "",
        "p50 far below 40 ms",
        verdict("no Nagle stall (p50 < 20 ms at 1 connection)", a_med(a_weirs, "p50_us") < 20000),
    )
    total = lambda kvs, key: sum(int(x[key]) for x in kvs)  # noqa: E731
    row(
        f"(a) … requests completed (errors), {n_rounds} rounds",
        f"{total(a_dirs, 'requests'):,} ({total(a_dirs, 'errors')})",
        f"{total(a_weirs, 'requests'):,} ({total(a_weirs, 'errors')})",
        "",
        "",
        "",
    )
    # (b) throughput at 50 connections.
    conns = meta.get("conns", "50")
    row(
        f"(b) non-streaming, {conns} connections, throughput",
        f"{float(b_dir['rps']):,.0f} req/s",
        f"**{float(b_weir['rps']):,.0f} req/s**",
        "",
        "≥ 8,000 req/s via Weir",
        verdict("≥ 8,000 req/s", float(b_weir["rps"]) >= 8000),
    )
    row(
        "(b) … p50 / p99 latency",
        f"{us(b_dir['p50_us'])} / {us(b_dir['p99_us'])}",
        f"{us(b_weir['p50_us'])} / {us(b_weir['p99_us'])}",
        "",
        "",
        "",
    )
    cpu = weir_cpu_per_request(d, "b_weir", ours, int(b_weir["requests"]))
    if cpu is not None:
        row("(b) … Weir CPU time per request", "", f"{cpu:,.0f} µs", "", "", "")
    b_weirb = k("b_weirb.kv")
    if b_weirb:
        cpu_b = weir_cpu_per_request(d, "b_weirb", ours, int(b_weirb["requests"]), "weir B")
        row(
            "(b) … **B** (WEIR_BIN_B): throughput, p50 / p99, CPU per request",
            "",
            f"{float(b_weirb['rps']):,.0f} req/s",
            f"{us(b_weirb['p50_us'])} / {us(b_weirb['p99_us'])}"
            + (f"; {cpu_b:,.0f} µs CPU" if cpu_b is not None else ""),
            "(comparison)",
            "",
        )
    row(
        "(b) … requests (errors)",
        f"{int(b_dir['requests']):,} ({b_dir['errors']})",
        f"{int(b_weir['requests']):,} ({b_weir['errors']})",
        "",
        "",
        "",
    )
    # (c) streaming time to first byte.
    words = c.get("words", "?")
    for what, label in (("data", "first `data:` line"), ("head", "first response byte")):
        for p in ("50", "99"):
            dv = float(c[f"direct_{what}_p{p}_us"])
            wv = float(c[f"weir_{what}_p{p}_us"])
            added = wv - dv
            tgt, met = "", ""
            if what == "data" and p == "50":
                tgt = "added ≤ 500 µs"
                met = verdict("streaming TTFB added ≤ 500 µs", added <= 500)
            row(
                f"(c) streaming ({words} words), 1 connection, {label} p{p}",
                us(dv),
                us(wv),
                f"**+{added:,.0f} µs**" if met else f"+{added:,.0f} µs",
                tgt,
                met,
            )
    row(
        f"(c) … whole {words}-word stream p50",
        us(c["direct_total_p50_us"]),
        us(c["weir_total_p50_us"]),
        f"+{float(c['weir_total_p50_us']) - float(c['direct_total_p50_us']):,.0f} µs",
        "",
        "",
    )
    row(
        "(c) … streams measured per target (errors)",
        c.get("direct_n", "?"),
        c.get("weir_n", "?"),
        "",
        "",
        f"({c.get('errors', '?')} errors)",
    )
    if e_weir:
        row(
            f"(e) streaming ({words} words), {conns} connections, throughput",
            f"{float(e_dir['rps']):,.0f} streams/s",
            f"{float(e_weir['rps']):,.0f} streams/s",
            "",
            "(information)",
            "",
        )
    # (d) memory.
    row(
        "(d) Weir peak RSS (VmHWM) at the end",
        "",
        f"**{int(mem['vmhwm_kb']) / 1024:,.1f} MiB**",
        "",
        f"(after start-up: {int(mem['start_vmhwm_kb']) / 1024:,.1f} MiB)",
        "",
    )
    # (f) /v1/messages at one connection, alternating with the mock's own /v1/messages: the
    # relayed path (Anthropic upstream) and the translated one (OpenAI upstream).
    f_rounds = [
        {p: k(f"f_{p}.{r}.kv") for p in ("direct", "relay", "translate")}
        for r in range(1, rounds + 1)
    ]
    f_rounds = [x for x in f_rounds if all(x.values())]
    for path, label in (("relay", "Anthropic upstream, relayed"),
                        ("translate", "OpenAI upstream, translated")):
        if not f_rounds:
            break
        for p in ("50", "99"):
            key = f"p{p}_us"
            diffs = [float(x[path][key]) - float(x["direct"][key]) for x in f_rounds]
            row(
                f"(f) /v1/messages → {label}, 1 connection, p{p}",
                us(med([float(x["direct"][key]) for x in f_rounds])),
                us(med([float(x[path][key]) for x in f_rounds])),
                f"+{med(diffs):,.0f} µs (rounds: {min(diffs):+,.0f} to {max(diffs):+,.0f})",
                "(information)",
                "",
            )

    out = []
    out.append("# Weir load benchmark: results")
    out.append("")
    out.append(f"- When: {meta.get('date', '?')}; Weir commit `{meta.get('commit', '?')}`"
               f"{' (with uncommitted changes)' if meta.get('dirty') == '1' else ''}")
    if meta.get("binary"):
        out.append(f"- Binary: `{meta['binary']}`, given by WEIR_BIN: the commit above is the "
                   "checkout's, which that binary may not be built from")
    if meta.get("binary_b"):
        out.append(f"- Binary B, compared in (a) and (b): `{meta['binary_b']}` (WEIR_BIN_B)")
    out.append(f"- Machine: {meta.get('cpu', '?')}, {meta.get('ncpu', '?')} cores; "
               f"Weir pinned to core {meta.get('weir_core')}, mock and load tools to core "
               f"{meta.get('load_core')}; Weir's runtime sees 1 CPU (one tokio worker)")
    out.append(f"- Command: `{meta.get('command', 'bench/run')}`; "
               f"{meta.get('duration', '?')} s per wrk phase, {meta.get('wrk', 'wrk')}")
    hp = meta.get("halt_poll_ns", "")
    if hp and hp != "unavailable":
        out.append(f"- Idle vCPUs poll for {int(hp) // 1000} µs before halting during the run "
                   f"(guest_halt_poll_ns; the machine's setting was "
                   f"{meta.get('halt_poll_ns_before', '?')}; see bench/README.md)")
    if meta.get("weir_env", "").strip():
        out.append(f"- Weir settings from the environment: `{meta['weir_env'].strip()}`")
    if meta.get("floor_probe_excess_us"):
        out.append(f"- Before measuring, a trivial server on Weir's core had a p99 "
                   f"{int(meta['floor_probe_excess_us']):+,} µs against one on the load core "
                   f"(waited {meta.get('floor_waited', '0')} s for it to be within "
                   f"{FLOOR_NOISY_US} µs)")
    out.append(f"- Load average before: {meta.get('load_before', '?')}; after: "
               f"{meta.get('load_after', '?')}; machine {meta.get('busy_before', '?')}% busy "
               f"just before (waited {meta.get('quiet_waited', '0')} s for that)")
    out.append("")
    out.append("| Figure | Direct to mock | Through Weir | Added by Weir | Target | Met? |")
    out.append("|---|---|---|---|---|---|")
    out.extend(rows)
    out.append("")

    # CPU accounting per phase: shows the bottleneck and whether other work interfered.
    lines = []
    for phase, label in (
        ("a_weir", "(a) 1 conn, both paths alternating"),
        ("b_direct", f"(b) direct, {conns} conns"),
        ("b_weir", f"(b) via Weir, {conns} conns"),
        ("b_weirb", f"(b) via Weir B, {conns} conns"),
        ("c_ttfb", "(c) streaming TTFB"),
        ("e_weir", f"(e) streams via Weir, {conns} conns"),
    ):
        bp, ap = os.path.join(d, f"{phase}.before"), os.path.join(d, f"{phase}.after")
        if not (os.path.exists(bp) and os.path.exists(ap)):
            continue
        cores, mine, others, wall, stolen = cpu_between(bp, ap, ours)
        wall = wall or 1.0
        core_txt = ", ".join(
            f"{n[3:]}: {v:.0f}%" + (f" (stolen {stolen[n]:.0f}%)" if stolen.get(n, 0) >= 0.5 else "")
            for n, v in sorted(cores.items())
        )
        mine_txt = ", ".join(f"{n} {100 * v / wall:.0f}%" for n, v in sorted(mine.items()))
        rest = others
        tool_txt = ""
        tool = load_kv(os.path.join(d, f"{phase}.tool")).get("tool_cpu_s")
        if tool:
            name = "ttfb.py" if phase.startswith("c_") else "wrk"
            tool_txt = f"{name} {100 * sum(float(x) for x in tool.split()) / wall:.0f}%"
        other_cpu = sum(o[0] for o in rest)
        top = ", ".join(f"{o[1]} {100 * o[0] / wall:.0f}%" for o in rest[:3] if o[0] / wall >= 0.02)
        lines.append(
            f"| {label} | {core_txt} | {mine_txt}{', ' + tool_txt if tool_txt else ''} | "
            f"{100 * other_cpu / wall:.0f}%{' (' + top + ')' if top else ''} |"
        )
    if lines:
        out.append(
            "CPU during each phase (busy % of each core, and time the hypervisor took from it "
            "when over 0.5%; % of one core per process):"
        )
        out.append("")
        out.append("| Phase | Core busy | Weir / mock / load tool | Other processes |")
        out.append("|---|---|---|---|")
        out.extend(lines)
        out.append("")

    if noisy is not None:
        out.append(
            f"**Weir's core was noisy during (a):** a trivial server on it had a p99 "
            f"{noisy:,.0f} µs above the same server on the load core, so the p99 figures of (a) "
            f"measure the host more than Weir; run again when the host is quieter."
        )
        out.append("")
    missed = [n for n, ok in verdicts if not ok]
    if missed:
        out.append("Targets missed: " + "; ".join(missed) + ".")
    else:
        out.append("All targets met.")
    out.append("")
    out.append("Method and how to read this: bench/README.md.")
    print("\n".join(out))
    return 0


def busy(seconds):
    """Prints how busy the whole machine was over `seconds`, in % of all cores."""
    import time

    def read():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
        return sum(v), v[3] + v[4]

    t0, i0 = read()
    time.sleep(seconds)
    t1, i1 = read()
    print(f"{100.0 * ((t1 - t0) - (i1 - i0)) / max(1, t1 - t0):.0f}")


# What marks each of Weir's threads in its callgrind profile, checked in this order.
THREAD_KINDS = [
    ("committer", "weir_core::billing::committer::run"),
    ("checkpointer", "weir_core::writer::checkpoint"),
    ("request path", "multi_thread::worker"),
    ("request path", "sqlx_sqlite::connection::worker"),
]
KIND_ORDER = ["request path", "committer", "checkpointer", "other"]


def callgrind_threads(d):
    """Instructions per kind of thread, from the dump's per-thread files in directory d."""
    out = {k: 0 for k in KIND_ORDER}
    files = [f for f in os.listdir(d) if f.startswith("cg.out.") or f.startswith("cg.out-")]
    # The dump asked for by callgrind_control is part 1; the files written at exit (nothing
    # counted after instrumentation went off) are ignored.
    files = [f for f in files if ".1-" in f] or files
    for f in files:
        total, text = 0, []
        with open(os.path.join(d, f), errors="replace") as fh:
            for line in fh:
                if line.startswith("totals:"):
                    total = int(line.split()[1])
                elif line.startswith(("fn=", "cfn=")):
                    text.append(line)
        text = "".join(text)
        kind = next((k for k, mark in THREAD_KINDS if mark in text), "other")
        out[kind] += total
    return out


def instructions(argv):
    requests, batch = int(argv[0]), argv[1]
    runs = [(argv[i], callgrind_threads(argv[i + 1])) for i in range(2, len(argv), 2)]
    print("# Weir instructions per request (callgrind)\n")
    for name, (b, _) in zip("AB", runs):
        print(f"- {name}: `{b}`")
    print(f"- {requests} non-streaming chat completions through `demo/echo`, one at a time on one "
          f"kept-alive connection, after 300 not counted; settlement windows of {batch} requests "
          "(WEIR_SETTLE_BATCH); `bench/instructions`")
    print("- The checkpointer's share depends on time (it runs every 20 ms while the WAL "
          "grows), the others on the requests alone\n")
    head = "| Thread | " + " | ".join(f"{n}: instructions / request" for n in "AB"[: len(runs)])
    if len(runs) == 2:
        head += " | B − A"
    print(head + " |")
    print("|---" * (len(runs) + 1 + (len(runs) == 2)) + "|")
    for kind in KIND_ORDER + ["total"]:
        vals = [sum(c.values()) if kind == "total" else c[kind] for _, c in runs]
        per = [v / requests for v in vals]
        row = f"| {kind} | " + " | ".join(f"{p:,.0f}" for p in per)
        if len(runs) == 2:
            delta = per[1] - per[0]
            pct = f" ({delta / per[0]:+.1%})" if per[0] else ""
            row += f" | {delta:+,.0f}{pct}"
        print(row + " |")


def main():
    if len(sys.argv) >= 6 and sys.argv[1] == "instructions":
        return instructions(sys.argv[2:])
    if len(sys.argv) == 3 and sys.argv[1] == "busy":
        busy(float(sys.argv[2]))
        return 0
    if len(sys.argv) == 3 and sys.argv[1] == "snap":
        snap(sys.argv[2])
        return 0
    if len(sys.argv) == 3 and sys.argv[1] == "render":
        return render(sys.argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
