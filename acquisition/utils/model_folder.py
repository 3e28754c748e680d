"""The model folder: one layout for every model emosync saves (fusion encoders, synth generators).

In diffusers' style, ``save_pretrained(dir)`` writes a folder and ``from_pretrained(dir)`` rebuilds
the model from it, offline::

    DIR/config.json   what the model is: {"format": "emosync-model", "format_version": 2,
                      "kind": "multimodal-encoder" | "diffusion" | "gan", ...the model's own keys}
    DIR/weights/      the weights, safetensors (a diffusers pipeline folder keeps its own small
                      JSON configs beside its safetensors)

Anything else in ``DIR`` (training checkpoints, logs, sample grids) is not part of the model.
``kind`` names what reads the folder, so a loader dispatches on it and a reader refuses a
folder of another kind. ``config.json`` is written last, so a folder with one is complete.

The weights sit in their own folder, not beside ``config.json`` as in diffusers, because
:func:`weights_sha256` identifies a model by its weights alone: corpora and privacy audits record
that hash, and training runs write logs and checkpoints into the same ``DIR``.

Format version 1 (before fusion and synth shared this layout) is still read:

- a synth generator: ``emosync_model.json`` (the model card, with ``kind``) + ``weights/``;
- a fusion encoder (``runs/<run>/model``): ``config.json`` without ``format`` and
  ``model.safetensors`` (or ``model.pt``) beside it.

Migrating one is loading and saving it (``from_pretrained`` then ``save_pretrained`` into the
same folder): the version-1 files are replaced, and :func:`weights_sha256` does not change.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .docs import add_doc
from .hashing import file_sha256

#: ``config.json``'s ``format`` value.
FORMAT = "emosync-model"
#: The layout this code writes; folders with a higher version are refused, lower ones read.
FORMAT_VERSION = 2
#: The file describing the model.
CONFIG_NAME = "config.json"
#: The folder holding the weights (the only part :func:`weights_sha256` hashes).
WEIGHTS_DIR = "weights"
#: Keys every ``config.json`` starts with; the rest belongs to the model.
HEADER_KEYS = ("format", "format_version", "kind")
#: Version 1: a synth generator's model card (``weights/`` as today).
LEGACY_CARD_NAME = "emosync_model.json"
#: Version 1: a fusion encoder's weights, beside its ``config.json`` (safetensors, or torch.save).
LEGACY_WEIGHT_SUFFIXES = (".safetensors", ".pt")
LEGACY_ENCODER_WEIGHTS = "model"
#: Version 1 fusion folders held one kind of model only.
LEGACY_ENCODER_KIND = "multimodal-encoder"
#: Bookkeeping keys diffusers adds to its JSON configs (where and by which version a pipeline was saved),
#: left out of :func:`weights_sha256`.
VOLATILE_JSON_KEYS = ("_name_or_path", "_diffusers_version")

add_doc("model_dir", """
model_dir : path-like
    A model folder, as ``save_pretrained`` writes it (``config.json`` + ``weights/``; see
    :mod:`acquisition.utils.model_folder`). Folders of the earlier layout load too.
""")


@dataclass(frozen=True)
class ModelFolder:
    """A model folder, read and checked by :func:`read_model_folder`.

    Attributes
    ----------
    path : Path
        The folder.
    config : dict
        The whole ``config.json`` (version 1: the model card or the encoder config).
    kind : str
        What the folder holds (``"multimodal-encoder"``, ``"diffusion"``, ``"gan"``).
    format_version : int
        1 for the layouts before this one, else :data:`FORMAT_VERSION`.
    weights : Path
        The folder holding the weight files (``path / "weights"``; ``path`` itself for a version-1 encoder).
    """

    path: Path
    config: dict[str, Any]
    kind: str
    format_version: int
    weights: Path

    @property
    def arguments(self) -> dict[str, Any]:
        """The model's own keys of ``config.json`` (without ``format``, ``format_version`` and ``kind``)."""
        return {k: v for k, v in self.config.items() if k not in HEADER_KEYS}

    def weight_files(self) -> list[Path]:
        """The weight files, sorted (what :func:`weights_sha256` hashes)."""
        if self.weights == self.path:  # a version-1 encoder: the weights beside config.json
            return sorted(p for p in (self.path / (LEGACY_ENCODER_WEIGHTS + s) for s in LEGACY_WEIGHT_SUFFIXES)
                          if p.is_file())
        return sorted(p for p in self.weights.rglob("*") if p.is_file())

    def weight_file(self, name: str) -> Path:
        """The file of the weights called ``name`` (``weights/<name>.safetensors``; version 1 also ``.pt``).

        Raises
        ------
        FileNotFoundError
            If the folder has no such weights (the message lists the weight files it has).
        """
        suffixes = LEGACY_WEIGHT_SUFFIXES if self.format_version == 1 else LEGACY_WEIGHT_SUFFIXES[:1]
        for suffix in suffixes:
            if (path := self.weights / (name + suffix)).is_file():
                return path
        have = [p.relative_to(self.path).as_posix() for p in self.weight_files()]
        raise FileNotFoundError(f"{self.path} has no {name!r} weights ({self.weights / (name + suffixes[0])}); "
                                f"its weight files: {have or 'none'}. Save the model again with save_pretrained.")


