"""The jpegshrink command on files and folders: names kept, originals restored, failures reported."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from jpegshrink.cli import main


def _tree(tmp_path: Path, sample_files: list[Path]) -> Path:
    src = tmp_path / "photos"
    (src / "sub").mkdir(parents=True)
    for i, f in enumerate(sample_files[:6]):
        shutil.copy(f, (src / "sub" if i % 2 else src) / f.name)
    (src / "notes.txt").write_text("not a jpeg")
    return src


def test_folder_round_trip_keeps_names_and_bytes(tmp_path, sample_files, capsys):
    src = _tree(tmp_path, sample_files)
    assert main(["compress", str(src), "-o", str(tmp_path / "packed"), "-j", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["counts"].get("copied") == 1 and len(report["files"]) == 7
    assert main(["decompress", str(tmp_path / "packed"), "-o", str(tmp_path / "restored"), "-q"]) == 0
    originals = sorted(p.relative_to(src) for p in src.rglob("*") if p.is_file())
    restored = sorted(p.relative_to(tmp_path / "restored") for p in (tmp_path / "restored").rglob("*") if p.is_file())
    assert originals == restored
    for rel in originals:
        assert (tmp_path / "restored" / rel).read_bytes() == (src / rel).read_bytes()
        if rel.suffix == ".jpg":
            assert (tmp_path / "packed" / rel).read_bytes() != (src / rel).read_bytes()


def test_single_file_default_names(tmp_path, sample_files):
    photo = tmp_path / "a.jpg"
    shutil.copy(sample_files[0], photo)
    assert main(["compress", str(photo)]) == 0
    packed = tmp_path / "a.jpg.jsk"
    photo.unlink()
    assert main(["decompress", str(packed)]) == 0
    assert photo.read_bytes() == sample_files[0].read_bytes()


def test_existing_output_is_not_overwritten_without_force(tmp_path, sample_files, capsys):
    photo = tmp_path / "a.jpg"
    shutil.copy(sample_files[0], photo)
    (tmp_path / "a.jpg.jsk").write_bytes(b"keep me")
    main(["compress", str(photo)])
    assert (tmp_path / "a.jpg.jsk").read_bytes() == b"keep me"
    assert main(["compress", str(photo), "--force"]) == 0
    assert (tmp_path / "a.jpg.jsk").read_bytes() != b"keep me"


def test_corrupt_container_fails_with_exit_code_and_no_output(tmp_path, sample_files, capsys):
    photo = tmp_path / "a.jpg"
    shutil.copy(sample_files[0], photo)
    main(["compress", str(photo)])
    packed = tmp_path / "a.jpg.jsk"
    data = bytearray(packed.read_bytes())
    data[len(data) // 2] ^= 1
    packed.write_bytes(bytes(data))
    assert main(["decompress", str(packed), "-o", str(tmp_path / "out.jpg")]) == 1
    assert not (tmp_path / "out.jpg").exists()
    assert "checksum" in capsys.readouterr().err
    assert main(["inspect", str(packed)]) == 1


def test_usage_errors_are_one_line_not_tracebacks(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "jpegshrink.cli", "compress", str(tmp_path / "missing.jpg")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "no such file" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "jpegshrink.cli", "compress", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "output folder" in proc.stderr
