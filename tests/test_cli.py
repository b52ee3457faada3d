"""The jpegshrink command on files and folders: names kept, originals restored, failures reported."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import jpegshrink
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


# -- what a new user met (issue 11) ----------------------------------------------------------------

@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_written_files_get_the_umask_mode_and_keep_the_source_mtime(tmp_path, sample_files, umask_022):
    photo = tmp_path / "a.jpg"
    shutil.copy(sample_files[0], photo)
    when = 1_577_934_245_123_456_789  # 2020-01-02, with nanoseconds
    os.utime(photo, ns=(when, when))
    assert main(["compress", str(photo)]) == 0
    packed = tmp_path / "a.jpg.jsk"
    assert stat.S_IMODE(packed.stat().st_mode) == 0o644
    assert packed.stat().st_mtime_ns == when  # compress keeps the photo's mtime on the container
    photo.unlink()
    assert main(["decompress", str(packed)]) == 0
    assert photo.read_bytes() == sample_files[0].read_bytes()
    assert stat.S_IMODE(photo.stat().st_mode) == 0o644  # as any new file, as the original would be
    assert photo.stat().st_mtime_ns == when  # restored from the container's mtime, as gunzip does
    src = _tree(tmp_path, sample_files)
    for f in src.rglob("*"):
        os.utime(f, ns=(when, when))
    assert main(["compress", str(src), "-o", str(tmp_path / "packed"), "-j", "1", "-q"]) == 0
    assert main(["decompress", str(tmp_path / "packed"), "-o", str(tmp_path / "restored"), "-q"]) == 0
    for f in (tmp_path / "restored").rglob("*"):
        if f.is_file():
            assert (stat.S_IMODE(f.stat().st_mode), f.stat().st_mtime_ns) == (0o644, when), f


def test_a_private_photo_stays_private_and_the_umask_applies(tmp_path, sample_files, umask_022):
    photo = tmp_path / "a.jpg"
    shutil.copy(sample_files[0], photo)
    photo.chmod(0o600)
    assert main(["compress", str(photo)]) == 0
    assert stat.S_IMODE((tmp_path / "a.jpg.jsk").stat().st_mode) == 0o600  # not readable by others
    assert main(["decompress", str(tmp_path / "a.jpg.jsk"), "-o", str(tmp_path / "b.jpg")]) == 0
    assert stat.S_IMODE((tmp_path / "b.jpg").stat().st_mode) == 0o600
    photo.chmod(0o666)  # a group/world-writable source: the umask (022) still applies, as for any new file
    assert main(["compress", str(photo), "-o", str(tmp_path / "c.jsk")]) == 0
    assert stat.S_IMODE((tmp_path / "c.jsk").stat().st_mode) == 0o644


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and jpegshrink.__version__ in capsys.readouterr().out


@pytest.mark.parametrize("command", [[], ["compress"], ["decompress"], ["inspect"]])
def test_help_has_no_stray_markup(command, capsys):
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    out = capsys.readouterr().out
    assert "usage: jpegshrink" in out and "`" not in out


def test_compressing_a_non_jpeg_file_makes_a_container_that_inspect_describes(tmp_path, capsys):
    png = tmp_path / "img.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    assert main(["compress", str(png)]) == 0
    err = capsys.readouterr().err
    assert "not a JPEG" in err
    assert main(["inspect", str(tmp_path / "img.png.jsk"), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["mode"] in ("fallback", "stored") and row["reason"] == "not-jpeg"
    assert row["mode"] in err  # the run said what inspect says
    png_bytes = png.read_bytes()
    png.unlink()
    assert main(["decompress", str(tmp_path / "img.png.jsk")]) == 0 and png.read_bytes() == png_bytes


def test_decompressing_a_plain_jpeg_says_what_happened(tmp_path, sample_files, capsys):
    assert main(["decompress", str(sample_files[0]), "-o", str(tmp_path / "out.jpg")]) == 0
    captured = capsys.readouterr()
    assert "saved" not in captured.out + captured.err
    assert "not a jpegshrink container" in captured.err and "copied unchanged" in captured.err
    assert "nothing was a container" in captured.out


def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process cannot create files in (root ignores permissions: use sysfs then)."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    folder = Path("/sys/kernel")
    try:
        os.close(os.open(folder / "jpegshrink-write-test", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError:
        return folder
    os.unlink(folder / "jpegshrink-write-test")
    pytest.skip("no folder here refuses writes to root")


def test_read_only_output_is_refused_before_any_work_naming_the_destination(tmp_path, sample_files):
    folder = _unwritable_folder(tmp_path)
    src = _tree(tmp_path, sample_files)
    for argv in (["compress", str(src), "-o", str(folder)],
                 ["compress", str(sample_files[0]), "-o", str(folder / "a.jpg.jsk")]):
        proc = subprocess.run([sys.executable, "-m", "jpegshrink.cli", *argv, "-q"], capture_output=True, text=True)
        assert proc.returncode == 2, proc.stderr  # a usage error, before any file is read
        assert proc.stderr.count("\n") == 1 and str(folder) in proc.stderr and ".tmp" not in proc.stderr
        assert "failed" not in proc.stderr


def test_a_rerun_prints_one_summary_line_not_one_per_file(tmp_path, sample_files, capsys):
    src = _tree(tmp_path, sample_files)
    assert main(["compress", str(src), "-o", str(tmp_path / "packed"), "-j", "1", "-q"]) == 0
    capsys.readouterr()
    for command, out in (("compress", "packed"), ("decompress", "restored"), ("decompress", "restored")):
        args = ["decompress", str(tmp_path / "packed")] if command == "decompress" else ["compress", str(src)]
        assert main([*args, "-o", str(tmp_path / out), "-j", "1", "-q"]) == 0
        captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.count("\n") == 1 and "7 skipped" in captured.out


def test_an_unknown_model_is_a_usage_error(tmp_path, sample_files, capsys):
    assert main(["compress", str(sample_files[0]), "-o", str(tmp_path / "a.jsk"), "--model", "adaptiv-1"]) == 2
    assert "unknown model 'adaptiv-1'" in capsys.readouterr().err and not (tmp_path / "a.jsk").exists()
