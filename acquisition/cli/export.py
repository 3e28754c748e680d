"""Command-line front end of the exporters: ``export`` (FIF, EDF, BDF, BrainVision, BIDS, CSV, XDF).

A thin wrapper around :func:`acquisition.io.export.export_session`: parse options, call the library
(imported inside the command, so ``emosync --help`` does not pay for MNE), report what was written.
The ``emosync`` entry point (``emosync.py``) registers it; importers are in :mod:`acquisition.cli.imports`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from acquisition.cli.common import console, fail


def export(
    fname: Path = typer.Argument(..., help="Session file (.h5)."),
    out: Path = typer.Argument(..., help="Output file (fif: *_raw.fif, edf, bdf, brainvision: *.vhdr, xdf: *.xdf) "
                                         "or folder (bids, csv)."),
    fmt: str = typer.Option(..., "--format", "-f", help="fif, edf, bdf, brainvision, bids, csv or xdf."),
    stream: list[str] = typer.Option([], "--stream", "--streams", "-s",
                                     help="Streams to export, by name, type or modality: repeat the option or "
                                     "separate them with commas (EMG,EEG,Markers). Default: all EEG and EMG "
                                     "streams (csv, xdf: all but video and depth)."),
    markers: bool = typer.Option(True, "--markers/--no-markers", help="Marker streams become annotations/events."),
    sfreq: Optional[float] = typer.Option(None, help="Rate (Hz) when streams of different rates share one file "
                                          "(fif/edf/bdf/brainvision). Default: the highest; others are resampled."),
    line_freq: float = typer.Option(50.0, help="Mains frequency in Hz, stored in the file / BIDS sidecar."),
    task: Optional[str] = typer.Option(None, help="BIDS task label (default: the session's task, else emosync)."),
    subject: Optional[str] = typer.Option(None, help="BIDS subject label (default: the session's subject_id)."),
    bids_session: Optional[str] = typer.Option(None, help="BIDS session label (ses-)."),
    eeg_format: str = typer.Option("BrainVision", help="BIDS EEG file format: BrainVision or EDF."),
    emg_format: str = typer.Option("EDF", help="BIDS EMG file format: EDF or BDF."),
    emg_placement: str = typer.Option("Other", help="BIDS EMGPlacementScheme: Other, Measured or ChannelSpecific."),
    emg_placement_description: Optional[str] = typer.Option(
        None, help="BIDS EMGPlacementSchemeDescription (default: built from the muscles in the stream metadata)."),
    emg_reference: Optional[str] = typer.Option(None, help="BIDS EMGReference (default: from the stream metadata)."),
    eeg_reference: Optional[str] = typer.Option(None, help="BIDS EEGReference (default: from the stream metadata)."),
    overwrite: bool = typer.Option(False, help="Replace existing output files."),
) -> None:
    """Export a session for MNE, EEGLAB, BIDS tools or spreadsheets (MNE and mne-bids writers).

    Example: emosync export session.h5 --format bids bids_root/

    Example: emosync export session.h5 --format xdf out.xdf --streams EMG,EEG,Markers
    """
    from acquisition.io.export import EXPORT_FORMATS, export_session

    fmt = fmt.lower()
    if fmt not in EXPORT_FORMATS:
        raise fail(f"--format must be one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}.")
    # Names may hold spaces but not commas: "EMG,EEG" is two streams, as in --streams EMG,EEG,Markers.
    streams = [name.strip() for item in stream for name in item.split(",") if name.strip()] or None
    kwargs: dict = {"streams": streams, "overwrite": overwrite}
    if fmt == "bids":
        kwargs.update(markers="all" if markers else None, task=task, subject=subject, bids_session=bids_session,
                      line_freq=line_freq, eeg_format=eeg_format, emg_format=emg_format,
                      emg_placement=emg_placement, emg_placement_description=emg_placement_description,
                      emg_reference=emg_reference, eeg_reference=eeg_reference)
    elif fmt not in ("csv", "xdf"):
        kwargs.update(markers="all" if markers else None, sfreq=sfreq, line_freq=line_freq)
    try:
        written = export_session(fname, out, fmt, **kwargs)
    except (ValueError, FileExistsError, FileNotFoundError, ImportError, OSError, RuntimeError) as err:
        raise fail(str(err)) from None
    console.print(f"Wrote {len(written)} file(s):")
    for path in written:
        console.print(f"  {path}")
