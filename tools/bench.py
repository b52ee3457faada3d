#!/usr/bin/env python3
"""Benchmark jpegshrink next to Lepton, JPEG XL (lossless transcode) and zstd -19 on folders of JPEGs.

    python3 tools/bench.py /work/corpus/public /work/corpus/variants --markdown out.md --json out.json

For every codec, in its own worker processes: encode every file, decode every result, compare sha256
with the original; then the same again over N processes for all-cores throughput. Reports files
accepted, byte-exact round trips, saving over all files, 1-thread and N-process MB/s, peak RSS, jpegshrink
fallback reasons, per-subset savings and large-image speeds, as Markdown ready for BENCHMARKS.md.
The jpegshrink measured is the one of this checkout (the repository root is put first on sys.path).
See bench_report.py for the exact counting rules.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "plugins")]

from tqdm import tqdm  # noqa: E402

import bench_codecs  # noqa: E402
import bench_corpus  # noqa: E402
import bench_report  # noqa: E402
from bench_pool import CodecPool  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="*", type=Path, help="folders of JPEGs (not recursive)")
    p.add_argument("--files-from", type=Path, help="also measure the JPEG paths listed in this file")
    p.add_argument("--codecs", default=",".join(bench_codecs.DEFAULT_CODECS),
                   help=f"comma list of {', '.join(bench_codecs.CODECS)} or module:Class (default: %(default)s)")
    p.add_argument("--model", dest="model_id", help="jpegshrink model id (default: the library default)")
    p.add_argument("--heldout", default="",
                   help="comma-separated source packages a learned model never saw in training: their files "
                        "are reported as their own split, '<split> held-out'")
    p.add_argument("--subset-by", default="package,kind",
                   help="comma list of extra saving tables: package, kind, split, coding (default: %(default)s)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="processes for the all-cores pass; 1 skips it (default: nproc = %(default)s)")
    p.add_argument("--limit", type=int, help="at most N files per folder, evenly spaced (quick runs)")
    p.add_argument("--timeout", type=float, default=600, help="seconds per file and operation (default 600)")
    p.add_argument("--markdown", type=Path, help="write the Markdown block here")
    p.add_argument("--json", type=Path, help="write per-file results and totals here")
    p.add_argument("--heading", default="Lossless compression", help="Markdown section heading")
    args = p.parse_args(argv)
    if not args.folders and not args.files_from:
        p.error("give at least one folder or --files-from")
    args.codecs = [c.strip() for c in args.codecs.split(",") if c.strip()]
    args.subset_by = [s.strip() for s in args.subset_by.split(",") if s.strip()]
    bad = [s for s in args.subset_by if s not in bench_report.SUBSET_ATTRS]
    if bad:
        p.error(f"--subset-by: unknown {bad}; choose from {', '.join(bench_report.SUBSET_ATTRS)}")
    return args


def _git(*cmd: str) -> str:
    try:
        return subprocess.run(["git", "-C", str(REPO), *cmd], capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine() -> dict[str, Any]:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": cpu, "nproc": os.cpu_count(), "mem_gib": round(mem, 1), "platform": platform.platform(),
            "python": platform.python_version()}


def meta(args: argparse.Namespace, argv: list[str], entries: list[bench_corpus.FileEntry],
         dropped: int) -> dict[str, Any]:
    """What a reader needs to reproduce or judge the numbers: command, corpus identity, machine, code."""
    manifests: dict[str, str] = {}
    for folder in sorted({Path(e.folder).resolve() for e in entries}):
        for m in bench_corpus.manifests_for(folder):
            manifests.setdefault(str(m), bench_corpus.sha256_file(m))
    manifests = dict(sorted(manifests.items(), key=lambda kv: (len(Path(kv[0]).parts), kv[0])))
    commit = _git("rev-parse", "--short=12", "HEAD") or "unknown"
    if _git("status", "--porcelain", "--untracked-files=no"):
        commit += "+uncommitted changes"
    return {
        "command": shlex.join(["python3", "tools/bench.py", *argv]),
        "date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "jpegshrink_commit": commit, "jpegshrink_path": str(REPO),
        "folders": [str(f) for f in args.folders], "manifests": manifests,
        "duplicates_dropped": dropped, "limit": args.limit, "machine": machine(),
    }


def warmup_files(entries: list[bench_corpus.FileEntry], limit: int = 10) -> list[str]:
    """The smallest file (of at least 2 KB) of each coding / components / restart kind in the set.

    Each worker runs these once, untimed, so JIT compilation or cache loading of every code path
    (baseline, progressive, restarts, gray, ...) and model loading stay out of the per-file timings.
    """
    best: dict[tuple[str, str, bool], bench_corpus.FileEntry] = {}
    for e in sorted(entries, key=lambda e: (e.bytes < 2048, e.bytes)):
        best.setdefault((e.coding, e.components, e.restart_interval != "0"), e)
    return [e.path for e in sorted(best.values(), key=lambda e: e.bytes)[:limit]]


def run_codec(spec: str, entries: list[bench_corpus.FileEntry], args: argparse.Namespace,
              warmup: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Measure one codec: a 1-process pass (sizes, exactness, 1-thread speed, RSS), then N processes."""
    name = bench_codecs.display_name(spec)
    recs: list[dict[str, Any]] = [{} for _ in entries]
    info: dict[str, Any] = {"spec": spec, "warmup_files": warmup}
    try:
        with CodecPool(spec, 1, args.timeout, args.model_id, warmup) as pool:
            blobs = _encode_phase(pool, entries, recs, f"{name} encode 1T", single=True)
            _decode_phase(pool, entries, recs, blobs, f"{name} decode 1T", single=True)
            info.update(pool.info, peak_rss_kib=pool.peak_rss_kib, worker_restarts=pool.restarts)
    except RuntimeError as e:  # the codec cannot even start (missing library, bad plug-in)
        info["unavailable"] = str(e)
        print(f"WARNING: {e}", file=sys.stderr)
        return info, recs
    if args.workers > 1:
        try:
            info["parallel"] = _parallel_pass(spec, name, entries, recs, args, warmup)
        except RuntimeError as e:
            info["parallel"] = {"error": str(e)}
            print(f"WARNING: {name} all-cores pass: {e}", file=sys.stderr)
    return info, recs


