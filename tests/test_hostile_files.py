"""Special and re-encoded files given to `commbench import`: what is no regular file (a FIFO
with no writer, a device, a directory, a socket) is refused by name before it is opened, at
once (a FIFO would block an open); a log saved compressed (gzip, bzip2, xz) or re-encoded
(UTF-8 with a BOM, UTF-16 with or without one, UTF-32) imports the same rows as the plain file,
detected or with --format; what cannot be read (zstd, zip, binary data, a truncated gzip) is
refused by name. Always one `commbench: error:` line and exit 2, never a traceback or a hang."""
from __future__ import annotations

import bz2
import gzip
import lzma
import os
import socket
from pathlib import Path

import pytest

from analysis.runsamples import load_run
from tests.conftest import run_cli

pytestmark = pytest.mark.timeout(30)  # a FIFO opened before it is checked hangs: fails here

DATA = Path(__file__).parent / "data"
TEXT = DATA / "nccl_all_reduce.txt"
JSON = DATA / "nccl_all_gather.json"


def import_(capsys, path, out, *extra):
    return run_cli(capsys, "import", path, "--out", out, *extra)


def assert_refused(rc, err, *needles):
    assert rc == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("commbench: error: "), err
    for needle in needles:
        assert needle in err, (needle, err)


def fifo(tmp_path):
    path = tmp_path / "log.fifo"
    os.mkfifo(path)
    return path


def unix_socket(tmp_path):
    path = tmp_path / "s.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.close()
    return path


@pytest.mark.parametrize("make, kind", [
    (fifo, "a FIFO"),
    (lambda tmp: Path("/dev/null"), "a character device"),
    (lambda tmp: Path("/dev/zero"), "a character device"),
    (lambda tmp: tmp, "a directory"),
    (unix_socket, "a socket"),
])
@pytest.mark.parametrize("fmt", [None, "nccl-tests", "nccl-tests-json", "osu"])
def test_what_is_no_file_is_refused_by_name_before_it_is_opened(tmp_path, capsys, make, kind, fmt):
    path = make(tmp_path)
    rc, _, err = import_(capsys, path, tmp_path / "out", *(["--format", fmt] if fmt else []))
    assert_refused(rc, err, str(path), kind)
    assert not (tmp_path / "out").exists()


def test_a_link_to_a_fifo_is_refused_too(tmp_path, capsys):
    link = tmp_path / "log.txt"
    link.symlink_to(fifo(tmp_path))
    rc, _, err = import_(capsys, link, tmp_path / "out")
    assert_refused(rc, err, "a FIFO")


def rows_of(out):
    summary = load_run(out)[2]
    return sorted(zip(summary["op"], summary["nbytes"], summary["median_s"]))


ENCODINGS = {
    "utf-8-sig": lambda b: b.decode().encode("utf-8-sig"),
    "utf-16": lambda b: b.decode().encode("utf-16"),
    "utf-16-be-bom": lambda b: b"\xfe\xff" + b.decode().encode("utf-16-be"),
    "utf-16-le-no-bom": lambda b: b.decode().encode("utf-16-le"),
    "utf-16-be-no-bom": lambda b: b.decode().encode("utf-16-be"),
    "utf-32": lambda b: b.decode().encode("utf-32"),
    "crlf": lambda b: b.replace(b"\n", b"\r\n"),
    "gzip": gzip.compress,
    "gzip-utf-16": lambda b: gzip.compress(b.decode().encode("utf-16")),
    "bzip2": bz2.compress,
    "xz": lzma.compress,
}


@pytest.mark.parametrize("source", [TEXT, JSON], ids=["text", "json"])
@pytest.mark.parametrize("encoding", list(ENCODINGS))
@pytest.mark.slow
def test_recoded_and_compressed_logs_import_the_same_rows(tmp_path, capsys, source, encoding):
    plain = tmp_path / "plain"
    assert import_(capsys, source, plain)[0] == 0
    recoded = tmp_path / f"log.{encoding}"
    recoded.write_bytes(ENCODINGS[encoding](source.read_bytes()))
    rc, out, err = import_(capsys, recoded, tmp_path / "detected")
    assert rc == 0, err
    assert rows_of(tmp_path / "detected") == rows_of(plain)
    fmt = "nccl-tests" if source == TEXT else "nccl-tests-json"
    rc, out, err = import_(capsys, recoded, tmp_path / "named", "--format", fmt)
    assert rc == 0, err
    assert rows_of(tmp_path / "named") == rows_of(plain)


@pytest.mark.parametrize("data, needles", [
    (b"\x28\xb5\x2f\xfd" + b"\x00" * 64, ["zstd-compressed", "decompress it first"]),
    (b"PK\x03\x04" + b"\x00" * 64, ["zip-compressed"]),
    (b"7z\xbc\xaf\x27\x1c" + b"\x00" * 64, ["7z-compressed"]),
    (bytes(range(256)) * 16, ["binary data, not a text log"]),
    (gzip.compress(TEXT.read_bytes())[:100], ["gzip", "cannot read it"]),
    (gzip.compress(bytes(range(256)) * 16), ["gzip", "binary data"]),
])
@pytest.mark.parametrize("fmt", [None, "nccl-tests", "nccl-tests-json"])
def test_what_cannot_be_read_is_refused_by_name(tmp_path, capsys, data, needles, fmt):
    path = tmp_path / "log"
    path.write_bytes(data)
    rc, _, err = import_(capsys, path, tmp_path / "out", *(["--format", fmt] if fmt else []))
    assert_refused(rc, err, *needles)
    assert not (tmp_path / "out").exists()


def test_a_decompressed_size_over_the_limit_is_refused(tmp_path, capsys, monkeypatch):
    from analysis import importers

    monkeypatch.setattr(importers, "MAX_TEXT_BYTES", 4096)
    bomb = tmp_path / "big.gz"
    bomb.write_bytes(gzip.compress(TEXT.read_bytes() * 50))  # small file, far more text
    assert bomb.stat().st_size < 4096
    rc, _, err = import_(capsys, bomb, tmp_path / "out", "--format", "nccl-tests")
    assert_refused(rc, err, "once decompressed")
