"""The emosync session file format: names, versions and the stream description.

A session is one HDF5 file. This module holds what both sides of the file agree on
(schema name and version, group layout, how LSL channel formats map to stored dtypes)
so that :mod:`acquisition.session.writer` and :mod:`acquisition.session.reader` cannot drift apart.
See ``docs/session-format.md`` for the full layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

SCHEMA_NAME = "emosync-session"
#: Bump the minor version for additive changes, the major version for breaking ones.
SCHEMA_VERSION = "1.0"
STREAMS_GROUP = "streams"

#: LSL channel formats and the numpy dtype a numeric sample is stored as.
LSL_DTYPES: dict[str, Any] = {
    "float32": np.float32,
    "double64": np.float64,
    "int8": np.int8,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
}

#: Video encodings carried in the LSL ``desc/encoding`` element, with the LSL channel
#: format they travel in and the dtype and channel count they are stored with.
#: LSL has no unsigned formats, so RGB8 travels as int8 and DEPTH16 as int16 and both
#: are reinterpreted (not converted) on arrival.
FRAME_ENCODINGS: dict[str, dict[str, Any]] = {
    "RGB8": {"lsl_format": "int8", "dtype": np.uint8, "channels": 3},
    "DEPTH16-mm": {"lsl_format": "int16", "dtype": np.uint16, "channels": 1},
}

#: How video frames can be stored: raw (``none``); one image per frame, lossless PNG (RGB and
#: depth) or JPEG (RGB only); or raw frames through a lossless HDF5 chunk filter of
#: ``hdf5plugin`` (``lz4``: HDF5's LZ4 filter; ``blosc2``: Blosc2 with LZ4 and bit-shuffle).
FRAME_COMPRESSIONS = ("none", "png", "jpeg", "lz4", "blosc2")
#: The forms that store one encoded image per frame (variable-length bytes, decoded on read).
IMAGE_COMPRESSIONS = ("png", "jpeg")
#: The forms that store raw frames through an HDF5 filter (readers need ``import hdf5plugin``).
FILTER_COMPRESSIONS = ("lz4", "blosc2")

#: How LSL stream types map to modalities (case-insensitive); anything else is ``misc``.
MODALITY_BY_LSL_TYPE = {
    "eeg": "eeg",
    "emg": "emg",
    "markers": "markers",
    "marker": "markers",
    "actionunits": "au",
    "videoframeindex": "frame_index",
}


@dataclass
class StreamSpec:
    """Everything the writer needs to create one stream in a session.

    Parameters
    ----------
    name : str
        Stream name; also the HDF5 group name (``/`` is replaced by ``_``).
    type : str
        LSL content type (``"EEG"``, ``"EMG"``, ``"VideoRaw"``, ``"Markers"``...).
    channel_count : int
        Values per sample as sent over LSL (``H * W * C`` for video frames).
    channel_format : str
        LSL channel format: one of ``float32``, ``double64``, ``int8``, ``int16``,
        ``int32``, ``int64``, ``string``.
    nominal_srate : float
        Nominal sampling rate in Hz; 0 for irregular streams.
    source_id : str
        LSL ``source_id``; a stream without one cannot be recovered after a restart.
    hostname : str
        Host the stream came from.
    channel_labels, channel_units, channel_types : list of str
        Per-channel metadata from ``desc/channels`` (empty for video frames).
    frame_shape : tuple of int | None
        ``(height, width, 3)`` for RGB8 or ``(height, width)`` for depth frames.
    encoding : str | None
        ``"RGB8"`` or ``"DEPTH16-mm"`` for video frames, else None.
    compression : str
        How video frames are stored: ``"none"``, ``"png"``, ``"jpeg"``, ``"lz4"`` or ``"blosc2"``
        (see :data:`FRAME_COMPRESSIONS`).
    can_drop_samples : bool
        True for streams whose source may skip samples (cameras, markers).
    info_xml : str
        The full LSL stream info XML, kept verbatim.
    extra : dict
        Additional attributes stored on the stream group (JSON-able scalars/strings).
    """

    name: str
    type: str
    channel_count: int
    channel_format: str
    nominal_srate: float = 0.0
    source_id: str = ""
    hostname: str = ""
    channel_labels: list[str] = field(default_factory=list)
    channel_units: list[str] = field(default_factory=list)
    channel_types: list[str] = field(default_factory=list)
    frame_shape: tuple[int, ...] | None = None
    encoding: str | None = None
    compression: str = "none"
    can_drop_samples: bool = False
    info_xml: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.channel_format not in (*LSL_DTYPES, "string"):
            raise ValueError(
                f"Stream {self.name!r}: unknown channel_format {self.channel_format!r}; "
                f"expected one of {[*LSL_DTYPES, 'string']}."
            )
        if self.channel_count < 1:
            raise ValueError(f"Stream {self.name!r}: channel_count must be >= 1, got {self.channel_count}.")
        if self.compression not in FRAME_COMPRESSIONS:
            raise ValueError(
                f"Stream {self.name!r}: compression must be one of {FRAME_COMPRESSIONS}, "
                f"got {self.compression!r}."
            )
        if self.encoding is not None:
            if self.encoding not in FRAME_ENCODINGS:
                raise ValueError(
                    f"Stream {self.name!r}: unknown video encoding {self.encoding!r}; "
                    f"expected one of {list(FRAME_ENCODINGS)}."
                )
            if self.frame_shape is None or int(np.prod(self.frame_shape)) != self.channel_count:
                raise ValueError(
                    f"Stream {self.name!r}: frame_shape {self.frame_shape} does not hold "
                    f"channel_count={self.channel_count} values."
                )
            if self.encoding == "DEPTH16-mm" and self.compression == "jpeg":
                raise ValueError(
                    f"Stream {self.name!r}: depth must be stored losslessly; use compression "
                    "'png' or 'none', not 'jpeg'."
                )
        elif self.compression != "none":
            raise ValueError(
                f"Stream {self.name!r}: compression {self.compression!r} applies to video "
                "frames only; this stream has no video encoding."
            )

    @property
    def group_name(self) -> str:
        """The HDF5 group name of this stream."""
        return self.name.replace("/", "_")

    @property
    def modality(self) -> str:
        """``rgb``, ``depth``, ``emg``, ``eeg``, ``markers``, ``au``, ``frame_index`` or ``misc``."""
        if self.encoding == "RGB8":
            return "rgb"
        if self.encoding == "DEPTH16-mm":
            return "depth"
        return MODALITY_BY_LSL_TYPE.get(self.type.lower(), "misc")

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one stored sample: the frame shape or ``(channel_count,)``."""
        return tuple(self.frame_shape) if self.frame_shape is not None else (self.channel_count,)

    @property
    def stored_dtype(self) -> Any:
        """Numpy dtype of stored samples (before per-frame compression)."""
        if self.encoding is not None:
            return FRAME_ENCODINGS[self.encoding]["dtype"]
        if self.channel_format == "string":
            return object
        return LSL_DTYPES[self.channel_format]
