"""Command-line front ends for video sources: ``import-video``, ``import-depth``, ``stream-camera``.

Thin wrappers, as in :mod:`acquisition.cli.record`: parse options, call
:func:`acquisition.io.video.import_video`, :func:`acquisition.io.depth.import_depth`
or :class:`acquisition.devices.camera_stream.CameraStreamer`, print the result with rich. The
``emosync`` entry point (``emosync.py``) registers them.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Optional

import typer

from acquisition.cli.common import fail, console, install_stop_handlers


def _print_warnings(report: dict[str, Any]) -> None:
    for message in report["warnings"]:
        console.print(f"[yellow]warning:[/] {message}")


def import_video(
    video: Path = typer.Argument(..., help="The video file (mp4, avi, mov, mkv...)."),
    out: Path = typer.Argument(..., help="Session file to create (.h5). Never overwritten."),
    start_time: float = typer.Option(
        0.0, help="Seconds added to the container's frame times: the LSL time of the first frame, if known "
                  "(default 0: seconds from the start of the clip)."),
    name: str = typer.Option("RGB", help="Stream name in the session."),
    subject: str = typer.Option("sub-unknown", help="Pseudonymous subject id (never a name)."),
    notes: str = typer.Option("", help="Free-text notes stored in the session."),
    compression: str = typer.Option("none", help="Per-frame storage: none, png (lossless) or jpeg."),
    json_out: bool = typer.Option(False, "--json", help="Print the import report as JSON."),
) -> None:
    """Import a video file as an RGB8 stream with the container's per-frame time stamps.

    Example: emosync import-video clip.mp4 session.h5 --start-time 12345.678
    """
    from acquisition.io.video import VideoImportError
    from acquisition.io.video import import_video as run_import

    try:
        report = run_import(video, out, start_time=start_time, name=name, subject_id=subject, notes=notes,
                            compression=compression, verbose="WARNING")
    except (VideoImportError, ValueError, FileExistsError, FileNotFoundError, PermissionError, OSError) as err:
        raise fail(str(err)) from None
    if json_out:
        typer.echo(json.dumps(report, indent=2))
        return
    c, t = report["container"], report["timing"]
    rate = f"{t['effective_fps']:.3f} fps effective" if t["effective_fps"] else "1 frame"
    console.print(f"Wrote {out}: stream {name}, {report['n_frames']} frames {c['width']}x{c['height']} "
                  f"({c['fourcc'] or '?'}, container {c['fps']:.3f} fps, {rate}"
                  f"{', VARIABLE frame rate' if t['variable_frame_rate'] else ''}), "
                  f"t = {report['first_time_s']:.3f} .. {report['last_time_s']:.3f} s")
    _print_warnings(report)


def import_depth(
    folder: Path = typer.Argument(..., help="Folder of one camera's 16-bit depth PNGs (and colour images)."),
    out: Path = typer.Argument(..., help="Session file to create (.h5). Never overwritten."),
    rate: float = typer.Option(30.0, help="Frame rate in Hz (frame k at start_time + k / rate)."),
    depth_scale_mm: float = typer.Option(
        1.0, help="Millimetres per stored depth unit: 1.0 for mm (Redwood, RealSense dumps), 0.2 for TUM RGB-D."),
    depth_pattern: str = typer.Option("*.png", help="Depth file names (shell pattern)."),
    color_pattern: str = typer.Option("*_color*", help="Colour file names (shell pattern); matched 1:1 by order."),
    timestamps: Optional[Path] = typer.Option(
        None, help="Time-stamp file ('time[,file]' rows, e.g. TUM depth.txt) used instead of --rate."),
    start_time: float = typer.Option(0.0, help="Seconds added to every time stamp."),
    subject: str = typer.Option("sub-unknown", help="Pseudonymous subject id (never a name)."),
    notes: str = typer.Option("", help="Free-text notes stored in the session."),
    json_out: bool = typer.Option(False, "--json", help="Print the import report as JSON."),
) -> None:
    """Import a folder of 16-bit depth PNGs as a DEPTH16-mm stream (plus RGB8 if colour frames match).

    Example: emosync import-depth tum_frames/ session.h5 --rate 30 --depth-scale-mm 0.2
    """
    from acquisition.io.depth import import_depth as run_import
    from acquisition.io.video import VideoImportError

    try:
        report = run_import(folder, out, rate=rate, depth_scale_mm=depth_scale_mm, depth_pattern=depth_pattern,
                            color_pattern=color_pattern, timestamps=timestamps, start_time=start_time,
                            subject_id=subject, notes=notes, verbose="WARNING")
    except (VideoImportError, ValueError, FileExistsError, FileNotFoundError, PermissionError, OSError) as err:
        raise fail(str(err)) from None
    if json_out:
        typer.echo(json.dumps(report, indent=2))
        return
    median = report["median_depth_mm"]
    console.print(f"Wrote {out}: {report['n_depth_frames']} depth frames {report['frame_shape'][1]}x"
                  f"{report['frame_shape'][0]} (median {median:.0f} mm, {report['valid_fraction']:.0%} valid)"
                  if median is not None else f"Wrote {out}: {report['n_depth_frames']} depth frames (no valid pixel)")
    if report["n_color_frames"]:
        console.print(f"  and {report['n_color_frames']} colour frames")
    _print_warnings(report)


def stream_camera(
    device: str = typer.Option("0", help="Camera index (0, 1, ...) or a video file (paced in real time)."),
    name: Optional[str] = typer.Option(None, help="LSL stream name (default Camera<index>)."),
    width: Optional[int] = typer.Option(None, help="Frame width to publish (pixels; with --height)."),
    height: Optional[int] = typer.Option(None, help="Frame height to publish (pixels; with --width)."),
    fps: Optional[float] = typer.Option(None, help="Highest frame rate to publish (Hz; default: the camera's)."),
    duration: Optional[float] = typer.Option(None, help="Seconds to stream (default: until Ctrl-C)."),
) -> None:
    """Publish a camera as an LSL VideoRaw RGB8 stream (plus <name>-FrameIndex) for any recorder.

    Example: emosync stream-camera --device 0 --name Camera0 --width 640 --height 480 --fps 30
    """
    from acquisition.devices.camera_stream import CameraStreamer

    try:
        streamer = CameraStreamer(device, name=name, width=width, height=height, fps=fps)
    except (ValueError, RuntimeError) as err:
        raise fail(str(err)) from None
    h, w = streamer.frame_shape[:2]
    console.print(f"Publishing {streamer.name} ({w}x{h} RGB8, {streamer.fps:g} Hz, source_id "
                  f"{streamer.source_id})" + (" (Ctrl-C to stop)" if duration is None else ""))
    stop = threading.Event()
    install_stop_handlers(stop)
    streamer.run(duration, stop_event=stop)
    console.print("Frames " + ", ".join(f"{k}: {v}" for k, v in streamer.stats().items()))
