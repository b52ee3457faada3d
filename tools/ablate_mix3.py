"""Ablation of the mix3 model: what each part buys in bytes and costs in time.

Each variant switches one part off (kernel flags, see mix3.cpp ``Flags``; or no trained start; or one
stripe per image) and codes the same files; the table gives coefficient-stream bytes (what the model
decides; container overhead is the same for all) and single-thread encode time (decode is the same
work). The files are the held-out packages' JPEGs in the public corpus (every ``--step``-th).

    python3 tools/ablate_mix3.py --model mix3-XXXX --corpus /work/corpus/public --step 2 --markdown out.md
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from jpegshrink import jpeg  # noqa: E402
from jpegshrink.codec import component_specs as _specs  # noqa: E402
from jpegshrink.errors import JpegShrinkError  # noqa: E402
from jpegshrink.model import _mix3, get  # noqa: E402
from jpegshrink.model.mix3 import WEIGHTS_DIR, Mix3Model, read_weights  # noqa: E402
from train_priors import VAL_PACKAGES  # noqa: E402

F = _mix3.FLAGS
VARIANTS = [
    ("full model", {}),
    ("no DCT-domain N/W prediction (advPred slots and count context)", dict(flags=F["advpred"])),
    ("no intra-block rescaled neighbours", dict(flags=F["intra"])),
    ("no cross-channel contexts (luma->chroma, Cb->Cr, DC included)", dict(flags=F["cross"])),
    ("no zero-run / remaining-zeros slot", dict(flags=F["run"])),
    ("no SSE/APM stages", dict(flags=F["sse"])),
    ("no mixing: slot 0 only (one Lepton-class counter per decision) + SSE", dict(flags=F["mixer"])),
    ("no learned start (built-in mixer weights, fresh counters)", dict(untrained=True)),
    ("no partitioning (one stripe per image)", dict(striped=False)),
    ("plain stripes: each starts from the trained start (no seed band; seeded profiles only)", dict(seeded=False)),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--corpus", type=Path, default=Path("/work/corpus/public"))
    ap.add_argument("--step", type=int, default=1)
    ap.add_argument("--markdown", type=Path)
    args = ap.parse_args()
    files = sorted(p for p in args.corpus.glob("*.jp*g") if p.name.split("__")[0] in VAL_PACKAGES)[:: args.step]
    items = []
    for p in files:
        try:
            parts = jpeg.parse(p.read_bytes())
        except JpegShrinkError:
            continue
        items.append((parts.coefficients, _specs(parts.layout)))
    jpeg_bytes = sum(p.stat().st_size for p in files)
    l2 = get("learned2-c4d8c4e8")
    base_l2 = sum(sum(map(len, l2.encode(c, s))) for c, s in items)
    rows = []
    base = None
    weights = WEIGHTS_DIR / f"{args.model}.npz"
    profile = read_weights(weights)[2]
    for name, opt in VARIANTS:
        if "seeded" in opt and not profile.seed_fraction:
            continue
        untrained = opt.get("untrained", False)  # the built-in start, in the model's own profile
        m = Mix3Model(None if untrained else weights, threads=1, flags=opt.get("flags", 0),
                      striped=opt.get("striped", True), seeded=opt.get("seeded", True), model_id=args.model,
                      profile=profile if untrained else None)
        t = time.process_time()
        size = sum(sum(map(len, m.encode(c, s))) for c, s in items)
        dt = time.process_time() - t
        base = base or (size, dt)
        rows.append((name, size, dt))
        print(f"{name}: {size} bytes, {dt:.1f} CPU-s", flush=True)
    lines = [f"{len(items)} files of the held-out packages, {jpeg_bytes} JPEG bytes; learned2-c4d8c4e8 streams: "
             f"{base_l2} bytes.", "",
             "| variant | stream bytes | vs full model | vs learned2 | encode CPU-s | vs full model |",
             "|---|---|---|---|---|---|"]
    for name, size, dt in rows:
        lines.append(f"| {name} | {size:,} | {100 * (size / base[0] - 1):+.2f} % | "
                     f"{100 * (size / base_l2 - 1):+.2f} % | {dt:.1f} | {100 * (dt / base[1] - 1):+.0f} % |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        args.markdown.write_text(text)


if __name__ == "__main__":
    main()