def is_model_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a model's description (``config.json``, or a version-1 model card)."""
    path = Path(path)
    return (path / CONFIG_NAME).is_file() or (path / LEGACY_CARD_NAME).is_file()


def read_model_folder(path: str | os.PathLike, *, kind: str | Sequence[str] | None = None) -> ModelFolder:
    """Read and check a model folder (this layout or version 1).

    Parameters
    ----------
    path : path-like
        The folder ``save_pretrained`` wrote.
    kind : str | sequence of str | None
        The kind(s) the caller can load; None accepts any.

    Returns
    -------
    folder : ModelFolder

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a model folder (no ``config.json``), or holds no weight files.
    ValueError
        If ``config.json`` is not valid JSON or not an emosync model's, was written by a newer
        emosync (a higher ``format_version``), or describes another kind than ``kind``.
    """
    path = Path(path)
    folder = _describe(path)
    kinds = [kind] if isinstance(kind, str) else list(kind or [])
    if kinds and folder.kind not in kinds:
        raise ValueError(f"{path} holds a {folder.kind!r} model, not {' or '.join(map(repr, kinds))}; pass a folder "
                         f"of that kind (the 'kind' in {path / CONFIG_NAME}).")
    if not folder.weight_files():
        where = f"{folder.weights}/" if folder.weights != path else f"{LEGACY_ENCODER_WEIGHTS}.safetensors"
        raise FileNotFoundError(f"{path} describes a {folder.kind!r} model but holds no weights ({where} is "
                                "missing or empty): the save was interrupted or the files were removed. Save or "
                                "train the model again.")
    return folder


def _describe(path: Path) -> ModelFolder:
    """The folder's description and layout, without checking kind or weights."""
    config_path = path / CONFIG_NAME
    if config_path.is_file():
        config = _read_json(config_path)
        if "format" not in config:
            if "modalities" in config:  # version 1 fusion encoder: only fusion wrote a bare config.json
                return ModelFolder(path, config, LEGACY_ENCODER_KIND, 1, path)
            raise ValueError(f"{config_path} does not describe an emosync model (no 'format'): pass the model folder "
                             "itself, not a component folder inside its weights/.")
        return ModelFolder(path, config, _check_header(config, config_path), int(config["format_version"]),
                           path / WEIGHTS_DIR)
    if (path / LEGACY_CARD_NAME).is_file():
        card = _read_json(path / LEGACY_CARD_NAME)
        return ModelFolder(path, card, str(card.get("kind")), 1, path / WEIGHTS_DIR)
    what = "does not exist" if not path.exists() else "is not a model folder"
    raise FileNotFoundError(f"{path} {what}: no {CONFIG_NAME}. A model folder is what save_pretrained writes: "
                            "`emosync pretrain --out RUN` writes RUN/model, `emosync synth train --out DIR` "
                            "writes DIR.")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}); the model folder is damaged: save it again.") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path} holds a JSON {type(value).__name__}, not the object that describes a model.")
    return value


def _check_header(config: dict[str, Any], config_path: Path) -> str:
    """The kind of a current-layout ``config.json``, after checking its format and version."""
    if config["format"] != FORMAT:
        raise ValueError(f"{config_path} has format {config['format']!r}, not {FORMAT!r}: not an emosync model "
                         "folder (a diffusers component folder sits inside weights/, not at the top).")
    version = config.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ValueError(f"{config_path} has format_version {version!r}; expected a positive integer.")
    if version > FORMAT_VERSION:
        raise ValueError(f"{config_path} has format_version {version}, newer than this emosync reads (up to "
                         f"{FORMAT_VERSION}): it was saved by a newer emosync. Upgrade emosync to load it.")
    if not isinstance(config.get("kind"), str):
        raise ValueError(f"{config_path} has no 'kind' (what the folder holds); the model folder is damaged.")
    return config["kind"]


