"""The README's first command: `emosync demo` runs end to end on a machine without sensors."""

from __future__ import annotations

import subprocess

from acquisition import open_session

from .conftest import emosync_command


def test_quick_demo_records_every_stream_and_draws_the_timeline(tmp_path):
    result = subprocess.run(emosync_command("demo", "--quick", "--duration", "3", "--out", str(tmp_path)),
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    (session,) = tmp_path.glob("*.h5")
    (timeline,) = tmp_path.glob("*.timeline.png")
    assert timeline.stat().st_size > 20_000
    assert "Timeline:" in result.stdout and "Session:" in result.stdout
    with open_session(session) as s:
        types = sorted(st.info["type"] for st in s.streams.values())
        assert types == ["ActionUnits", "EEG", "EMG", "Markers", "VideoRaw", "VideoRaw"]
        for st in s.streams.values():
            if st.nominal_srate > 0:
                assert st.n_samples > 2 * st.nominal_srate, st.name
                if st.sync.dejittered:
                    assert st.sync.jitter_after_s < 1e-6, st.name
