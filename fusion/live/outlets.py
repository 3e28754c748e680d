"""What ``emosync live`` publishes: three LSL outlets a recorder (``emosync record``) captures with the session.

- ``<name>-Expressions`` (type ``Markers``, strings): ``onset/<label>/<kind>``, ``apex/...``, ``offset/...``
  in the convention of :mod:`acquisition.session.markers`, each stamped with the time of the event in
  the signal (the samples' own stamps on this machine's LSL clock), not with the time it was decided.
- ``<name>-AU`` (type ``EMG-AU``, float32, one sample per hop): the online EMG AU estimates (FACS 0-5). Not
  type ``ActionUnits``, so ``emosync spot`` never takes a recording of it for a video AU estimate.
- ``<name>-Latency`` (type ``Latency``, float32, one sample per window run): milliseconds from the arrival
  (``local_clock()``) of a window's newest sample to the publication of its result, stamped with the
  window's end.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence

import pylsl

from acquisition.lsl import make_stream_info

#: ``source_id`` prefix of the live outlets (a restarted ``emosync live`` rejoins a recording).
SOURCE_PREFIX = "emosync-live"


class LiveOutlets:
    """The outlets of one ``emosync live`` run.

    Parameters
    ----------
    name : str
        Prefix of the stream names (``--name``).
    au_labels : sequence of str
        Columns of the AU outlet (``"AU04"``...); empty: no AU outlet.
    hop_s : float
        Seconds between AU samples (the AU outlet's nominal rate is its inverse).
    """

    def __init__(self, name: str, *, au_labels: Sequence[str] = (), hop_s: float = 0.1) -> None:
        host = socket.gethostname()

        def info(suffix: str, **kwargs: object) -> pylsl.StreamInfo:
            full = f"{name}-{suffix}"
            made = make_stream_info(full, source_id=f"{SOURCE_PREFIX}:{full}:{host}", **kwargs)  # type: ignore[arg-type]
            made.desc().append_child_value("derived_by", "emosync live")
            return made

        self.names = {"expressions": f"{name}-Expressions", "latency": f"{name}-Latency"}
        self.expressions = pylsl.StreamOutlet(info("Expressions", type="Markers", channel_count=1, nominal_srate=0.0,
                                                   channel_format="string", channel_labels=["expression"]))
        self.latency = pylsl.StreamOutlet(info("Latency", type="Latency", channel_count=1, nominal_srate=0.0,
                                               channel_format="float32", channel_labels=["latency"],
                                               channel_units=["ms"]))
        self.au = None
        if au_labels:
            self.names["au"] = f"{name}-AU"
            self.au = pylsl.StreamOutlet(info("AU", type="EMG-AU", channel_count=len(au_labels),
                                              nominal_srate=1.0 / hop_s, channel_format="float32",
                                              channel_labels=list(au_labels),
                                              channel_units=["FACS intensity 0-5"] * len(au_labels),
                                              channel_types=["AU"] * len(au_labels), can_drop_samples=True))

    def push_markers(self, markers: Sequence[tuple[float, str]]) -> None:
        """Publish ``(time_s, text)`` markers, each stamped with its own time (this machine's LSL clock)."""
        for stamp, text in markers:
            self.expressions.push_sample([text], stamp)

    def push_latency(self, latency_ms: float, stamp: float) -> None:
        """Publish one latency sample (ms), stamped ``stamp``."""
        self.latency.push_sample([float(latency_ms)], stamp)

    def push_au(self, values: Sequence[float], stamp: float) -> None:
        """Publish one AU sample (FACS 0-5), stamped ``stamp``; nothing without an AU outlet."""
        if self.au is not None:
            self.au.push_sample([float(v) for v in values], stamp)
