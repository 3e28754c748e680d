"""What every importer shares: a session file that appears whole or not at all, and source metadata."""

from __future__ import annotations

import pytest

from acquisition.io.importing import new_session_file, source_metadata


def test_the_file_appears_only_when_the_block_succeeds(tmp_path):
    out = tmp_path / "s.h5"
    with new_session_file(out) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".s.h5.") and tmp.suffix == ".partial"
        tmp.write_bytes(b"session")
        assert not out.exists()
    assert out.read_bytes() == b"session" and sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]
    with pytest.raises(RuntimeError, match="disk on fire"), new_session_file(tmp_path / "t.h5") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("disk on fire")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]


def test_an_output_that_exists_or_appears_is_never_replaced(tmp_path):
    out = tmp_path / "s.h5"
    out.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="never overwrites"), new_session_file(out):
        pass
    with new_session_file(out, if_exists="rename") as tmp:
        tmp.write_bytes(b"new")
    assert out.read_bytes() == b"new" and (tmp_path / "s_old1.h5").read_bytes() == b"precious"
    late = tmp_path / "late.h5"
    with pytest.raises(FileExistsError, match="late.h5 appeared while importing"), new_session_file(late) as tmp:
        tmp.write_bytes(b"mine")
        late.write_bytes(b"theirs")
    assert late.read_bytes() == b"theirs" and not list(tmp_path.glob("*.partial"))


def test_source_metadata_names_the_file_not_its_path(tmp_path):
    (tmp_path / "rec.xdf").write_bytes(b"abc")
    meta = source_metadata(tmp_path / "rec.xdf", "xdf")
    assert meta["source_file"] == "rec.xdf" and meta["source_format"] == "xdf"
    assert meta["source_sha256"] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert "source_sha256" not in source_metadata(tmp_path / "rec.xdf", "xdf", checksum=False)
    assert "source_sha256" not in source_metadata(tmp_path, "depth-images")
