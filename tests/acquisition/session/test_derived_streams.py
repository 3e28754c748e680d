"""The derived-stream API of the session writer: replace and remove an analysis' streams, safely."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from acquisition import SessionWriter, StreamSpec, open_session
from acquisition.session.writer import PENDING_ATTR

BY = "test analysis"
STAMPS = 100.0 + np.arange(5) / 100


def _score(name: str = "EEG-Score", *, derived_by: str | None = None) -> StreamSpec:
    extra = {"derived_from": "EEG"} | ({"derived_by": derived_by} if derived_by else {})
    return StreamSpec(name, "Score", 1, "float32", 100.0, f"{name}-src", extra=extra)


@pytest.fixture
def session(tmp_path) -> Path:
    """A closed session: a recorded EEG stream and a derived score stream (all 1.0) that BY wrote."""
    fname = tmp_path / "s.h5"
    with SessionWriter(fname, subject_id="sub-01") as w:
        eeg = w.add_stream(StreamSpec("EEG", "EEG", 2, "float32", 100.0, "eeg"))
        eeg.append(np.zeros((5, 2)), STAMPS)
        eeg.append_clock_offsets([100.0], [2.5], [1e-4])
        w.add_stream(_score(derived_by=BY)).append(np.ones((5, 1)), STAMPS)
    return fname


def _streams(fname: Path) -> dict[str, np.ndarray]:
    with open_session(fname) as s:
        return {name: np.asarray(st.data[:]) for name, st in s.streams.items()}


def _scratch_files(fname: Path) -> list[Path]:
    return sorted(fname.parent.glob(".*.derived.tmp"))


def test_replace_swaps_in_complete_streams(session):
    with SessionWriter.replace_derived(session, [_score(), _score("EEG-Other")], derived_by=BY,
                                       replace=["EEG-Score"]) as new:
        assert sorted(new.names) == ["EEG-Other", "EEG-Score"]
        new["EEG-Score"].append(np.full((5, 1), 2.0), STAMPS)
        new["EEG-Score"].append_clock_offsets([100.0], [2.5], [1e-4])
        new["EEG-Other"].append(np.full((3, 1), 3.0), STAMPS[:3])
        assert _streams(session)["EEG-Score"][0, 0] == 1.0          # the old stream is untouched while writing
        assert len(_scratch_files(session)) == 1                     # the new ones are in a scratch file beside it
    data = _streams(session)
    assert sorted(data) == ["EEG", "EEG-Other", "EEG-Score"]
    np.testing.assert_array_equal(data["EEG-Score"][:, 0], 2.0)
    np.testing.assert_array_equal(data["EEG-Other"][:, 0], 3.0)
    with open_session(session) as s:
        score = s.streams["EEG-Score"]
        assert score.info["derived_by"] == BY and PENDING_ATTR not in score.info and score.info["name"] == "EEG-Score"
        np.testing.assert_allclose(score.times, s.streams["EEG"].times)   # clock offsets copied with the data
    assert not _scratch_files(session)
    with pytest.raises(RuntimeError, match="already committed"):
        new.commit()


def test_a_failure_while_writing_keeps_the_old_streams(session):
    with pytest.raises(RuntimeError, match="analysis crashed"):
        with SessionWriter.replace_derived(session, [_score()], derived_by=BY, replace=["EEG-Score"]) as new:
            new["EEG-Score"].append(np.full((5, 1), 2.0), STAMPS)
            raise RuntimeError("analysis crashed")
    data = _streams(session)
    assert sorted(data) == ["EEG", "EEG-Score"]
    np.testing.assert_array_equal(data["EEG-Score"][:, 0], 1.0)
    assert not _scratch_files(session)


def test_a_failing_commit_leaves_the_session_as_it_was(session, monkeypatch):
    def copy_fails(self, *args, **kwargs):
        raise OSError("disk full")

    new = SessionWriter.replace_derived(session, [_score()], derived_by=BY, replace=["EEG-Score"])
    new["EEG-Score"].append(np.full((5, 1), 2.0), STAMPS)
    monkeypatch.setattr(h5py.File, "copy", copy_fails)
    with pytest.raises(OSError, match="disk full"):
        new.commit()
    monkeypatch.undo()
    data = _streams(session)
    assert sorted(data) == ["EEG", "EEG-Score"] and data["EEG-Score"][0, 0] == 1.0
    assert not _scratch_files(session)
    with pytest.raises(RuntimeError, match="already aborted"):
        new.commit()


def test_discarded_streams_are_not_written(session):
    with SessionWriter.replace_derived(session, [_score("EEG-A"), _score("EEG-B")], derived_by=BY) as new:
        new["EEG-A"].append(np.ones((5, 1)), STAMPS)
        new.discard(["EEG-B"])
        assert new.names == ["EEG-A"]
        with pytest.raises(KeyError, match="EEG-B"):
            new["EEG-B"]
    assert sorted(_streams(session)) == ["EEG", "EEG-A", "EEG-Score"]


def test_replace_refuses_before_any_work(session):
    with pytest.raises(ValueError, match="'EEG' is a recorded stream.*Nothing was removed"):
        SessionWriter.replace_derived(session, [_score("EEG")], derived_by=BY, replace=["EEG"])
    with pytest.raises(ValueError, match="already has streams named \\['EEG-Score'\\].*not being replaced"):
        SessionWriter.replace_derived(session, [_score()], derived_by=BY)
    with pytest.raises(ValueError, match="written by 'test analysis', not 'other'"):
        SessionWriter.replace_derived(session, [_score()], derived_by="other", replace=["EEG-Score"])
    with pytest.raises(ValueError, match="'Nope' is not a stream"):
        SessionWriter.replace_derived(session, [_score("EEG-New")], derived_by=BY, replace=["Nope"])
    with pytest.raises(ValueError, match="more than once"):
        SessionWriter.replace_derived(session, [_score("EEG-New"), _score("EEG-New")], derived_by=BY)
    with pytest.raises(ValueError, match="derived_by='other'"):
        SessionWriter.replace_derived(session, [_score("EEG-New", derived_by="other")], derived_by=BY)
    assert sorted(_streams(session)) == ["EEG", "EEG-Score"] and not _scratch_files(session)


def test_remove_streams_only_removes_derived_ones(session):
    with SessionWriter.append_to(session) as w:
        with pytest.raises(ValueError, match="'EEG' is a recorded stream"):
            w.remove_streams(["EEG-Score", "EEG"])                   # all checked first: nothing removed
        with pytest.raises(ValueError, match="not 'emosync spot'"):
            w.remove_streams(["EEG-Score"], derived_by="emosync spot")
        with pytest.raises(ValueError, match="'Cam' is not a stream"):
            w.remove_streams(["Cam"])
    assert sorted(_streams(session)) == ["EEG", "EEG-Score"]
    with SessionWriter.append_to(session) as w:
        w.remove_streams(["EEG-Score"], derived_by=BY)
    assert sorted(_streams(session)) == ["EEG"]


def test_legacy_spotting_streams_count_as_derived(session):
    with h5py.File(session, "r+") as f:   # a marker stream written by `emosync spot` before derived_by existed
        del f["streams/EEG-Score"].attrs["derived_by"]
        f["streams/EEG-Score"].attrs["spotting_source"] = "EEG"
    with SessionWriter.append_to(session) as w:
        w.remove_streams(["EEG-Score"], derived_by="emosync spot")
    assert sorted(_streams(session)) == ["EEG"]


def test_no_structure_change_during_a_live_recording(tmp_path):
    with SessionWriter(tmp_path / "live.h5") as w:
        w.add_stream(_score(derived_by=BY))
        w.start_swmr()
        with pytest.raises(RuntimeError, match="being recorded \\(SWMR mode\\)"):
            w.remove_streams(["EEG-Score"])
        with pytest.raises(OSError, match="this process is still recording it"):
            SessionWriter.replace_derived(tmp_path / "live.h5", [_score("EEG-New")], derived_by=BY)
        w.streams["EEG-Score"].append(np.ones((2, 1)), STAMPS[:2])   # the recording goes on unharmed
    with open_session(tmp_path / "live.h5") as s:
        assert list(s.streams) == ["EEG-Score"] and s.streams["EEG-Score"].n_samples == 2


def test_refused_while_another_process_records(session):
    code = textwrap.dedent(f"""
        import sys
        from acquisition import SessionWriter, StreamSpec
        w = SessionWriter({str(session.with_name('live.h5'))!r})
        w.add_stream(StreamSpec("EEG-Score", "Score", 1, "float32", 100.0, "x", extra={{"derived_by": {BY!r}}}))
        w.start_swmr()
        print("recording", flush=True)
        sys.stdin.readline()
        w.close()
    """)
    recorder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert recorder.stdout.readline().strip() == "recording"
        with pytest.raises(OSError, match="still being recorded"):
            SessionWriter.replace_derived(session.with_name("live.h5"), [_score("EEG-New")], derived_by=BY)
        assert not _scratch_files(session)
    finally:
        recorder.communicate("stop\n", timeout=30)
    assert recorder.returncode == 0


def test_stale_pending_streams_of_a_killed_commit_are_removed(session, emosync_log):
    with h5py.File(session, "r+") as f:   # what a commit killed between copy and swap leaves
        f.copy(f["streams/EEG-Score"], f["streams"], name="EEG-Score~pending-dead")
        f["streams/EEG-Score~pending-dead"].attrs[PENDING_ATTR] = "EEG-Score"
    with SessionWriter.replace_derived(session, [_score()], derived_by=BY, replace=["EEG-Score"]) as new:
        new["EEG-Score"].append(np.full((5, 1), 4.0), STAMPS)
    data = _streams(session)
    assert sorted(data) == ["EEG", "EEG-Score"] and data["EEG-Score"][0, 0] == 4.0
    assert "interrupted analysis" in emosync_log.text and "EEG-Score~pending-dead" in emosync_log.text
