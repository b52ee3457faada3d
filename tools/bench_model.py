"""Benchmark a coefficient model against Lepton on real JPEGs: bytes saved and MB/s.

For each file: coefficients from jpeglib (the oracle), the model's streams, plus zstd (level 9) of every
byte outside the entropy-coded segments (a stand-in for the JPEG layer's layout blob); against
``len(lepton_jpeg_python.compress_bytes(data))``. Prints a per-file table, the totals, the ratio of
savings (ours / Lepton's) and encode/decode speed in MB of JPEG per second (one thread, so per core).

    python3 tools/bench_model.py                    # 40 files spread over the packages of the public corpus
    python3 tools/bench_model.py --n 0              # every file of the public corpus
    python3 tools/bench_model.py --files a.jpg b.jpg
    python3 tools/bench_model.py --codec            # real containers: jpegshrink.compress/decompress

Files jpeglib or Lepton cannot read (arithmetic-coded, CMYK for Lepton) are listed and skipped.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jpegshrink import model as registry  # noqa: E402
from jpegshrink.model.base import ComponentSpec  # noqa: E402

CORPUS = Path("/work/corpus")


def pick_files(n: int) -> list[Path]:
    """``n`` public-corpus files, round-robin over source packages, each package in sha256 order
    (a fixed, content-independent spread; n <= 0 means all)."""
    with open(CORPUS / "MANIFEST.tsv", newline="") as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t") if r["split"] == "public"]
    by_pkg: dict[str, list[str]] = defaultdict(list)
    for r in sorted(rows, key=lambda r: r["sha256"]):
        by_pkg[r["source_package"]].append(r["name"])
    names: list[str] = []
    queues = [by_pkg[k] for k in sorted(by_pkg)]
    while any(queues) and (n <= 0 or len(names) < n):
        for q in queues:
            if q and (n <= 0 or len(names) < n):
                names.append(q.pop(0))
    return [CORPUS / "public" / name for name in names]


def non_scan_bytes(data: bytes) -> bytes:
    """Every byte outside entropy-coded segments (markers, headers, trailing data)."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        if data[i] != 0xFF or i + 1 >= n:
            out += data[i:]
            break
        marker = data[i + 1]
        if marker in (0xD8, 0xD9, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            out += data[i:i + 2]
            i += 2
            continue
        if i + 4 > n:
            out += data[i:]
            break
        seg_end = i + 2 + int.from_bytes(data[i + 2:i + 4], "big")
        out += data[i:seg_end]
        i = seg_end
        if marker == 0xDA:  # skip entropy-coded data up to the next real marker
            while True:
                i = data.find(b"\xff", i)
                if i < 0 or i + 1 >= n:
                    i = n
                    break
                if data[i + 1] != 0x00 and not 0xD0 <= data[i + 1] <= 0xD7:
                    break
                i += 2
    return bytes(out)


def coefficients(path: Path) -> tuple[list[np.ndarray], list[ComponentSpec]]:
    import jpeglib
    d = jpeglib.read_dct(str(path))
    planes = [d.Y] + ([d.Cb, d.Cr] if d.Cb is not None else [])
    if getattr(d, "K", None) is not None:
        planes.append(d.K)
    arrays, specs = [], []
    for i, p in enumerate(planes):
        a = np.ascontiguousarray(p.reshape(p.shape[0], p.shape[1], 64).astype(np.int16))
        q = np.asarray(d.qt[d.quant_tbl_no[i]]).reshape(64).astype(np.uint16)
        arrays.append(a)
        specs.append(ComponentSpec(a.shape[0], a.shape[1], 1, 1, q))
    return arrays, specs


def measure_model(model, path: Path, data: bytes, zc, warm: bool) -> tuple[int, float, float]:
    """Model streams + zstd of the non-scan bytes; encode and decode CPU seconds."""
    arrays, specs = coefficients(path)
    if not warm:  # first use: loads weights and touches the counter pages
        model.decode(model.encode(arrays, specs), specs)
    t0 = time.thread_time()
    streams = model.encode(arrays, specs)
    t1 = time.thread_time()
    out = model.decode(streams, specs)
    t2 = time.thread_time()
    if not all(np.array_equal(a, b) for a, b in zip(arrays, out)):
        raise SystemExit(f"{path}: round trip mismatch")
    return sum(map(len, streams)) + len(zc.compress(non_scan_bytes(data))), t1 - t0, t2 - t1


def measure_codec(data: bytes, model_id: str, warm: bool) -> tuple[int, float, float, str]:
    """Whole container size; compress (no verify) and decompress CPU seconds; fallback reason if any."""
    import jpegshrink
    if not warm:
        jpegshrink.decompress(jpegshrink.compress(data, model_id=model_id))
    t0 = time.thread_time()
    blob = jpegshrink.compress(data, model_id=model_id, verify=False)
    t1 = time.thread_time()
    out = jpegshrink.decompress(blob)
    t2 = time.thread_time()
    if out != data:
        raise SystemExit("container round trip mismatch")
    info = jpegshrink.inspect(blob)
    return len(blob), t1 - t0, t2 - t1, "" if info.mode == "jpeg" else f"{info.mode}:{info.reason[:30]}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=registry.DEFAULT_MODEL_ID)
    ap.add_argument("--n", type=int, default=40, help="files from the public corpus (0 = all)")
    ap.add_argument("--files", nargs="*", type=Path)
    ap.add_argument("--codec", action="store_true",
                    help="measure whole containers from jpegshrink.compress(verify=False) and decompress")
    ap.add_argument("--no-lepton", action="store_true")
    ap.add_argument("--quiet", action="store_true", help="totals only")
    args = ap.parse_args()

    import lepton_jpeg_python
    model = registry.get(args.model)
    if hasattr(model, "_threads"):
        model._threads = 1  # per-core speed
    files = args.files or pick_files(args.n)
    zc = zstandard.ZstdCompressor(level=9)
    tot = defaultdict(float)
    warm = False
    if not args.quiet:
        print(f"{'file':48s} {'jpeg':>9s} {'ours':>9s} {'lepton':>9s} {'save%':>6s} {'lep%':>6s}")
    for path in files:
        data = path.read_bytes()
        if args.codec:
            ours, t_enc, t_dec, note = measure_codec(data, args.model, warm)
        else:
            try:
                ours, t_enc, t_dec = measure_model(model, path, data, zc, warm)
                note = ""
            except Exception as e:  # noqa: BLE001 - report and skip what the oracle cannot read
                print(f"{path.name[:48]:48s} skipped (jpeglib: {e})")
                continue
        warm = True
        if args.no_lepton:
            lep = 0
        else:
            try:
                lep = len(lepton_jpeg_python.compress_bytes(data))
            except Exception as e:  # noqa: BLE001
                print(f"{path.name[:48]:48s} skipped (lepton: {str(e)[:40]})")
                continue
        tot["jpeg"] += len(data)
        tot["ours"] += ours
        tot["lep"] += lep
        tot["enc"] += t_enc
        tot["dec"] += t_dec
        tot["n"] += 1
        if not args.quiet:
            print(f"{path.name[:48]:48s} {len(data):9d} {ours:9d} {lep:9d} {100 * (1 - ours / len(data)):6.2f} "
                  f"{100 * (1 - lep / len(data)) if lep else 0:6.2f} {note}")
    save = 1 - tot["ours"] / tot["jpeg"]
    lsave = 1 - tot["lep"] / tot["jpeg"] if tot["lep"] else float("nan")
    mb = tot["jpeg"] / 1e6
    print(f"TOTAL {int(tot['n'])} files {int(tot['jpeg'])} B: ours {int(tot['ours'])} B ({100 * save:.2f}% saved), "
          f"lepton {int(tot['lep'])} B ({100 * lsave:.2f}% saved), ratio of savings {save / lsave:.3f}")
    what = "container (compress without verify / decompress)" if args.codec else "coefficient model"
    print(f"{what} speed, CPU time of the calling thread: encode {mb / tot['enc']:.2f} MB/s, "
          f"decode {mb / tot['dec']:.2f} MB/s "
          f"[model {model.model_id}; files sha {hashlib.sha256(''.join(p.name for p in files).encode()).hexdigest()[:8]}]")


if __name__ == "__main__":
    main()
