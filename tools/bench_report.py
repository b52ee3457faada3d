"""Totals and Markdown tables for tools/bench.py.

Counting rules (repeated in the table notes, because they decide the numbers):

* saving % = 1 - sum(stored) / sum(original) over ALL files of the group; a file the codec rejects,
  fails on, or does not give back byte-exact counts at its original size (a real store would verify
  and keep the original), so no codec gets credit for bytes it cannot restore;
* "accepted" = encode returned without error; "exact" = decode gave bytes with the original sha256;
  "MISMATCH" = decode returned different bytes (loud: for jpegshrink that is a bug);
* MB = 10^6 bytes of original JPEG. 1-thread MB/s = accepted (encode) or exact (decode) MB / the CPU
  seconds the worker process spent in the codec calls of those files: on this shared 2-core machine wall
  time mostly measures waiting for a core, CPU time does not (it equals the wall time on an idle core
  for a single-threaded codec; "off-thread CPU %" shows each codec really ran on the calling thread).
  Wall-time MB/s are given too. All-cores MB/s = the same MB / the wall time of the whole phase over N
  worker processes (includes scheduling and pipe transfer, and the other jobs on the machine).
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Any, Iterable

MB = 1e6
LARGE_MP = 8.0
TWELVE_MP = (10.0, 15.0)
FLAT_PCT = 14


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def summarize(entries: list[Any], recs: list[dict[str, Any]], idx: Iterable[int]) -> dict[str, Any]:
    """Totals of one codec over the files ``idx`` (positions in ``entries`` / ``recs``)."""
    idx = list(idx)
    orig = sum(entries[i].bytes for i in idx)
    s: dict[str, Any] = {"files": len(idx), "original_bytes": orig}
    acc = [i for i in idx if recs[i].get("accepted")]
    exact = [i for i in idx if recs[i].get("exact")]
    stored = sum(recs[i]["stored"] if recs[i].get("exact") else entries[i].bytes for i in idx)
    exact_orig = sum(entries[i].bytes for i in exact)
    exact_stored = sum(recs[i]["stored"] for i in exact)
    acc_mb, exact_mb = sum(entries[i].bytes for i in acc) / MB, exact_orig / MB
    acc_mp, exact_mp = sum(entries[i].megapixels or 0 for i in acc), sum(entries[i].megapixels or 0 for i in exact)
    enc_w, dec_w = sum(recs[i]["enc_s"] for i in acc), sum(recs[i]["dec_s"] for i in exact)
    enc_c, dec_c = sum(recs[i]["enc_cpu_s"] for i in acc), sum(recs[i]["dec_cpu_s"] for i in exact)
    enc_t = sum(recs[i]["enc_thread_cpu_s"] for i in acc)
    dec_t = sum(recs[i]["dec_thread_cpu_s"] for i in exact)
    s.update(
        accepted=len(acc), exact=len(exact),
        mismatches=sum(1 for i in idx if recs[i].get("mismatch")),
        not_exact=len(idx) - len(exact),
        stored_bytes=stored,
        saving_pct=100 * (1 - stored / orig) if orig else None,
        saving_exact_files_pct=100 * (1 - exact_stored / exact_orig) if exact_orig else None,
        enc_mbps_1t=_ratio(acc_mb, enc_c), dec_mbps_1t=_ratio(exact_mb, dec_c),
        enc_mpps_1t=_ratio(acc_mp, enc_c), dec_mpps_1t=_ratio(exact_mp, dec_c),
        enc_mbps_wall=_ratio(acc_mb, enc_w), dec_mbps_wall=_ratio(exact_mb, dec_w),
        enc_offthread_pct=_ratio(100 * max(0.0, enc_c - enc_t), enc_c),  # max: clock granularity
        dec_offthread_pct=_ratio(100 * max(0.0, dec_c - dec_t), dec_c),
        enc_cpu_per_wall=_ratio(enc_c, enc_w), dec_cpu_per_wall=_ratio(dec_c, dec_w),
        nondeterministic=sum(1 for i in idx if recs[i].get("parallel_differs")),
    )
    modes = Counter(recs[i]["mode"] for i in acc if recs[i].get("mode"))
    if modes:
        s["modes"] = dict(modes)
        s["fallback_reasons"] = dict(Counter(_reason_class(recs[i].get("reason", ""))
                                             for i in acc if recs[i].get("mode") == "fallback"))
    s["errors"] = dict(Counter(_error_class(recs[i]) for i in idx if not recs[i].get("exact")))
    return s


def _reason_class(reason: str) -> str:
    """'corrupt-jpeg:bad marker at 12345' -> 'corrupt-jpeg:bad marker at N' (groups similar reasons)."""
    return re.sub(r"\d{3,}", "N", reason)[:100] or "(none)"


def _error_class(rec: dict[str, Any]) -> str:
    """A short, groupable description of why a file was not stored byte-exact."""
    if not rec:
        return "not run (codec unavailable)"
    if rec.get("mismatch"):
        return "MISMATCH"
    err = rec.get("enc_error") or rec.get("dec_error") or "unknown"
    err = err.split(" at /")[0]  # Rust error traces append source paths
    where = "encode" if rec.get("enc_error") else "decode"
    return f"{where}: " + re.sub(r"\d{3,}", "N", err)[:110]


def _f(x: float | None, fmt: str = ".1f") -> str:
    return "—" if x is None else format(x, fmt)


def _saving_cell(s: dict[str, Any]) -> str:
    cell = _f(s["saving_pct"])
    notes = []
    if s["mismatches"]:
        notes.append(f"**{s['mismatches']} MISMATCH**")
    if s["not_exact"] - s["mismatches"]:
        notes.append(f"{s['not_exact'] - s['mismatches']} rej")
    return cell + (f" ({', '.join(notes)})" if notes else "")


def detail_table(codecs: list[str], sums: dict[str, dict[str, Any]], run: dict[str, Any],
                 overall: bool) -> list[str]:
    """One row per codec; the overall table adds all-cores speeds and peak RSS (whole-run figures)."""
    parallel = overall and run["workers"] > 1
    head = ["codec", "files", "accepted", "exact", "MISMATCH", "saving %", "saving % (exact files only)",
            "enc MB/s 1T", "dec MB/s 1T", "wall MB/s enc, dec", "off-thread CPU % enc, dec"]
    if parallel:
        head += [f"enc MB/s {run['workers']}P", f"dec MB/s {run['workers']}P"]
    if overall:
        head += ["peak RSS MiB (at start)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in codecs:
        s, r = sums[c], run["codecs"][c]
        if r.get("unavailable"):
            lines.append(f"| {c} | unavailable: {r['unavailable']} |" + " |" * (len(head) - 2))
            continue
        mism = f"**{s['mismatches']}**" if s["mismatches"] else "0"
        row = [c, str(s["files"]), str(s["accepted"]), str(s["exact"]), mism, _f(s["saving_pct"], ".2f"),
               _f(s["saving_exact_files_pct"], ".2f"), _f(s["enc_mbps_1t"], ".2f"), _f(s["dec_mbps_1t"], ".2f"),
               f"{_f(s['enc_mbps_wall'], '.2f')}, {_f(s['dec_mbps_wall'], '.2f')}",
               f"{_f(s['enc_offthread_pct'], '.0f')}, {_f(s['dec_offthread_pct'], '.0f')}"]
        if parallel:
            p = r.get("parallel") or {}
            row += [_f(p.get("enc_mbps"), ".2f"), _f(p.get("dec_mbps"), ".2f")]
        if overall:
            row.append(f"{r.get('peak_rss_kib', 0) / 1024:.0f} ({r.get('rss_init_kib', 0) / 1024:.0f})")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def subset_table(title: str, groups: dict[str, list[int]], codecs: list[str], entries: list[Any],
                 recs: dict[str, list[dict[str, Any]]]) -> list[str]:
    head = [title, "files", "MB"] + [f"{c} saving %" for c in codecs]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, idx in sorted(groups.items(), key=lambda kv: (-sum(entries[i].bytes for i in kv[1]), kv[0])):
        cells = [name, str(len(idx)), f"{sum(entries[i].bytes for i in idx) / MB:.2f}"]
        cells += [_saving_cell(summarize(entries, recs[c], idx)) for c in codecs]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def speed_table(idx: list[int], codecs: list[str], entries: list[Any],
                recs: dict[str, list[dict[str, Any]]]) -> list[str]:
    head = ["codec", "exact/files", "enc MB/s 1T", "dec MB/s 1T", "enc MP/s 1T", "dec MP/s 1T",
            "dec wall MB/s", "saving %"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in codecs:
        s = summarize(entries, recs[c], idx)
        cells = [c, f"{s['exact']}/{s['files']}"] + [_f(s[k], ".2f") for k in (
            "enc_mbps_1t", "dec_mbps_1t", "enc_mpps_1t", "dec_mpps_1t", "dec_mbps_wall", "saving_pct")]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def groups_by(entries: list[Any], attr: str) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for i, e in enumerate(entries):
        out.setdefault(str(getattr(e, attr)), []).append(i)
    return out


SUBSET_ATTRS = {"package": "package", "kind": "kind", "split": "split", "coding": "coding"}


def markdown(run: dict[str, Any], entries: list[Any], recs: dict[str, list[dict[str, Any]]],
             subset_by: list[str], heading: str) -> str:
    codecs = list(run["codec_order"])
    meta = run["meta"]
    total_mb = sum(e.bytes for e in entries) / MB
    out = [f"## {heading}", "",
           "Command (from the repository root):", "", "```", meta["command"], "```", "",
           f"- Date: {meta['date_utc']} UTC; jpegshrink commit `{meta['jpegshrink_commit']}`"
           f" ({meta['jpegshrink_path']}).",
           f"- Corpus: {', '.join(meta['folders']) or 'files from a list'}; {len(entries)} unique files, "
           f"{total_mb:.2f} MB after dropping {meta['duplicates_dropped']} sha256 duplicates"
           + (f"; --limit {meta['limit']} per folder" if meta.get("limit") else "") + ".",
           ]
    for m, sha in meta["manifests"].items():
        out.append(f"- Corpus identity: sha256({m}) = `{sha}`")
    out += [f"- Machine: {meta['machine']['cpu']}, nproc {meta['machine']['nproc']}, "
            f"{meta['machine']['mem_gib']} GiB RAM, {meta['machine']['platform']}, Python {meta['machine']['python']}."
            f" Shared with other jobs: speeds are indicative.",
            "- Codecs (each in its own worker processes; after the ';', how it is kept on one thread):"]
    for c in codecs:
        r = run["codecs"][c]
        out.append(f"  - **{c}**: {r.get('version', '?')}; {r.get('threads', '?')}")
    par = run["workers"] > 1
    for title, idx in [("All files", list(range(len(entries))))] + [
            (f"Split `{k}`", v) for k, v in sorted(groups_by(entries, "split").items())]:
        if not idx:
            continue
        mb = sum(entries[i].bytes for i in idx) / MB
        sums = {c: summarize(entries, recs[c], idx) for c in codecs}
        out += ["", f"### {title} ({len(idx)} files, {mb:.2f} MB)", ""]
        out += detail_table(codecs, sums, run, overall=title == "All files")
    for attr in subset_by:
        out += ["", f"### Saving by {attr}", ""]
        out += subset_table(attr, groups_by(entries, SUBSET_ATTRS[attr]), codecs, entries, recs)
    out += _large_photo_section(entries, codecs, recs)
    out += _errors_section(entries, codecs, recs)
    out += ["", "Notes:",
            "- saving % = 1 - sum(stored)/sum(original) over all files of the row. A file a codec rejects "
            "(raises), fails on, times out on, or does not give back byte-exact counts at its original size "
            "for that codec. \"rej\" counts such files; **MISMATCH** = decode returned different bytes.",
            "- \"saving % (exact files only)\" = the same over the files that codec restored byte-exact.",
            "- MB = 10^6 bytes of original JPEG. 1T = one worker process, each codec on one thread; "
            "1T MB/s = MB / CPU seconds of the worker in the codec calls (encode: accepted files, decode: exact "
            "files). On this shared machine wall time mostly measures waiting for a core; for a single-threaded "
            "codec CPU time is what the wall time would be on an idle core. \"off-thread CPU %\" = share of that "
            "CPU spent outside the calling thread (about 0 confirms one thread; a codec that still uses more threads "
            "is charged for all its CPU, so 1T MB/s stays its speed per core). \"wall MB/s\" = the same MB / "
            "wall seconds, as measured under the machine's load. "
            f"Each worker first runs an untimed warm-up on {len(run['warmup_files'])} small files (the smallest of "
            "each coding/components/restart kind: JIT compilation and model loading are not timed). "
            + (f"{run['workers']}P = {run['workers']} such worker processes at once, MB / wall time of "
               "the phase. " if par else "")
            + "Peak RSS = max resident set of the 1-thread worker process over the run (Python + codec library "
            "+ the file in hand); in brackets, its RSS right after importing the codec.",
            *(["- jpegshrink encode includes its verify-on-write decode (the library default)."]
              if any(is_ours(c) for c in codecs) else []),
            f"- kind: flat = over {FLAT_PCT:g}% of 8x8 luma blocks nearly uniform (max-min <= 2) after a Pillow "
            "decode (the corpus build's rule); photo = the rest; undecodable = Pillow failed.",
            ]
    return "\n".join(out) + "\n"


def _large_photo_section(entries: list[Any], codecs: list[str],
                         recs: dict[str, list[dict[str, Any]]]) -> list[str]:
    mp = [(e.megapixels or 0, i) for i, e in enumerate(entries)]
    large = [i for m, i in mp if m >= LARGE_MP]
    out = [""]
    if large:
        sizes = sorted(entries[i].megapixels for i in large)
        out += [f"### Speed on large images (>= {LARGE_MP:g} MP: {len(large)} files, "
                f"{sizes[0]:.1f}-{sizes[-1]:.1f} MP, {sum(entries[i].bytes for i in large) / MB:.1f} MB)", ""]
    else:
        large = [i for _, i in sorted(mp, reverse=True)[:5]]
        sizes = sorted(entries[i].megapixels or 0 for i in large)
        out += [f"### Speed on the largest images (none >= {LARGE_MP:g} MP here; the {len(large)} largest: "
                f"{sizes[0]:.2f}-{sizes[-1]:.2f} MP)", ""]
    out += speed_table(large, codecs, entries, recs)
    lo, hi = TWELVE_MP
    twelve = [i for m, i in mp if lo <= m <= hi]
    if twelve:
        out += ["", f"Around 12 MP ({lo:g}-{hi:g} MP: {len(twelve)} files, "
                f"{sum(entries[i].bytes for i in twelve) / MB:.1f} MB):", ""]
        out += speed_table(twelve, codecs, entries, recs)
        out += _target_line(twelve, codecs, entries, recs)
    return out


def _target_line(idx: list[int], codecs: list[str], entries: list[Any],
                 recs: dict[str, list[dict[str, Any]]]) -> list[str]:
    """jpegshrink's 1-thread decode speed as a fraction of single-thread Lepton's (``lepton1`` where it
    ran, else Lepton's default), against the floor for the default model: 0.5 x (issue 16)."""
    ref = next((c for c in ("lepton1", "lepton") if c in codecs), None)
    if ref is None:
        return []
    lepton = summarize(entries, recs[ref], idx)["dec_mbps_1t"]
    out = []
    for c in filter(is_ours, codecs):
        ours = summarize(entries, recs[c], idx)["dec_mbps_1t"]
        if ours and lepton:
            out += ["", f"{c} 1-thread decode on these files: {ours / lepton:.2f}x {ref}'s "
                        f"({ours:.2f} vs {lepton:.2f} MB/s; floor for the default model: 0.5x)."]
    return out


def is_ours(codec: str) -> bool:
    return codec.split("@")[0] == "jpegshrink"


def _errors_section(entries: list[Any], codecs: list[str], recs: dict[str, list[dict[str, Any]]]) -> list[str]:
    out = ["", "### Files not stored byte-exact, and jpegshrink fallbacks", ""]
    idx = list(range(len(entries)))
    for c in codecs:
        s = summarize(entries, recs[c], idx)
        errs = ", ".join(f"{k} x{v}" for k, v in sorted(s["errors"].items(), key=lambda kv: -kv[1]))
        out.append(f"- **{c}**: {s['not_exact']} of {s['files']} not exact" + (f": {errs}" if errs else ""))
        if s.get("modes"):
            out.append(f"  - modes: {', '.join(f'{k} x{v}' for k, v in sorted(s['modes'].items()))}")
            for k, v in sorted(s["fallback_reasons"].items(), key=lambda kv: -kv[1]):
                out.append(f"  - fallback reason `{k}` x{v}")
        bad = [entries[i].name for i in idx if recs[c][i].get("mismatch")]
        if bad:
            out.append(f"  - **MISMATCH files**: {', '.join(bad[:20])}" + (" ..." if len(bad) > 20 else ""))
        if s["nondeterministic"]:
            out.append(f"  - **{s['nondeterministic']} files stored differently in the parallel run**")
    return out
