"""Command-line front end of face tracking: ``annotate``.

A thin wrapper around :func:`acquisition.annotate.face_tracking.annotate_session`: parse options,
run, print what was written. The ``emosync`` entry point (``emosync.py``) registers it as
``emosync annotate``.

Exit status: 0 when the streams were written, also for a video in which no face was found
(that ends with a warning: the NaN streams are a valid result, and a batch over many
sessions should not stop on one empty clip); 1 for a usage error, a missing or damaged
model, a missing or non-RGB stream, or streams that exist without ``--overwrite``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from acquisition.cli.common import fail, console


def annotate(
    fname: Path = typer.Argument(..., help="A closed session file (.h5) with an RGB video stream."),
    stream: Optional[str] = typer.Option(None, "--stream", "-s", help="RGB stream to annotate (default: the first)."),
    all_faces: bool = typer.Option(False, "--all-faces",
                                   help="One set of streams per tracked face (<video>-Face1-...), not just the "
                                        "largest face."),
    max_faces: int = typer.Option(4, help="Most faces considered per frame (MediaPipe num_faces)."),
    min_confidence: float = typer.Option(0.5, help="Face detection confidence 0-1; lower (0.3) finds small faces."),
    model: Optional[Path] = typer.Option(None, "--model",
                                         help="face_landmarker.task (default: $EMOSYNC_FACE_LANDMARKER, then the "
                                              "model bundled with emosync)."),
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="Replace face-tracking streams an earlier annotate wrote (only those)."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    verbose: bool = typer.Option(False, "--verbose", "-v",
                                 help="Debug output, including MediaPipe's own log lines (hidden otherwise)."),
) -> None:
    """Track faces in a session's video and add landmarks, blendshapes, head pose, AUs and face crops.

    Uses the MediaPipe Face Landmarker model bundled with emosync unless --model says otherwise.

    A video without any face gives NaN streams, a warning and exit status 0.

    Example: emosync annotate session.h5 --stream RGB
    """
    from acquisition.annotate.face_model import FaceModelNotFoundError
    from acquisition.annotate.face_tracking import annotate_session

    if max_faces < 1:
        raise fail(f"--max-faces must be at least 1, got {max_faces}.")
    if not 0.0 < min_confidence <= 1.0:
        raise fail(f"--min-confidence must be in (0, 1], got {min_confidence}.")
    try:
        summary = annotate_session(fname, stream=stream, all_faces=all_faces, max_faces=max_faces,
                                   min_confidence=min_confidence, model=model,
                                   overwrite=overwrite, verbose="DEBUG" if verbose else None)
    except (FaceModelNotFoundError, FileNotFoundError, FileExistsError, ValueError, OSError) as err:
        raise fail(str(err)) from None
    if json_out:
        typer.echo(json.dumps(summary, indent=2))
        return
    console.print(f"Annotated {summary['stream']!r} in {fname}: {summary['n_frames']} frames, face found in "
                  f"{summary['n_frames_with_face']} ({100 * summary['detection_rate']:.1f} %), "
                  f"{summary['fps']:.1f} frames/s")
    console.print("Wrote " + (", ".join(summary["streams"]) or "no streams: no face slot held a face"))
