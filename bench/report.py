"""The benchmark's verdicts against the targets, and its table."""

from __future__ import annotations

from typing import Any

# name, target, how it compares, what it is
TARGETS = [
    ("events_per_s_10k", 50_000, ">=", "end-to-end events/s, 10k accounts"),
    ("events_per_s_1m", 35_000, ">=", "end-to-end events/s, 1M accounts"),
    ("x_naive_faust", 25, ">=", "healthscore / naive faust"),
    ("x_quix", 2, ">=", "healthscore / Quix Streams"),
    # The strongest peer of the run, on the whole set (issue 17: twice the best of them).
    ("x_best_peer", 2, ">=", "healthscore / the best peer"),
    ("latency_p99_ms", 100, "<=", "p99 produce-to-alert ms at 5k events/s"),
    ("bytes_per_account", 4096, "<=", "Redis bytes per active account, 30-day windows"),
    ("silent_1m_seconds", 60, "<=", "seconds to rescore 1M silent accounts"),
]


def ratio(ours: dict[str, Any] | None, theirs: dict[str, Any] | None) -> float | None:
    """How many times ``theirs`` events/s ``ours`` is, when both measured something."""
    if not ours or not theirs or not theirs.get("events_per_s"):
        return None
    return float(ours["events_per_s"]) / float(theirs["events_per_s"])


def alert_share(run: dict[str, Any]) -> str:
    """Alerts per event: a tier change costs every contender more than an event."""
    return f"{100 * run['alerts'] / run['events']:.0f}% alerts" if run.get("events") else ""


def cpu(run: dict[str, Any]) -> str:
    """The contender process' CPU per event (runs from before did not measure it)."""
    us = run.get("cpu_us_per_event")
    return f", {us:,.0f} µs CPU/event" if us else ""


def best_peer(r: dict[str, Any]) -> str | None:
    """The peer with the most events/s over the whole set, among those that read it all."""
    done = {
        name: p
        for name, p in r.get("peers", {}).items()
        if p.get("events_per_s") and p["events"] == r["healthscore_10k"]["events"]
    }
    return max(done, key=lambda name: float(done[name]["events_per_s"])) if done else None


def peer_ratios(r: dict[str, Any]) -> dict[str, float | None]:
    """healthscore against each peer on the same events: Quix on the whole set, naive
    faust on the prefix run side by side. Results from before the side-by-side run
    compared naive faust's prefix with healthscore's whole set."""
    hs, peers, side = r["healthscore_10k"], r.get("peers", {}), r.get("side_by_side")
    naive = (
        ratio(side.get("healthscore"), side.get("naive-faust"))
        if side
        else ratio(hs, peers.get("naive-faust"))
    )
    best = best_peer(r)
    return {
        "x_naive_faust": naive,
        "x_quix": ratio(hs, peers.get("quix")),
        "x_best_peer": None if best is None else ratio(hs, peers[best]),
    }


def figures(r: dict[str, Any]) -> dict[str, float | None]:
    hs = r["healthscore_10k"]["events_per_s"]
    silent = r["silent"]
    return {
        "events_per_s_10k": hs,
        "events_per_s_1m": r["healthscore_1m"]["events_per_s"],
        "x_ceiling": hs / r["ceiling"]["events_per_s"],
        **peer_ratios(r),
        "latency_p50_ms": r["latency"]["p50_ms"],
        "latency_p99_ms": r["latency"]["p99_ms"],
        "bytes_per_account": r["memory"]["mean_bytes"],
        # Scaled to 1M when the run had fewer (--quick): the rate is what was measured.
        "silent_1m_seconds": 1_000_000 / silent["accounts"] * silent["seconds"]
        if silent["accounts"]
        else None,
    }


def targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    values = figures(r)
    verdicts = []
    for name, target, op, label in TARGETS:
        value = values[name]
        met = None if value is None else (value >= target if op == ">=" else value <= target)
        verdicts.append(
            {"name": name, "label": label, "value": value, "target": target, "op": op, "met": met}
        )
    return verdicts