def prepare_weights_dir(path: str | os.PathLike) -> Path:
    """Start saving a model into ``path``: an empty ``weights/`` folder, returned.

    ``config.json`` is removed first, so until :func:`write_model_config` finishes the save the
    folder reads as "not a model folder" rather than as a model with other weights; an older
    model's weights never mix with the new ones.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for name in (CONFIG_NAME, LEGACY_CARD_NAME):
        (path / name).unlink(missing_ok=True)
    weights = path / WEIGHTS_DIR
    if weights.is_dir():
        shutil.rmtree(weights)
    weights.mkdir()
    return weights


def write_model_config(path: str | os.PathLike, kind: str, config: Mapping[str, Any]) -> Path:
    """Finish saving a model: write ``config.json`` (atomically) and remove version-1 weight files.

    Parameters
    ----------
    path : path-like
        The folder :func:`prepare_weights_dir` prepared, with the weights written.
    kind : str
        What the folder holds; readers dispatch on it.
    config : mapping
        The model's own keys (JSON-able; numpy scalars and paths are converted). Header keys in it
        (``format``, ``format_version``, ``kind``) are replaced.

    Returns
    -------
    path : Path
        The ``config.json`` written.
    """
    path = Path(path)
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind}
    # Key order is kept, not sorted: it can carry meaning (a MultiModalEncoder's modality order).
    body = {**header, **{k: v for k, v in config.items() if k not in HEADER_KEYS}}
    target = path / CONFIG_NAME
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(body, indent=2, default=_json_default))
    os.replace(tmp, target)
    for suffix in LEGACY_WEIGHT_SUFFIXES:  # a version-1 encoder's weights, superseded by weights/
        (path / (LEGACY_ENCODER_WEIGHTS + suffix)).unlink(missing_ok=True)
    return target


def _json_default(value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item):  # numpy (and torch) scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def weights_sha256(path: str | os.PathLike) -> str:
    """SHA-256 over a model folder's weight files: relative path and content hash of each, sorted.

    Two folders with the same weights hash alike wherever they live, whatever their layout version;
    ``config.json``, training logs and checkpoints do not enter the hash. JSON files inside
    ``weights/`` (a diffusers pipeline's configs) enter canonicalized (sorted keys) without
    :data:`VOLATILE_JSON_KEYS`, which change with where and by which version a pipeline was saved.

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`read_model_folder`.
    """
    folder = read_model_folder(path)
    digest = hashlib.sha256()
    for file in folder.weight_files():
        if file.suffix == ".json":
            content = {k: v for k, v in _read_json(file).items() if k not in VOLATILE_JSON_KEYS}
            file_hash = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
        else:
            file_hash = file_sha256(file)
        digest.update(f"{file.relative_to(folder.weights).as_posix()}:{file_hash}\n".encode())
    return digest.hexdigest()


def save_safetensors(path: str | os.PathLike, state: Mapping[str, Any]) -> Path:
    """Write a state dict (name -> tensor) as safetensors: detached, on the CPU, contiguous."""
    from safetensors.torch import save_file

    save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(path))
    return Path(path)


def save_state_dict_folder(path: str | os.PathLike, kind: str, config: Mapping[str, Any],
                           state: Mapping[str, Any], weights_name: str = "model") -> Path:
    """Write a torch module's model folder: ``weights/<weights_name>.safetensors`` first, ``config.json`` last.

    ``config.json`` last, so an interrupted save never leaves a folder that looks complete.
    """
    save_safetensors(prepare_weights_dir(path) / f"{weights_name}.safetensors", state)
    write_model_config(path, kind, config)
    return Path(path)


def load_weights(folder: ModelFolder, name: str) -> dict[str, Any]:
    """The state dict called ``name`` (``weights/<name>.safetensors``; a version-1 ``.pt`` too), on the CPU.

    Raises
    ------
    FileNotFoundError
        If the folder has no such weights.
    """
    path = folder.weight_file(name)
    if path.suffix == ".pt":
        import torch

        return torch.load(path, map_location="cpu", weights_only=True)
    from safetensors.torch import load_file

    return load_file(str(path))
