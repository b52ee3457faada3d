"""Round-trip every file of a folder through every registered model, and fingerprint the coded streams.

Why: a change to the coders (e.g. the move from numba to the compiled core) must keep every model's
output byte for byte, or old archives stop decoding. Run this before and after such a change and
compare the two TSVs (``--compare OLD.tsv``): any stream hash that moved, any file that no longer
round-trips, and any exception is listed, and the exit status is 1.

Per file and model: ``compress`` (without its own verify step: the ``decompress`` that follows is
the check), ``decompress`` compared with the original, and the sha256 of the container's coefficient streams (independent of the container
format version) plus its mode and fallback reason.

    python3 tools/roundtrip_corpus.py /work/shared/extcorpus/files --out new.tsv [--compare old.tsv] \
        [--stride learned-6165e90d:8]
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jpegshrink  # noqa: E402
from jpegshrink import model as registry  # noqa: E402
from jpegshrink.coding import container  # noqa: E402

FIELDS = ["file", "model", "mode", "reason", "streams_sha256", "roundtrip", "seconds"]


def check_file(path: Path, model_id: str) -> dict[str, str]:
    data = path.read_bytes()
    t = time.perf_counter()
    try:
        blob = jpegshrink.compress(data, model_id=model_id, verify=False)
        c = container.unpack(blob)
        h = hashlib.sha256()
        for s in c.streams:
            h.update(len(s).to_bytes(8, "little") + s)
        ok = jpegshrink.decompress(blob) == data
        row = {"mode": c.mode.name.lower(), "reason": c.reason.split(":")[0], "streams_sha256": h.hexdigest()[:16],
               "roundtrip": "ok" if ok else "WRONG"}
    except Exception as e:  # a crash is a finding, not a reason to stop
        row = {"mode": "-", "reason": "-", "streams_sha256": "-", "roundtrip": f"CRASH:{type(e).__name__}:{e}"[:200]}
    row.update(file=str(path), model=model_id, seconds=f"{time.perf_counter() - t:.3f}")
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--models", help="comma-separated model ids (default: every registered one)")
    ap.add_argument("--stride", action="append", default=[], metavar="MODEL:N",
                    help="check MODEL on every N-th file only (for slow models; repeatable)")
    ap.add_argument("--compare", type=Path, help="an earlier output: report every row that differs")
    args = ap.parse_args()
    files = sorted(p for p in args.folder.rglob("*") if p.is_file())
    models = [m for m in args.models.split(",") if m] if args.models else registry.registered_ids()
    stride = {m: int(n) for m, n in (s.rsplit(":", 1) for s in args.stride)}
    rows = []
    t0 = time.perf_counter()
    with open(args.out, "w", newline="") as f:
        w = csv.DictWriter(f, FIELDS, delimiter="\t")
        w.writeheader()
        for i, path in enumerate(files):
            for m in models:
                if i % stride.get(m, 1):
                    continue
                row = check_file(path, m)
                rows.append(row)
                w.writerow(row)
            if (i + 1) % 100 == 0:
                f.flush()
                print(f"{i + 1}/{len(files)} files, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    bad = [r for r in rows if r["roundtrip"] != "ok"]
    print(f"{len(files)} files x {len(models)} models in {time.perf_counter() - t0:.0f} s: "
          f"{sum(r['roundtrip'] == 'WRONG' for r in rows)} wrong, "
          f"{sum(r['roundtrip'].startswith('CRASH') for r in rows)} crashes")
    for r in bad:
        print("  ", r["file"], r["model"], r["roundtrip"])
    moved = []
    if args.compare:
        with open(args.compare, newline="") as f:
            old = {(r["file"], r["model"]): r for r in csv.DictReader(f, delimiter="\t")}
        for r in rows:
            o = old.get((r["file"], r["model"]))
            if o is None or any(o[k] != r[k] for k in ("mode", "reason", "streams_sha256", "roundtrip")):
                moved.append((r, o))
        print(f"compared with {args.compare}: {len(moved)} of {len(rows)} rows differ "
              f"({sum(r['streams_sha256'] != '-' for r in rows)} stream fingerprints compared)")
        for r, o in moved[:50]:
            print("  ", r["file"], r["model"], "now", r["streams_sha256"], r["mode"], r["reason"], "was",
                  o and (o["streams_sha256"], o["mode"], o["reason"]))
    return 1 if bad or moved else 0


if __name__ == "__main__":
    sys.exit(main())