def print_table(r: dict[str, Any]) -> None:
    hs10, hs1m, ceil = r["healthscore_10k"], r["healthscore_1m"], r["ceiling"]
    rows = [
        (
            f"ceiling: aiokafka consume + orjson decode{_warm(ceil)}",
            f"{ceil['events_per_s']:,.0f} ev/s",
            "",
        ),
        *_librdkafka(r, hs10, "ev/s"),
        (
            f"healthscore, 10k accounts ({hs10['events']:,} events)",
            f"{hs10['events_per_s']:,.0f} ev/s",
            f"{hs10['events_per_s'] / ceil['events_per_s']:.2f} x ceiling; {alert_share(hs10)}"
            f"{cpu(hs10)}",
        ),
    ]
    for name, peer in r.get("peers", {}).items():
        rows.append(
            (
                f"peer: {name} ({peer['events']:,} events)",
                f"{peer['events_per_s']:,.0f} ev/s",
                _against(hs10, peer),
            )
        )
    if best := best_peer(r):
        rows.append(("healthscore / the best peer", f"{figures(r)['x_best_peer']:.1f} x", best))
    side = r.get("side_by_side") or {}
    for name, run in side.items():
        if isinstance(run, dict):
            rows.append(
                (
                    f"side by side, first {side['events']:,}: {name} ({run['events']:,} events)",
                    f"{run['events_per_s']:,.0f} ev/s",
                    alert_share(run)
                    if run is side["healthscore"]
                    else _against(side["healthscore"], run),
                )
            )
    mem, silent = r["memory"], r["silent"]
    rows.append(("healthscore, 1M accounts", f"{hs1m['events_per_s']:,.0f} ev/s", ""))
    rows += [
        (
            f"latency at {lat['offered_per_s']:,.0f} ev/s offered",
            f"p50 {lat['p50_ms']:.0f} ms, p99 {lat['p99_ms']:.0f} ms",
            f"{lat['alerts']:,} alerts timed{_steady(lat)}",
        )
        for lat in (r["latency"], r.get("latency_light"))
        if lat
    ]
    rows += [
        (
            "Redis per active account",
            f"{mem['mean_bytes']:,.0f} B",
            f"p95 {mem['p95_bytes']:,.0f} B; {mem['mean_without_dedup_bytes']:,.0f} B once the "
            "dedup horizon passed",
        ),
        ("worker RSS, 10k run: start, 1/4, end", _mb(hs10), ""),
        ("worker RSS, 1M run: start, 1/4, end", _mb(hs1m), ""),
        (
            f"rescore {silent['accounts']:,} silent accounts",
            f"{silent['seconds']:.1f} s",
            f"{silent['accounts'] / silent['seconds']:,.0f} accounts/s"
            if silent["seconds"]
            else "",
        ),
    ]
    width = max(len(row[0]) for row in rows)
    for label, value, note in rows:
        print(f"{label:<{width}}  {value:>22}  {note}")
    print("\ntargets:")
    for t in r["targets"]:
        mark = {True: "met", False: "MISSED", None: "n/a"}[t["met"]]
        value = "n/a" if t["value"] is None else f"{t['value']:,.1f}"
        print(f"  {t['label']:<48} {value:>12}  target {t['op']} {t['target']:,}  {mark}")


def _against(ours: dict[str, Any], peer: dict[str, Any]) -> str:
    x = ratio(ours, peer)
    return (f"healthscore {x:.1f} x; " if x else "n/a; ") + alert_share(peer) + cpu(peer)


def _warm(ceil: dict[str, Any]) -> str:
    """How the ceiling was read (results from before read it once, cold)."""
    runs = ceil.get("runs_seconds")
    return f", median of {len(runs)} warm reads" if runs else ", one cold read"


def _mb(run: dict[str, Any]) -> str:
    sizes = (run["rss_start_bytes"], run.get("rss_quarter_bytes", 0), run["rss_end_bytes"])
    return " -> ".join(f"{size / 2**20:.0f}" for size in sizes) + " MiB"


