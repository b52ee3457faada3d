"""tools/bench.py on a few sample files: the JSON is complete and its sizes and round-trip checks are real.

Fake codecs defined here are loaded by the harness's worker processes as ``test_bench_tool:Name``
(spawned workers inherit this process's sys.path, which holds this folder).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import pytest
import zstandard

TOOLS = Path(__file__).resolve().parent.parent / "tools"
sys.path.insert(0, str(TOOLS))

import bench  # noqa: E402

SAMPLE = Path(__file__).parent / "data" / "sample"
FAKES = ["test_bench_tool:WrongLastByte", "test_bench_tool:RejectsAll", "test_bench_tool:CrashesWorker",
         "test_bench_tool:Hangs"]


class _Fake:
    def __init__(self, model_id: str | None = None) -> None:
        pass

    def version(self) -> str:
        return "fake"

    def threads_note(self) -> str:
        return "fake"

    def encode(self, data: bytes) -> bytes:
        return zstandard.ZstdCompressor(level=1).compress(data)

    def decode(self, blob: bytes) -> bytes:
        return zstandard.ZstdDecompressor().decompress(blob)


class WrongLastByte(_Fake):
    """Stores one byte less than the original and gives back a wrong last byte: must be a MISMATCH."""

    def encode(self, data: bytes) -> bytes:
        return data[:-1]

    def decode(self, blob: bytes) -> bytes:
        return blob + b"\0"  # a JPEG ends with 0xD9


class RejectsAll(_Fake):
    def encode(self, data: bytes) -> bytes:
        raise ValueError("unsupported by this fake")


class CrashesWorker(_Fake):
    def encode(self, data: bytes) -> bytes:
        os._exit(7)  # a segfaulting library, as far as the harness can tell


class Hangs(_Fake):
    def decode(self, blob: bytes) -> bytes:
        time.sleep(3600)
        return b""


def _run(tmp_path: Path, args: list[str]) -> tuple[dict, str]:
    out_json, out_md = tmp_path / "bench.json", tmp_path / "bench.md"
    rc = bench.main([*args, "--json", str(out_json), "--markdown", str(out_md)])
    assert rc == 0
    return json.loads(out_json.read_text()), out_md.read_text()


def _recount_saving(report: dict, codec: str) -> float:
    orig = sum(f["bytes"] for f in report["files"])
    stored = sum(f["results"][codec]["stored"] if f["results"][codec].get("exact") else f["bytes"]
                 for f in report["files"])
    return 100 * (1 - stored / orig)


def test_real_codecs_on_three_sample_files(tmp_path: Path) -> None:
    report, md = _run(tmp_path, [str(SAMPLE), "--limit", "3", "--workers", "2"])
    files = report["files"]
    assert len(files) == 3
    meta = report["meta"]
    for key in ("command", "date_utc", "jpegshrink_commit", "machine", "manifests"):
        assert meta[key]
    assert meta["manifests"][str(SAMPLE.resolve() / "MANIFEST.tsv")] == hashlib.sha256(
        (SAMPLE / "MANIFEST.tsv").read_bytes()).hexdigest()
    assert report["codec_order"] == ["jpegshrink", "lepton", "jpegxl", "zstd"]
    for f in files:
        data = Path(f["path"]).read_bytes()
        assert f["sha256"] == hashlib.sha256(data).hexdigest() and f["bytes"] == len(data)
        assert f["kind"] in ("photo", "flat") and f["megapixels"] > 0
        # sizes are the codecs' real outputs, not estimates
        assert f["results"]["zstd"]["stored"] == len(zstandard.ZstdCompressor(level=19).compress(data))
        assert f["results"]["jpegshrink"]["mode"] in ("jpeg", "fallback")
    for codec in report["codec_order"]:
        info, s = report["codecs"][codec], report["summary"][codec]
        assert info["version"] and info["peak_rss_kib"] > 10_000
        assert info["parallel"]["workers"] == 2 and info["parallel"]["enc_mbps"] > 0
        assert s["files"] == 3 and s["accepted"] >= s["exact"]
        assert s["saving_pct"] == pytest.approx(_recount_saving(report, codec))
        if codec != "jpegshrink":  # adaptive-1 codes components in threads and has no public knob (yet)
            assert s["enc_offthread_pct"] < 10 and s["dec_offthread_pct"] < 10  # one thread, as stated
        assert s["nondeterministic"] == 0
    assert report["summary"]["jpegshrink"]["mismatches"] == 0
    assert report["summary"]["zstd"]["exact"] == 3
    assert "## Lossless compression" in md and meta["command"] in md


def test_broken_codecs_are_reported_not_counted(tmp_path: Path) -> None:
    listing = tmp_path / "files.txt"
    listing.write_text("\n".join(str(SAMPLE / n) for n in
                                 ("scikit-learn__flower.jpg", "v08_cjpeg-q75-420.jpg", "kalzium-data__trichter.jpg")))
    ballast = bytearray(300 << 20)  # the workers' peak RSS must be their own, not this process's
    ballast[::4096] = b"\1" * len(ballast[::4096])
    report, md = _run(tmp_path, ["--files-from", str(listing), "--codecs", ",".join(["zstd", *FAKES]),
                                 "--workers", "1", "--timeout", "2"])
    del ballast
    assert 10_000 < report["codecs"]["zstd"]["peak_rss_kib"] < 200_000
    summary = report["summary"]
    wrong = summary["WrongLastByte"]
    assert wrong["accepted"] == 3 and wrong["exact"] == 0 and wrong["mismatches"] == 3
    assert wrong["saving_pct"] == 0.0  # blobs were smaller, but nothing restorable: no credit
    assert wrong["saving_exact_files_pct"] is None
    assert all(f["results"]["WrongLastByte"]["stored"] == f["bytes"] - 1 for f in report["files"])
    assert "**3 MISMATCH**" in md or "| **3** |" in md
    rejects = summary["RejectsAll"]
    assert rejects["accepted"] == 0 and rejects["saving_pct"] == 0.0
    assert any("unsupported by this fake" in k for k in rejects["errors"])
    crash = summary["CrashesWorker"]
    assert crash["accepted"] == 0 and any("worker crashed" in k for k in crash["errors"])
    hangs = summary["Hangs"]
    assert hangs["accepted"] == 3 and hangs["exact"] == 0 and any("timeout" in k for k in hangs["errors"])
    assert report["codecs"]["Hangs"]["worker_restarts"] == 3
    assert summary["zstd"]["exact"] == 3 and summary["zstd"]["saving_pct"] > 0  # the run went on