def _parallel_pass(spec: str, name: str, entries: list[bench_corpus.FileEntry], recs: list[dict[str, Any]],
                   args: argparse.Namespace, warmup: list[str]) -> dict[str, Any]:
    """All-cores throughput: N single-threaded worker processes; also checks outputs match the 1T pass."""
    with CodecPool(spec, args.workers, args.timeout, args.model_id, warmup) as pool:
        t0 = time.perf_counter()
        blobs = _encode_phase(pool, entries, recs, f"{name} encode {args.workers}P", single=False)
        t1 = time.perf_counter()
        _decode_phase(pool, entries, recs, blobs, f"{name} decode {args.workers}P", single=False)
        t2 = time.perf_counter()
    acc_mb = sum(e.bytes for e, r in zip(entries, recs) if r.get("parallel_accepted")) / bench_report.MB
    ok_mb = sum(e.bytes for e, r in zip(entries, recs) if r.get("parallel_exact")) / bench_report.MB
    return {"workers": args.workers, "enc_wall_s": t1 - t0, "dec_wall_s": t2 - t1,
            "enc_mbps": acc_mb / (t1 - t0), "dec_mbps": ok_mb / (t2 - t1) if t2 > t1 else None}


def _encode_phase(pool: CodecPool, entries: list[bench_corpus.FileEntry], recs: list[dict[str, Any]],
                  label: str, single: bool) -> dict[int, bytes]:
    blobs: dict[int, bytes] = {}
    bar = tqdm(total=sum(e.bytes for e in entries), desc=label, unit="B", unit_scale=True, leave=False)

    def on_result(i: int, res: dict[str, Any]) -> None:
        bar.update(entries[i].bytes)
        rec = recs[i]
        if "blob" not in res:
            if single:
                rec.update(accepted=False, exact=False, enc_error=res.get("error", "no result"))
            elif rec.get("accepted"):
                rec["parallel_differs"] = True  # failed here, succeeded in the 1-process pass
            return
        blob = res["blob"]
        blobs[i] = blob
        if single:
            rec.update(accepted=True, stored=len(blob), enc_s=res["wall"], enc_cpu_s=res["cpu"],
                       enc_thread_cpu_s=res["tcpu"], stored_sha256=hashlib.sha256(blob).hexdigest())
            for k in ("mode", "reason"):
                if k in res:
                    rec[k] = res[k]
        else:
            rec["parallel_accepted"] = True
            if rec.get("stored_sha256") != hashlib.sha256(blob).hexdigest():
                rec["parallel_differs"] = True  # same input, different output: nondeterministic encoder

    pool.run([("enc", i, e.path) for i, e in enumerate(entries)], on_result)
    bar.close()
    return blobs