def markdown(r: dict[str, Any]) -> str:
    """The README's table of the latest figures (``python -m bench.report``)."""
    verdict = {t["name"]: t for t in r["targets"]}

    def target(name: str) -> str:
        t = verdict[name]
        mark = {True: "met", False: "**missed**", None: "n/a"}[t["met"]]
        return f"{t['op']} {t['target']:,}: {mark}"

    hs10, hs1m, ceil = r["healthscore_10k"], r["healthscore_1m"], r["ceiling"]
    mem, silent, peers = r["memory"], r["silent"], r.get("peers", {})
    sizes = r["sizes"]
    values = figures(r)
    rows = [
        (
            f"healthscore end to end, {hs10['events']:,} events over {sizes['accounts_10k']:,} "
            f"accounts ({alert_share(hs10)})",
            f"{hs10['events_per_s']:,.0f} events/s{cpu(hs10)}",
            target("events_per_s_10k"),
        ),
        (
            f"ceiling: aiokafka consume + orjson decode, same events{_warm(ceil)}",
            f"{ceil['events_per_s']:,.0f} events/s (healthscore {100 * values['x_ceiling']:.1f}%)",
            "",
        ),
        *_librdkafka(r, hs10, "events/s"),
    ]
    side = r.get("side_by_side") or {}
    keys = {"naive-faust": "x_naive_faust", "quix": "x_quix"}
    for name, peer in peers.items():
        key = keys.get(name)
        rows.append(
            (
                f"peer {name}, {peer['events']:,} of the same events ({alert_share(peer)})",
                f"{peer['events_per_s']:,.0f} events/s"
                f"{cpu(peer)} (healthscore {_x(ratio(hs10, peer))})",
                target(key) if key and (key != "x_naive_faust" or not side) else "",
            )
        )
    if best := best_peer(r):
        rows.append(
            (
                f"healthscore against the best peer over the whole set ({best})",
                _x(values["x_best_peer"]),
                target("x_best_peer") if "x_best_peer" in verdict else "",
            )
        )
    for name, run in side.items():
        if isinstance(run, dict):
            rows.append(
                (
                    f"side by side, the first {side['events']:,} of those events: {name} "
                    f"({alert_share(run)})",
                    f"{run['events_per_s']:,.0f} events/s"
                    f"{cpu(run)}"
                    + (
                        ""
                        if name == "healthscore"
                        else f" (healthscore {_x(ratio(side['healthscore'], run))})"
                    ),
                    target("x_naive_faust") if name == "naive-faust" else "",
                )
            )
    rows += [
        (
            f"end to end, {hs1m['events']:,} accounts each once (a backfill: every event a "
            "first score and an alert)",
            f"{hs1m['events_per_s']:,.0f} events/s",
            target("events_per_s_1m"),
        ),
        *(
            (
                f"produce-to-alert latency, {lat['offered_per_s']:,.0f} events/s offered, "
                f"{lat['alerts']:,} alerts timed",
                f"p50 {lat['p50_ms']:,.0f} ms, p99 {lat['p99_ms']:,.0f} ms{_steady(lat)}",
                target("latency_p99_ms") if lat is r["latency"] else "",
            )
            for lat in (r["latency"], r.get("latency_light"))
            if lat
        ),
        (
            "Redis per account after the 10k run (MEMORY USAGE, 2,000 sampled)",
            f"{mem['mean_bytes']:,.0f} B (p95 {mem['p95_bytes']:,.0f}); "
            f"{mem['mean_without_dedup_bytes']:,.0f} B once the dedup horizon passed",
            target("bytes_per_account"),
        ),
        (
            "worker RSS at start, a quarter in, end: 10k run / 1M run",
            f"{_mb(hs10)} / {_mb(hs1m)}",
            "flat after warm-up",
        ),
        (
            f"rescoring {silent['accounts']:,} silent accounts (windows rolled)",
            f"{silent['seconds']:,.0f} s ({silent['accounts'] / silent['seconds']:,.0f}/s)",
            target("silent_1m_seconds"),
        ),
    ]
    lines = ["| measured | result | target |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def _x(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}x"


def _steady(lat: dict[str, Any]) -> str:
    """The percentiles once the worker holds its accounts (results from before lack them)."""
    if "steady_p99_ms" not in lat:
        return ""
    return (
        f"; after the first third: p50 {lat['steady_p50_ms']:,.0f} ms, "
        f"p99 {lat['steady_p99_ms']:,.0f} ms"
    )


def _librdkafka(r: dict[str, Any], hs10: dict[str, Any], unit: str) -> list[tuple[str, str, str]]:
    """The confluent-kafka ceiling's row (runs before it had none)."""
    ceil = r.get("ceiling_librdkafka")
    if not ceil:
        return []
    share = 100 * hs10["events_per_s"] / ceil["events_per_s"]
    return [
        (
            f"ceiling: confluent-kafka (librdkafka) consume + orjson decode, same events"
            f"{_warm(ceil)}",
            f"{ceil['events_per_s']:,.0f} {unit} (healthscore {share:.1f}%)",
            "",
        )
    ]


if __name__ == "__main__":
    import json
    from pathlib import Path

    print(markdown(json.loads((Path(__file__).parent / "results" / "latest.json").read_text())))
