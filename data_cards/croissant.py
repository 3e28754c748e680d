"""The Croissant JSON-LD form of a card, with the responsible-AI (RAI) fields, validated offline.

Built with mlcroissant's own node classes (so the ``@context`` and property names are the
library's), serialized, then loaded back with :class:`mlcroissant.Dataset` and every record
of ``sessions.csv`` read: a card that does not validate is never written. All URLs in the
file are relative paths, so validation never touches the network. The session files are
listed as FileObjects with their SHA-256 (Croissant cannot read HDF5; ``sessions.csv``
carries their contents' description as a RecordSet).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from data_cards.manifest import manifest_columns

#: Croissant 1.1 with the RAI extension.
CONFORMS_TO = ["http://mlcommons.org/croissant/1.1", "http://mlcommons.org/croissant/RAI/1.0"]
#: A prefix for the few emosync-specific properties (the machine-readable ``synthetic`` marker).
EMOSYNC_VOCAB = "urn:emosync:card:"

_LICENSE_URLS = {
    "cc0-1.0": "https://creativecommons.org/publicdomain/zero/1.0/",
    "cc-by-4.0": "https://creativecommons.org/licenses/by/4.0/",
    "cc-by-sa-4.0": "https://creativecommons.org/licenses/by-sa/4.0/",
    "cc-by-nc-4.0": "https://creativecommons.org/licenses/by-nc/4.0/",
    "cc-by-nc-sa-4.0": "https://creativecommons.org/licenses/by-nc-sa/4.0/",
    "cc-by-nc-nd-4.0": "https://creativecommons.org/licenses/by-nc-nd/4.0/",
    "mit": "https://opensource.org/licenses/MIT",
    "apache-2.0": "https://www.apache.org/licenses/LICENSE-2.0",
    "bsd-3-clause": "https://opensource.org/licenses/BSD-3-Clause",
}


@contextlib.contextmanager
def _quiet_absl() -> Iterator[None]:
    """mlcroissant warns through absl about recommended properties (the README's TODOs already say so),
    and rdflib about its own deprecations."""
    from absl import logging as absl_logging

    level = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning, module="rdflib")
            yield
    finally:
        absl_logging.set_verbosity(level)


def license_url(license_id: str | None, explicit_url: str | None = None) -> str | None:
    """A license URL for Croissant from an SPDX-style id (``cc-by-4.0``) or an explicit URL."""
    if explicit_url:
        return explicit_url
    if not license_id or license_id == "other":
        return None
    return _LICENSE_URLS.get(license_id.lower(), f"https://spdx.org/licenses/{license_id}.html")


def _parse_time(text: str) -> _dt.datetime | None:
    try:
        return _dt.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None


def build_croissant(*, rai: dict[str, Any], meta: dict[str, Any], sessions: list[tuple[str, str]],
                    manifest_sha256: str, stats: Any, synthetic: bool | None) -> dict[str, Any]:
    """The Croissant JSON-LD document (a dict).

    Parameters
    ----------
    rai : dict
        mlcroissant :class:`~mlcroissant.Metadata` keyword arguments for the RAI properties
        (``data_collection``, ``data_biases``...).
    meta : dict
        ``name``, ``description``, ``license``, ``cite_as``, ``version``, ``date_published``,
        ``creators`` (list of str), ``keywords``.
    sessions : list of (str, str)
        ``(relative path, sha256)`` of every session file.
    manifest_sha256 : str
        SHA-256 of ``sessions.csv``.
    stats : CorpusStats
        Gives the manifest's columns.
    synthetic : bool | None
        The machine-readable marker (None: mixed corpus).
    """
    import mlcroissant as mlc

    ctx = mlc.Context(conforms_to=CONFORMS_TO[0])
    distribution = [mlc.FileObject(ctx=ctx, id="sessions.csv", name="sessions.csv", content_url="sessions.csv",
                                   encoding_formats=["text/csv"], sha256=manifest_sha256,
                                   description="One row per session file (see the record set 'sessions').")]
    for rel, sha in sessions:
        distribution.append(mlc.FileObject(
            ctx=ctx, id=f"session:{rel}", name=rel, content_url=rel, encoding_formats=["application/x-hdf5"],
            sha256=sha, description="emosync session file (HDF5); path relative to the corpus folder."))
    types = {"Text": mlc.DataType.TEXT, "Integer": mlc.DataType.INTEGER, "Float": mlc.DataType.FLOAT,
             "Boolean": mlc.DataType.BOOL}
    fields = [mlc.Field(ctx=ctx, id=f"sessions/{name}", name=name, description=description, data_types=[types[dtype]],
                        source=mlc.Source(ctx=ctx, file_object="sessions.csv",
                                          extract=mlc.Extract(ctx=ctx, column=name)))
              for name, dtype, description in manifest_columns(stats)]
    record_set = mlc.RecordSet(ctx=ctx, id="sessions", name="sessions", key=["sessions/file"], fields=fields,
                               description="The session files: subject, synthetic flag, streams, rates, counts.")
    times = [t for s in stats.sessions for text in (s.start_time, s.stop_time) if (t := _parse_time(text))]
    timeframe = [min(times), max(times)] if times else None
    with _quiet_absl():
        metadata = mlc.Metadata(
            ctx=ctx, name=meta["name"], description=meta["description"],
            license=[meta["license"]] if meta.get("license") else None, cite_as=meta.get("cite_as"),
            version=meta.get("version"), date_published=meta.get("date_published"),
            creators=[mlc.Person(ctx=ctx, name=n) for n in meta.get("creators", [])] or [],
            keywords=meta.get("keywords"), distribution=distribution, record_sets=[record_set],
            data_collection_timeframe=timeframe, **rai)
    errors = metadata.issues.errors
    if errors:
        raise ValueError(f"The Croissant description does not validate: {sorted(errors)}")
    jsonld = metadata.to_json()
    jsonld["@context"]["emosync"] = EMOSYNC_VOCAB
    jsonld["conformsTo"] = CONFORMS_TO
    jsonld["emosync:synthetic"] = synthetic if synthetic is not None else "mixed"
    return json.loads(json.dumps(jsonld, default=str))


def validate_croissant(jsonld_path: str | Path) -> int:
    """Load a Croissant file with mlcroissant, offline, and read every record of every record set.

    Returns
    -------
    n_records : int
        Records read (one per session).

    Raises
    ------
    ValueError
        mlcroissant reported errors, or a URL in the file is not a local relative path.
    """
    import mlcroissant as mlc

    jsonld_path = Path(jsonld_path)
    document = json.loads(jsonld_path.read_text(encoding="utf-8"))
    remote = [d.get("contentUrl") for d in document.get("distribution", [])
              if "://" in str(d.get("contentUrl", ""))]
    if remote:
        raise ValueError(f"{jsonld_path}: contentUrl must be local relative paths (offline validation), got {remote}")
    try:
        with _quiet_absl():
            dataset = mlc.Dataset(jsonld=jsonld_path)
            n = sum(1 for record_set in dataset.metadata.record_sets for _ in dataset.records(record_set.uuid))
    except Exception as err:  # mlcroissant raises its own ValidationError, ValueError or GenerationError
        raise ValueError(f"{jsonld_path} does not validate with mlcroissant: {err}") from None
    if dataset.metadata.issues.errors:
        raise ValueError(f"{jsonld_path} does not validate: {sorted(dataset.metadata.issues.errors)}")
    return n


def validated_croissant_text(document: dict[str, Any], manifest_text: str) -> str:
    """Serialize ``document`` after validating it beside ``manifest_text`` in a scratch folder.

    The card's folder is only written once everything validates, so a failed run never leaves a
    half-written card.
    """
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    with tempfile.TemporaryDirectory(prefix="emosync-card-") as tmp:
        (Path(tmp) / "sessions.csv").write_text(manifest_text, encoding="utf-8")
        (Path(tmp) / "croissant.json").write_text(text, encoding="utf-8")
        n = validate_croissant(Path(tmp) / "croissant.json")
    if n != manifest_text.count("\n") - 1:
        raise ValueError(f"mlcroissant read {n} records but sessions.csv has {manifest_text.count(chr(10)) - 1} rows.")
    return text


def sha256_text(text: str) -> str:
    """SHA-256 of a text as written (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
