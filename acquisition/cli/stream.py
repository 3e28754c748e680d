"""Command-line front ends of the live sources: ``stream-device``, ``stream-camera``, ``replay``.

Each publishes LSL outlets until its duration ends or Ctrl-C: a BrainFlow board
(:class:`acquisition.devices.brainflow_bridge.BrainFlowBridge`), a camera or video file
(:class:`acquisition.devices.camera_stream.CameraStreamer`), or a recorded session or XDF file replayed
with its original timing (:class:`acquisition.live.replay.SessionPlayer`). The library is imported
inside each command, so ``emosync --help`` does not pay for it. The ``emosync`` entry point
(``emosync.py``) registers them; a new device's command goes here too.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from acquisition.cli.common import console, fail, install_stop_handlers


# "\\[" in the help: typer renders help with rich, which would read "[brainflow]" as a style tag and drop it.
def stream_device(
    board: str = typer.Option(..., help="BrainFlow board name (synthetic, cyton, ganglion, ...) or id."),
    serial_port: str = typer.Option("", help="Serial port of the board (e.g. /dev/ttyUSB0)."),
    duration: Optional[float] = typer.Option(None, help="Seconds to stream (default: until Ctrl-C)."),
    name_prefix: str = typer.Option("", help="Prefix for the LSL stream names."),
    shared_rows: str = typer.Option("eeg", help="Rows a board reports as both EEG and EMG go to: eeg, emg, both."),
) -> None:
    """Publish a BrainFlow board's EEG/EMG as LSL streams.

    Needs the brainflow extra: pip install "emosync\\[brainflow]" (the quotes keep shells from globbing).

    Example: emosync stream-device --board synthetic --duration 60
    """
    try:
        from acquisition.devices.brainflow_bridge import BrainFlowBridge

        bridge = BrainFlowBridge(board, serial_port=serial_port, name_prefix=name_prefix,
                                 shared_rows=shared_rows)  # type: ignore[arg-type]
        bridge.start()
    except (ImportError, ValueError, RuntimeError) as err:
        raise fail(str(err)) from None
    console.print("Publishing " + ", ".join(bridge.stream_names) + (" (Ctrl-C to stop)" if duration is None else ""))
    stop = threading.Event()
    install_stop_handlers(stop)
    try:
        bridge.run(duration, stop_event=stop)  # stops the board on return; raises if the board goes silent
    except RuntimeError as err:
        raise fail(str(err)) from None
    console.print("Pushed " + ", ".join(f"{k}: {v}" for k, v in bridge.stats().items()))


def stream_camera(
    device: str = typer.Option("0", help="Camera index (0, 1, ...) or a video file (paced in real time)."),
    name: Optional[str] = typer.Option(None, help="LSL stream name (default Camera<index>)."),
    width: Optional[int] = typer.Option(None, help="Frame width to publish (pixels; with --height)."),
    height: Optional[int] = typer.Option(None, help="Frame height to publish (pixels; with --width)."),
    fps: Optional[float] = typer.Option(
        None, help="Frame rate to ask of the camera and the highest to publish (Hz; a video file is paced at it; "
                   "default: the camera's). The delivered rate is measured and reported."),
    exposure: Optional[float] = typer.Option(
        None, help="Manual exposure in the driver's units (OpenCV CAP_PROP_EXPOSURE; V4L2: 100 us steps). "
                   "Default: auto exposure."),
    duration: Optional[float] = typer.Option(None, help="Seconds to stream (default: until Ctrl-C)."),
) -> None:
    """Publish a camera as an LSL VideoRaw RGB8 stream (plus <name>-FrameIndex) for any recorder.

    Example: emosync stream-camera --device 0 --name Camera0 --width 640 --height 480 --fps 30

    Example: emosync stream-camera --device 0 --fps 120 --exposure 50
    """
    from acquisition.devices.camera_stream import CameraStreamer

    try:
        streamer = CameraStreamer(device, name=name, width=width, height=height, fps=fps, exposure=exposure)
    except (ValueError, RuntimeError) as err:
        raise fail(str(err)) from None
    h, w = streamer.frame_shape[:2]
    console.print(f"Publishing {streamer.name} ({w}x{h} RGB8, {streamer.fps:g} Hz, source_id "
                  f"{streamer.source_id})" + (" (Ctrl-C to stop)" if duration is None else ""))
    stop = threading.Event()
    install_stop_handlers(stop)
    streamer.run(duration, stop_event=stop)
    console.print("Frames " + ", ".join(f"{k}: {v}" for k, v in streamer.stats().items())
                  + f"; delivered {streamer.delivered_fps:.2f} fps (over the first seconds; asked "
                  + ("-" if fps is None else f"{fps:g}") + ")")


def replay(
    source: Path = typer.Argument(..., help="A session (.h5) or an XDF file (.xdf) to replay."),
    speed: float = typer.Option(1.0, help="Playback speed (2 = twice as fast; time stamps follow)."),
    loop: bool = typer.Option(False, "--loop", help="Start over at the end, until Ctrl-C."),
    name_prefix: str = typer.Option("", help="Prefix for the LSL stream names."),
    stream: list[str] = typer.Option([], "--stream", "-s", help="Replay only this stream; repeatable."),
    start: float = typer.Option(0.0, help="Start this many seconds into the recording."),
    duration: Optional[float] = typer.Option(None, help="Replay this many seconds of the recording."),
    source_id_suffix: str = typer.Option("", help="Append this to every source_id (two replays side by side)."),
    wait_consumers: float = typer.Option(
        0.0, help="Wait up to this many seconds for a consumer (e.g. a recorder) on every stream before starting."),
) -> None:
    """Replay recorded streams as live LSL outlets with their original timing and metadata.

    Example: emosync replay session.h5 --speed 2 --name-prefix replay_
    """
    from acquisition.live.replay import SessionPlayer

    try:
        player = SessionPlayer(source, speed=speed, loop=loop, name_prefix=name_prefix, streams=stream or None,
                               start_s=start, duration_s=duration, source_id_suffix=source_id_suffix,
                               wait_for_consumers_s=wait_consumers)
    except (ValueError, FileNotFoundError, FileExistsError, OSError, ImportError) as err:
        raise fail(str(err)) from None
    stop = threading.Event()
    install_stop_handlers(stop)
    length = "looping" if loop else f"{player.duration_s:.1f} s"
    console.print(f"Replaying {', '.join(player.stream_names)} ({length}; Ctrl-C to stop)")
    started = time.monotonic()
    try:
        player.run(stop_event=stop)
    finally:
        player.close()
    table = Table(title=f"Replayed {source.name} in {time.monotonic() - started:.1f} s")
    for column in ("stream", "samples", "pushed", "loops", "max lag ms"):
        table.add_column(column, justify="left" if column == "stream" else "right")
    for name, s in player.stats().items():
        table.add_row(name, str(s["samples"]), str(s["pushed"]), str(s["loops"]), f"{s['max_lag_s'] * 1e3:.1f}")
    console.print(table)
