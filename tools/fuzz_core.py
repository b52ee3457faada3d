"""A longer hostile-input run than tests/test_jpeg_fuzz.py, meant for a sanitizer build of the compiled core.

Each input is a real JPEG (given folders, recursively) mutated at random: bit flips, truncation, a
random overwrite, an inserted marker segment, or several at once. It goes through ``jpeg.parse`` and,
when accepted, ``jpeg.rebuild`` (which must give the mutated bytes back exactly). Every ``--container-every``
inputs, a valid container of a small file (one per registered model) is damaged the same way and
decoded; the answer must be the original bytes or a :class:`~jpegshrink.errors.ContainerError`.
Anything else (another exception, a wrong answer) is a finding; under AddressSanitizer or UBSan a
memory error aborts the process, which is the finding the run is for.

    JPEGSHRINK_SANITIZE=1 python setup.py build_ext --inplace
    LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so)" ASAN_OPTIONS=detect_leaks=0 \\
        python3 tools/fuzz_core.py tests/data/sample /work/shared/extcorpus/files --inputs 5000
"""
from __future__ import annotations

import argparse
import collections
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jpegshrink  # noqa: E402
from jpegshrink import jpeg, model as registry  # noqa: E402
from jpegshrink.errors import ContainerError, CorruptJpeg, UnsupportedJpeg  # noqa: E402

MARKERS = [0xC0, 0xC2, 0xC4, 0xD0, 0xD7, 0xD8, 0xD9, 0xDA, 0xDB, 0xDD, 0xE1, 0xFE, 0x01, 0xC9, 0xFF, 0x00]


def mutate(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        kind = rng.choice(("flip", "truncate", "overwrite", "marker", "flip"))
        if not b:
            break
        if kind == "flip":
            for _ in range(rng.randint(1, 12)):
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        elif kind == "truncate":
            del b[rng.randrange(len(b)):]
        elif kind == "overwrite":
            at = rng.randrange(len(b))
            b[at:at + 16] = rng.randbytes(rng.randint(1, 16))
        else:
            at = rng.randrange(len(b) + 1)
            body = rng.randbytes(rng.randint(0, 40))
            b[at:at] = b"\xff" + bytes([rng.choice(MARKERS)]) + (len(body) + 2).to_bytes(2, "big") + body
    return bytes(b)


def check_jpeg(data: bytes) -> str:
    try:
        parts = jpeg.parse(data)
    except UnsupportedJpeg:
        return "parse: unsupported"
    except CorruptJpeg:
        return "parse: corrupt"
    try:
        out = jpeg.rebuild(parts)
    except CorruptJpeg:
        return "FINDING: an accepted file does not rebuild"
    return "rebuilt exactly" if out == data else "FINDING: rebuild differs"


def check_container(blob: bytes, original: bytes) -> str:
    try:
        out = jpegshrink.decompress(blob)
    except ContainerError:
        return "container: refused"
    return "container: original" if out == original else "FINDING: a damaged container decoded to other bytes"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", type=Path, nargs="+")
    ap.add_argument("--inputs", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-bytes", type=int, default=400_000, help="skip larger source files (time)")
    ap.add_argument("--container-every", type=int, default=4)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    files = sorted(p for f in args.folders for p in f.rglob("*") if p.is_file() and p.stat().st_size <= args.max_bytes)
    sources = [p.read_bytes() for p in files]
    small = [d for d in sources if len(d) <= 30_000 and d[:2] == b"\xff\xd8"][:6]
    containers = []
    for d in small:
        for m in registry.registered_ids():
            blob = jpegshrink.compress(d, model_id=m)
            if jpegshrink.inspect(blob).mode == "jpeg":
                containers.append((blob, d))
    print(f"{len(sources)} source files, {len(containers)} containers to damage", flush=True)
    outcomes: collections.Counter[str] = collections.Counter()
    findings = []
    t0 = time.perf_counter()
    for i in range(args.inputs):
        if containers and i % args.container_every == 0:
            blob, original = rng.choice(containers)
            cut = mutate(blob[40:], rng)  # damage the payload (the header has its own checks)
            case, check = blob[:40] + cut, lambda b, o=original: check_container(b, o)
        else:
            case, check = mutate(rng.choice(sources), rng), check_jpeg
        try:
            outcome = check(case)
        except Exception as e:  # noqa: BLE001 - an untyped exception is a finding
            outcome = f"FINDING: {type(e).__name__}: {e}"
        outcomes[outcome.split(":")[0] + ":" + outcome.split(":")[1] if outcome.startswith("FINDING") else outcome] += 1
        if outcome.startswith("FINDING"):
            findings.append((i, outcome))
        if (i + 1) % 500 == 0:
            print(f"{i + 1} inputs, {time.perf_counter() - t0:.0f} s", flush=True)
    print(f"{args.inputs} inputs in {time.perf_counter() - t0:.0f} s, seed {args.seed}")
    for k, v in sorted(outcomes.items()):
        print(f"  {v:6d}  {k}")
    for i, f in findings[:20]:
        print(f"  input {i}: {f}")
    print(f"{len(findings)} findings")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
