"""Find the MediaPipe Face Landmarker model file (``face_landmarker.task``) without downloading it.

Face tracking (:mod:`acquisition.annotate.face_tracking`) needs Google's Face Landmarker
bundle, a 3.7 MB zip of the face detector, the 478-point landmark model and the
52-blendshape model. emosync ships it as package data (``acquisition/annotate/models/``,
Apache-2.0, see the ``NOTICE`` there) and never downloads it at run time (labs record
offline, and a silent download would change results between runs). The lookup order:

1. an explicit path (the ``--model`` option of ``emosync annotate``);
2. the environment variable ``EMOSYNC_FACE_LANDMARKER``;
3. the bundled file, whose SHA-256 is checked against :data:`MODEL_SHA256` (a mismatch
   means a damaged installation).

A model of another hash given by 1. or 2. is allowed (a newer or retrained bundle); its hash
is logged, and it is stored with every derived stream so that results can be traced to the
exact model file.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from acquisition.utils.hashing import file_sha256
from acquisition.utils.logs import logger

#: Environment variable that names the model file.
MODEL_ENV_VAR = "EMOSYNC_FACE_LANDMARKER"
#: Official download location of the float16 v1 model (for messages only; never fetched).
MODEL_URL = ("https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/float16/1/"
             "face_landmarker.task")
MODEL_FILENAME = "face_landmarker.task"
#: SHA-256 of the bundled file: Google's float16 v1 Face Landmarker.
MODEL_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
#: Where the package keeps its copy.
BUNDLED_MODEL = Path(__file__).resolve().parent / "models" / MODEL_FILENAME


class FaceModelNotFoundError(FileNotFoundError):
    """No Face Landmarker model file could be found."""


class FaceModelChecksumError(ValueError):
    """The bundled Face Landmarker model is not the file emosync was released with."""


def face_model_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a model file, computed once per file version (path, size, modification time).

    Parameters
    ----------
    path : path-like
        An existing model file.

    Returns
    -------
    sha256 : str
        The hex digest.
    """
    path = Path(path).resolve()
    stat = path.stat()
    return _sha256_of_version(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _sha256_of_version(path: Path, size: int, mtime_ns: int) -> str:
    """The hash of one version of a file; size and mtime are the cache key, not inputs."""
    return file_sha256(path)


def _check_file(path: Path, origin: str) -> Path:
    if not path.is_file():
        raise FaceModelNotFoundError(
            f"The Face Landmarker model given by {origin} does not exist: {path}. "
            f"Point it at a '{MODEL_FILENAME}' file, or leave it unset to use the model bundled with emosync."
        )
    sha = face_model_sha256(path)
    if sha == MODEL_SHA256:
        logger.debug("Face Landmarker model from %s: %s (the float16 v1 model, as bundled)", origin, path)
    else:
        logger.info("Face Landmarker model from %s: %s, SHA-256 %s (not the bundled float16 v1 model %s...); "
                    "the hash is stored with the derived streams", origin, path, sha, MODEL_SHA256[:8])
    return path


def bundled_model_path() -> Path:
    """The ``face_landmarker.task`` shipped with emosync, after checking its SHA-256.

    Returns
    -------
    path : Path
        The bundled model file.

    Raises
    ------
    FaceModelNotFoundError
        If the file is missing from the installed package.
    FaceModelChecksumError
        If its SHA-256 is not :data:`MODEL_SHA256` (a damaged or partial installation).
    """
    if not BUNDLED_MODEL.is_file():
        raise FaceModelNotFoundError(
            f"The Face Landmarker model bundled with emosync is missing: {BUNDLED_MODEL}. The installation is "
            f"incomplete; reinstall emosync (pip install --force-reinstall emosync), or pass --model PATH or set "
            f"{MODEL_ENV_VAR}=PATH to a '{MODEL_FILENAME}' file (Apache-2.0, {MODEL_URL})."
        )
    sha = face_model_sha256(BUNDLED_MODEL)
    if sha != MODEL_SHA256:
        raise FaceModelChecksumError(
            f"The Face Landmarker model bundled with emosync is damaged: {BUNDLED_MODEL} has SHA-256 {sha}, "
            f"expected {MODEL_SHA256}. Reinstall emosync (pip install --force-reinstall emosync), or pass "
            f"--model PATH or set {MODEL_ENV_VAR}=PATH to a good copy ({MODEL_URL})."
        )
    return BUNDLED_MODEL


def find_face_model(model: str | os.PathLike | None = None) -> Path:
    """Return the path of the Face Landmarker model to use.

    Parameters
    ----------
    model : path-like | None
        An explicit model file; wins over everything else. Any file is accepted (its hash
        is logged when it is not the bundled model's).

    Returns
    -------
    path : Path
        An existing ``.task`` file: ``model``, else ``$EMOSYNC_FACE_LANDMARKER``, else the
        bundled model.

    Raises
    ------
    FaceModelNotFoundError
        If ``model`` or ``$EMOSYNC_FACE_LANDMARKER`` names a missing file, or the bundled
        file is missing; the message says how to fix it.
    FaceModelChecksumError
        If the bundled file is damaged (wrong SHA-256).
    """
    if model is not None and str(model) != "":
        return _check_file(Path(model).expanduser(), "the explicit model path (--model)")
    env = os.environ.get(MODEL_ENV_VAR, "")
    if env:
        return _check_file(Path(env).expanduser(), f"${MODEL_ENV_VAR}")
    return bundled_model_path()