def _decode_phase(pool: CodecPool, entries: list[bench_corpus.FileEntry], recs: list[dict[str, Any]],
                  blobs: dict[int, bytes], label: str, single: bool) -> None:
    bar = tqdm(total=sum(entries[i].bytes for i in blobs), desc=label, unit="B", unit_scale=True, leave=False)

    def on_result(i: int, res: dict[str, Any]) -> None:
        bar.update(entries[i].bytes)
        rec = recs[i]
        if not single:
            rec["parallel_exact"] = bool(res.get("exact"))
            if rec["parallel_exact"] != bool(rec.get("exact")):
                rec["parallel_differs"] = True
            return
        if "error" in res:
            rec.update(exact=False, dec_error=res["error"])
        else:
            rec.update(exact=res["exact"], dec_s=res["wall"], dec_cpu_s=res["cpu"], dec_thread_cpu_s=res["tcpu"],
                       mismatch=not res["exact"])
            if not res["exact"]:
                print(f"MISMATCH: {pool.spec} did not restore {entries[i].path} "
                      f"({res['out_len']} bytes, sha256 {res['out_sha256'][:16]}...)", file=sys.stderr)

    pool.run([("dec", i, (blobs[i], entries[i].sha256)) for i in sorted(blobs)], on_result)
    bar.close()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    paths = bench_corpus.collect(args.folders, args.files_from)
    entries, dropped = bench_corpus.describe(paths)
    if args.limit:
        keep = {str(p) for p in bench_corpus.evenly_spaced([Path(e.path) for e in entries], args.limit)}
        entries = [e for e in entries if e.path in keep]
    if not entries:
        raise SystemExit("no JPEG files found")
    heldout = {p for p in args.heldout.split(",") if p}
    for e in entries:
        if e.package in heldout:
            e.split = f"{e.split} held-out"
    print(f"{len(entries)} files ({sum(e.bytes for e in entries) / 1e6:.1f} MB), {len(dropped)} duplicates "
          f"dropped; classifying flat/photo...", file=sys.stderr)
    bench_corpus.classify(entries, args.workers)
    run: dict[str, Any] = {"meta": meta(args, argv, entries, len(dropped)), "workers": args.workers,
                           "codec_order": [], "codecs": {}}
    recs: dict[str, list[dict[str, Any]]] = {}
    warmup = run["warmup_files"] = warmup_files(entries)
    for spec in args.codecs:
        name = bench_codecs.display_name(spec)
        run["codec_order"].append(name)
        run["codecs"][name], recs[name] = run_codec(spec, entries, args, warmup)
    md = bench_report.markdown(run, entries, recs, args.subset_by, args.heading)
    all_idx = range(len(entries))
    run["summary"] = {c: bench_report.summarize(entries, recs[c], all_idx) for c in recs}
    run["summary_by_split"] = {
        split: {c: bench_report.summarize(entries, recs[c], idx) for c in recs}
        for split, idx in bench_report.groups_by(entries, "split").items()}
    run["files"] = [dict(e.to_json(), results={c: recs[c][i] for c in recs}) for i, e in enumerate(entries)]
    run["duplicates"] = dropped
    if args.json:
        args.json.write_text(json.dumps(run, indent=1, default=str))
    if args.markdown:
        args.markdown.write_text(md)
    print(md)
    ours = filter(bench_report.is_ours, recs)
    return 3 if any(run["summary"][c].get("mismatches") for c in ours) else 0  # a jpegshrink bug: fail loudly


if __name__ == "__main__":
    sys.exit(main())
