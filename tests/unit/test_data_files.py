"""Files and folders: the digest is xxh3-128 of the bytes (and of a manifest for folders)."""
import os

import numpy as np
import pandas as pd
import pytest
import xxhash

from nbops.data import fingerprint, hash_file
from nbops.errors import DataError


def test_file_digest_is_xxh128_of_bytes_and_profiles_csv(tmp_path):
    p = tmp_path / "train.csv"
    pd.DataFrame({"a": [1, 2, 3], "s": ["x", "y", None]}).to_csv(p, index=False)
    v = fingerprint(p)
    assert v.digest == xxhash.xxh3_128_hexdigest(p.read_bytes())
    assert v.kind == "file" and v.name == "train.csv" and v.rows == 3 and v.columns == ["a", "s"]
    assert v.source["path"] == str(p.resolve()) and v.nbytes == p.stat().st_size
    assert {c["name"]: c["nulls"] for c in v.profile["columns"]} == {"a": 0, "s": 1}
    assert fingerprint(str(p)).digest == v.digest
    p.write_text(p.read_text().replace("2", "4"))
    assert fingerprint(p).digest != v.digest


def test_unreadable_tabular_file_still_versions_by_bytes(tmp_path, caplog):
    p = tmp_path / "broken.parquet"
    p.write_bytes(b"not parquet at all")
    v = fingerprint(p)
    assert v.digest == xxhash.xxh3_128_hexdigest(b"not parquet at all") and v.rows is None
    assert "could not be read as parquet" in caplog.text


def test_folder_manifest(tmp_path):
    d = tmp_path / "data"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("alpha")
    (d / "sub" / "b.bin").write_bytes(b"\x00\x01")
    v = fingerprint(d)
    manifest = (f"{xxhash.xxh3_128_hexdigest(b'alpha')}  a.txt\n"
                f"{xxhash.xxh3_128_hexdigest(bytes([0, 1]))}  sub/b.bin\n")
    assert v.digest == xxhash.xxh3_128_hexdigest(manifest.encode())
    assert v.kind == "folder" and v.profile["file_count"] == 2 and list(v.to_frame()["path"]) == ["a.txt", "sub/b.bin"]
    base = v.digest
    (d / "sub" / "b.bin").rename(d / "sub" / "c.bin")
    assert fingerprint(d).digest != base                 # a rename is a change
    (d / "sub" / "c.bin").rename(d / "sub" / "b.bin")
    assert fingerprint(d).digest == base
    (d / ".hidden").write_text("")
    assert fingerprint(d).digest != base                 # every file counts, hidden ones too
    empty = tmp_path / "empty"
    empty.mkdir()
    assert fingerprint(empty).profile["file_count"] == 0


def test_missing_path_and_special_files(tmp_path):
    with pytest.raises(DataError, match="No file or folder at .*nope.csv: check the path") as err:
        fingerprint("nope.csv")
    assert err.value.path.endswith("nope.csv")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="not a regular file"):
        fingerprint(fifo)  # would block forever if it were opened


def test_file_that_changes_while_read_is_refused(tmp_path):
    """A writer appends between the chunks hash_file reads (deterministically, from the progress callback)."""
    from nbops.data.fingerprinting import FILE_CHUNK

    p = tmp_path / "growing.bin"
    p.write_bytes(np.random.default_rng(0).bytes(2 * FILE_CHUNK + 100))
    appended = []

    def append_between_chunks(n):
        with open(p, "ab") as fh:
            fh.write(b"x" * 4096)
        appended.append(n)

    with pytest.raises(DataError, match="changed while it was being read") as err:
        hash_file(p, append_between_chunks)
    assert err.value.path == str(p) and len(appended) >= 9      # 3 attempts of 3+ chunks, each one saw a change
    # a file that changed during the first read only is read again and versioned as it is now
    first = []

    def append_once(n):
        if not first:
            first.append(n)
            with open(p, "ab") as fh:
                fh.write(b"y" * 10)

    assert hash_file(p, append_once)[0] == xxhash.xxh3_128_hexdigest(p.read_bytes())
    assert hash_file(p)[0] == xxhash.xxh3_128_hexdigest(p.read_bytes())


def test_unreadable_file(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads everything")
    p = tmp_path / "secret.csv"
    p.write_text("a\n1\n")
    p.chmod(0)
    with pytest.raises(DataError, match="permission denied"):
        fingerprint(p)
