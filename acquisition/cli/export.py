"""Command-line front ends of the MNE interop: ``export`` and ``import-table``.

Thin wrappers around :func:`acquisition.io.export.export_session` and
:func:`acquisition.io.table.import_table`: parse options, call the library, report
what was written. The ``emosync`` entry point (``emosync.py``) registers them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from acquisition.cli.common import fail, console


def export(
    fname: Path = typer.Argument(..., help="Session file (.h5)."),
    out: Path = typer.Argument(..., help="Output file (fif: *_raw.fif, edf, bdf, brainvision: *.vhdr) "
                                         "or folder (bids, csv)."),
    fmt: str = typer.Option(..., "--format", "-f", help="fif, edf, bdf, brainvision, bids or csv."),
    stream: list[str] = typer.Option([], "--stream", "-s", help="Stream to export, by name, type or modality "
                                     "(repeatable). Default: all EEG and EMG streams (csv: all but video)."),
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
    """
    from acquisition.io.export import EXPORT_FORMATS, export_session

    fmt = fmt.lower()
    if fmt not in EXPORT_FORMATS:
        raise fail(f"--format must be one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}.")
    streams = stream or None
    kwargs: dict = {"streams": streams, "overwrite": overwrite}
    if fmt == "bids":
        kwargs.update(markers="all" if markers else None, task=task, subject=subject, bids_session=bids_session,
                      line_freq=line_freq, eeg_format=eeg_format, emg_format=emg_format,
                      emg_placement=emg_placement, emg_placement_description=emg_placement_description,
                      emg_reference=emg_reference, eeg_reference=eeg_reference)
    elif fmt != "csv":
        kwargs.update(markers="all" if markers else None, sfreq=sfreq, line_freq=line_freq)
    try:
        written = export_session(fname, out, fmt, **kwargs)
    except (ValueError, FileExistsError, FileNotFoundError, ImportError, OSError, RuntimeError) as err:
        raise fail(str(err)) from None
    console.print(f"Wrote {len(written)} file(s):")
    for path in written:
        console.print(f"  {path}")


def import_table(
    fname: Path = typer.Argument(..., help="Text table: one row per sample (e.g. an Acqknowledge export)."),
    out: Path = typer.Argument(..., help="Session file to create (.h5). Never overwritten."),
    spec: str = typer.Option(..., help="Import spec: a YAML file, or a name under configs/import/ (e.g. nilsonne)."),
    subject: str = typer.Option("sub-unknown", help="Pseudonymous subject id (never a name)."),
    override: list[str] = typer.Option([], "--set", help="Spec override, repeatable: sampling_rate_hz=1000."),
) -> None:
    """Import a text table of physiological signals as a session (columns mapped by a YAML spec).

    Example: emosync import-table nilsonne_FMOV_09.txt s09.h5 --spec nilsonne --subject sub-09
    """
    from acquisition.session.reader import open_session
    from acquisition.io.table import import_table as run_import

    try:
        path = run_import(fname, out, spec, subject_id=subject, overrides=override)
    except (ValueError, FileExistsError, FileNotFoundError, OSError) as err:
        raise fail(str(err)) from None
    with open_session(path) as session:
        parts = []
        for name, s in session.streams.items():
            rate = f" at {s.nominal_srate:g} Hz" if s.nominal_srate else ""
            parts.append(f"{name}: {s.n_samples} samples{rate}")
    console.print(f"Wrote {path}: " + "; ".join(parts))
