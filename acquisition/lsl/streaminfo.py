"""Build LSL stream descriptions with channel metadata, and read them back as :class:`StreamSpec`.

Metadata follow the LSL conventions (``desc/channels/channel/{label,unit,type}``,
``desc/synchronization/can_drop_samples``) so that LabRecorder, pyxdf and mne-lsl
read our streams as they read any device's. Video frames add
``desc/encoding`` (``RGB8`` or ``DEPTH16-mm``) and ``desc/frame/{width,height,channels}``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

import pylsl

from acquisition.session.format import FRAME_ENCODINGS, StreamSpec


def make_stream_info(name: str, type: str, *, channel_count: int, nominal_srate: float,
                     channel_format: str, source_id: str,
                     channel_labels: Sequence[str] = (), channel_units: Sequence[str] = (),
                     channel_types: Sequence[str] = (), encoding: str | None = None,
                     frame_shape: tuple[int, ...] | None = None, can_drop_samples: bool = False,
                     manufacturer: str = "emosync") -> pylsl.StreamInfo:
    """Create a ``pylsl.StreamInfo`` with channel, frame and synchronization metadata.

    Parameters
    ----------
    name, type : str
        LSL stream name and content type.
    channel_count : int
        Values per sample (``height * width * channels`` for video frames).
    nominal_srate : float
        Nominal rate in Hz; 0 for irregular streams.
    channel_format : str
        LSL channel format (``float32``, ``int8``, ``string``...).
    source_id : str
        Unique, stable id of the source: required so inlets can recover after a restart.
    channel_labels, channel_units, channel_types : sequence of str
        Per-channel metadata (same length as ``channel_count`` when given).
    encoding : str | None
        ``"RGB8"`` or ``"DEPTH16-mm"`` for video frames.
    frame_shape : tuple | None
        ``(height, width, 3)`` or ``(height, width)`` for video frames.
    can_drop_samples : bool
        Whether the source may skip samples (cameras); offline dejitter is skipped for them.
    """
    if not source_id:
        raise ValueError(f"Stream {name!r} needs a source_id, or LSL inlets cannot recover it after a restart.")
    if encoding is not None and encoding not in FRAME_ENCODINGS:
        raise ValueError(f"encoding must be one of {list(FRAME_ENCODINGS)}, got {encoding!r}")
    for what, values in (("channel_labels", channel_labels), ("channel_units", channel_units),
                         ("channel_types", channel_types)):
        if values and len(values) != channel_count:
            raise ValueError(f"Stream {name!r}: {len(values)} {what} for {channel_count} channels.")
    info = pylsl.StreamInfo(name, type, channel_count, nominal_srate, channel_format, source_id)
    desc = info.desc()
    desc.append_child_value("manufacturer", manufacturer)
    if channel_labels:
        channels = desc.append_child("channels")
        for i, label in enumerate(channel_labels):
            channel = channels.append_child("channel")
            channel.append_child_value("label", label)
            if channel_units:
                channel.append_child_value("unit", channel_units[i])
            if channel_types:
                channel.append_child_value("type", channel_types[i])
    if encoding is not None:
        if frame_shape is None:
            raise ValueError(f"Stream {name!r}: a video encoding needs frame_shape.")
        desc.append_child_value("encoding", encoding)
        frame = desc.append_child("frame")
        frame.append_child_value("height", str(frame_shape[0]))
        frame.append_child_value("width", str(frame_shape[1]))
        frame.append_child_value("channels", str(frame_shape[2] if len(frame_shape) == 3 else 1))
    sync = desc.append_child("synchronization")
    sync.append_child_value("can_drop_samples", "true" if can_drop_samples else "false")
    return info


def xml_text(node: ET.Element | None, tag: str, default: str = "") -> str:
    """Stripped text of ``node/tag``, or ``default`` when the element or its text is missing."""
    found = node.find(tag) if node is not None else None
    return (found.text or default).strip() if found is not None and found.text else default


def read_channels(desc: ET.Element | None) -> tuple[list[str], list[str], list[str]]:
    """Channel labels, units and types from an LSL ``desc`` element (``desc/channels/channel``).

    Returns three lists of equal length (empty strings where a channel omits a field),
    or three empty lists when the description has no channels.
    """
    labels: list[str] = []
    units: list[str] = []
    types: list[str] = []
    channels = desc.find("channels") if desc is not None else None
    if channels is not None:
        for channel in channels.findall("channel"):
            labels.append(xml_text(channel, "label"))
            units.append(xml_text(channel, "unit"))
            types.append(xml_text(channel, "type"))
    return labels, units, types


def spec_from_stream_info(info: pylsl.StreamInfo, *, name: str | None = None,
                          compression: str = "none") -> StreamSpec:
    """Describe a resolved stream (with its full ``desc``, e.g. from ``inlet.info()``) as a :class:`StreamSpec`.

    Parameters
    ----------
    info : pylsl.StreamInfo
        The stream's full description.
    name : str | None
        The name to store the stream under (default: the LSL name).
    compression : str
        Per-frame compression for video streams; ignored for other streams.
    """
    xml = info.as_xml()
    root = ET.fromstring(xml)
    desc = root.find("desc")
    labels, units, types = read_channels(desc)
    encoding = xml_text(desc, "encoding") or None
    frame_shape = None
    if encoding is not None:
        if encoding not in FRAME_ENCODINGS:
            raise ValueError(
                f"Stream {info.name()!r} declares video encoding {encoding!r}; emosync records "
                f"{list(FRAME_ENCODINGS)}. Publish frames in one of those encodings."
            )
        frame = desc.find("frame") if desc is not None else None
        height, width = int(xml_text(frame, "height", "0")), int(xml_text(frame, "width", "0"))
        n_colors = FRAME_ENCODINGS[encoding]["channels"]
        frame_shape = (height, width, 3) if n_colors == 3 else (height, width)
    sync = desc.find("synchronization") if desc is not None else None
    can_drop = xml_text(sync, "can_drop_samples").lower() == "true" or encoding is not None
    channel_count = info.channel_count()
    return StreamSpec(
        name=name or info.name(),
        type=info.type(),
        channel_count=channel_count,
        channel_format=_FORMAT_NAMES[info.channel_format()],
        nominal_srate=info.nominal_srate(),
        source_id=info.source_id(),
        hostname=info.hostname(),
        channel_labels=labels if len(labels) == channel_count else [],
        channel_units=units if len(units) == channel_count else [],
        channel_types=types if len(types) == channel_count else [],
        frame_shape=frame_shape,
        encoding=encoding,
        compression=compression if encoding is not None else "none",
        can_drop_samples=can_drop,
        info_xml=xml,
        extra={"lsl_uid": info.uid(), "lsl_created_at": info.created_at(),
               "lsl_version": info.version()},
    )


_FORMAT_NAMES = {
    pylsl.cf_float32: "float32",
    pylsl.cf_double64: "double64",
    pylsl.cf_string: "string",
    pylsl.cf_int32: "int32",
    pylsl.cf_int16: "int16",
    pylsl.cf_int8: "int8",
    pylsl.cf_int64: "int64",
}
