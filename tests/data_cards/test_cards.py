"""Data cards (`emosync card`): computed fields, small-cell suppression, Croissant validation, --check."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import h5py
import numpy as np
import pytest
import typer
import yaml
from typer.testing import CliRunner

from acquisition import SessionWriter, StreamSpec
from acquisition.utils.config import CONFIG_DIR, ConfigError
from data_cards.build import INPUTS_JSON
from acquisition.utils.hashing import file_sha256
from data_cards import check_card, load_human_card, write_card
from data_cards.croissant import validate_croissant
from data_cards.demographics import demographic_tables, suppress_small_cells
from data_cards.human import HumanCard, SubjectDemographics
from data_cards.cli import card

COMPLETE = {
    "title": "Test corpus", "summary": "Sessions written by the tests.", "consent": "Written consent, withdrawable.",
    "legal_basis": "GDPR Art. 9(2)(a)", "ethics_approval": "Board X, ref. 1", "contact": "lab@example.org",
    "license": "cc-by-4.0", "intended_uses": ["Testing"], "out_of_scope_uses": ["Identifying people"],
    "known_limitations": ["Tiny"], "maintenance": "Nobody.", "collection_process": "Written by numpy.",
    "de_identification": "Nothing identifies anyone.",
}


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(card)
    app.command("noop")(lambda: None)  # two commands, so `card` is a sub-command as under `emosync`
    return app


def _run(*args: str):
    return CliRunner().invoke(_app(), ["card", *map(str, args)])


def _write_session(fname: Path, *, subject: str, seed: int, markers: list[tuple[float, str]],
                   synthetic: bool = False, duration_s: float = 2.0) -> dict:
    """A small session: 2-channel EMG at 500 Hz, 3 AUs at 30 Hz, and expression markers. Returns what was written."""
    rng = np.random.default_rng(seed)
    n_emg, n_au = int(500 * duration_s), int(30 * duration_s)
    au = rng.uniform(0, 2, size=(n_au, 3)).astype(np.float32)
    with SessionWriter(fname, subject_id=subject, metadata={"synthetic": synthetic}) as w:
        w.add_stream(StreamSpec("EMG", "EMG", 2, "float32", 500.0, "emg-1", channel_labels=["a", "b"])).append(
            rng.normal(size=(n_emg, 2)).astype(np.float32) * 1e-5, 100.0 + np.arange(n_emg) / 500.0)
        w.add_stream(StreamSpec("cam-AU", "ActionUnits", 3, "float32", 30.0, "au-1",
                                channel_labels=["AU04", "AU06", "AU12"])).append(au, 100.0 + np.arange(n_au) / 30.0)
        if markers:
            w.add_stream(StreamSpec("Markers", "Markers", 1, "string", 0.0, "mk-1")).append(
                [[text] for _, text in markers], [100.0 + t for t, _ in markers])
    return {"au": au, "n_emg": n_emg}


def _expr(t: float, emotion: str, kind: str) -> list[tuple[float, str]]:
    return [(t, f"onset/{emotion}/{kind}"), (t + 0.1, f"apex/{emotion}/{kind}"), (t + 0.3, f"offset/{emotion}/{kind}")]


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[Path, list[dict]]:
    """Three sessions of two subjects in nested folders, with a complete card.yaml."""
    root = tmp_path / "lab-corpus"
    (root / "sub-01").mkdir(parents=True)
    (root / "sub-02").mkdir()
    written = [
        _write_session(root / "sub-01" / "s1.h5", subject="sub-01", seed=1,
                       markers=_expr(0.2, "happiness", "micro") + _expr(1.0, "anger", "macro")),
        _write_session(root / "sub-01" / "s2.h5", subject="sub-01", seed=2, markers=_expr(0.5, "happiness", "micro")),
        _write_session(root / "sub-02" / "s3.h5", subject="sub-02", seed=3, markers=[]),
    ]
    card_yaml = dict(COMPLETE, demographics={"sub-01": {"age_band": "25-34", "sex": "female"},
                                             "sub-02": {"age_band": "25-34", "sex": "male"}})
    (root / "card.yaml").write_text(yaml.safe_dump(card_yaml))
    return root, written


def _front_matter(readme: Path) -> dict:
    text = readme.read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_card_from_sessions(recorded, tmp_path):
    root, written = recorded
    out = tmp_path / "cards" / "lab"
    result = _run(root, "--out", out)
    assert result.exit_code == 0, result.output
    readme = (out / "README.md").read_text()
    header = _front_matter(out / "README.md")
    assert header["synthetic"] is False and header["license"] == "cc-by-4.0"
    assert header["emosync"]["todo"] == [] and "TODO" not in readme
    # Rates and counts from the files, not from any config.
    assert "| EMG | EMG | emg | 2 | V | 500 | 500.000 | 3 | 3000 |" in readme
    assert "| happiness | micro | 2 |" in readme and "| anger | macro | 1 |" in readme
    au = np.concatenate([w["au"] for w in written]).astype(np.float64)
    assert f"| AU06 | {au[:, 1].mean():.3f} | {au[:, 1].max():.3f} | {(au[:, 1] > 0.5).mean():.3f} |" in readme
    # Two subjects, both below k=5: suppressed.
    assert "| female | <5 |" in readme and "| male | <5 |" in readme
    # The manifest: one row per session, with the file's real hash.
    import pandas as pd

    manifest = pd.read_csv(out / "sessions.csv")
    assert sorted(manifest["file"]) == ["sub-01/s1.h5", "sub-01/s2.h5", "sub-02/s3.h5"]
    row = manifest.set_index("file").loc["sub-01/s1.h5"]
    assert row["sha256"] == file_sha256(root / "sub-01" / "s1.h5")
    assert (row["n_expressions_micro"], row["n_expressions_macro"], row["EMG_n_samples"]) == (1, 1, 1000)
    assert row["cam_AU_nominal_hz"] == 30 and not row["synthetic"]
    assert validate_croissant(out / "croissant.json") == 3
    assert _run(root, "--out", out, "--check").exit_code == 0


def test_croissant_validates_offline(recorded, tmp_path, monkeypatch):
    root, _ = recorded
    out = tmp_path / "card"
    write_card([root], out)

    def no_network(*args, **kwargs):
        raise AssertionError("mlcroissant tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    assert validate_croissant(out / "croissant.json") == 3
    doc = json.loads((out / "croissant.json").read_text())
    assert "http://mlcommons.org/croissant/1.1" in doc["conformsTo"]
    assert doc["rai:dataCollection"].startswith("TODO") is False
    assert any("Consent: Written consent" in s for s in doc["rai:personalSensitiveInformation"])
    assert doc["emosync:synthetic"] is False
    hashes = {d["name"]: d["sha256"] for d in doc["distribution"]}
    assert hashes["sub-02/s3.h5"] == file_sha256(root / "sub-02" / "s3.h5")
    assert hashes["sessions.csv"] == file_sha256(out / "sessions.csv")
    # A broken manifest no longer validates.
    (out / "sessions.csv").write_text("file\nx.h5\n")
    with pytest.raises(ValueError, match="does not validate"):
        validate_croissant(out / "croissant.json")


def _corpus(tmp_path: Path) -> Path:
    """A synthetic corpus in the layout `emosync synth sample` writes (corpus.json + sessions/)."""
    root = tmp_path / "synthetic-demo"
    (root / "sessions").mkdir(parents=True)
    sequences = []
    for i, (emotion, kind) in enumerate([("happiness", "micro"), ("surprise", "macro")]):
        name = f"seq-{i:05d}"
        _write_session(root / "sessions" / f"{name}.h5", subject=f"synthetic-{name}", seed=10 + i, synthetic=True,
                       markers=_expr(0.3, emotion, kind))
        sequences.append({"id": name, "file": f"sessions/{name}.h5", "emotion": emotion, "kind": kind, "seed": 10 + i,
                          "n_frames": 60, "fps": 30.0})
    corpus = {"synthetic": True, "generator": {"kind": "diffusion", "model_dir": "runs/synth",
                                               "model_sha256": "ab" * 32, "config": {"steps": 50, "image_size": 32}},
              "seeds": [10, 11], "sequences": sequences,
              "rejection": {"n_generated": 3, "n_rejected": 1, "rate": 1 / 3, "threshold": 0.25},
              "created": "2026-11-23T12:00:00+00:00", "emosync_version": "0.1.0"}
    (root / "corpus.json").write_text(json.dumps(corpus))
    (root / "card.yaml").write_text(yaml.safe_dump(dict(COMPLETE, consent="Not applicable: generated data.")))
    return root


def test_card_from_synthetic_corpus(tmp_path):
    root = _corpus(tmp_path)
    out = tmp_path / "card"
    write_card([root], out)
    readme = (out / "README.md").read_text()
    header = _front_matter(out / "README.md")
    assert header["synthetic"] is True and "synthetic" in header["tags"]
    assert header["emosync"]["audited"] is False and "NOT AUDITED" in readme
    assert "generator: **diffusion**" in readme and "ab" * 32 in readme and "seeds: 10 to 11" in readme
    assert "1 of 3 generated sequences rejected, rate 0.3333, threshold 0.25" in readme and "image_size: 32" in readme
    assert "identities: not recorded (an AU-only generator" in readme
    manifest = (out / "sessions.csv").read_text().splitlines()
    assert manifest[1].startswith("sessions/seq-00000.h5,") and ",true," in manifest[1]
    assert ",seq-00000,happiness,micro,10," in manifest[1]
    doc = json.loads((out / "croissant.json").read_text())
    assert doc["emosync:synthetic"] is True and any("NOT AUDITED" in s for s in doc["rai:dataLimitations"])
    assert doc["rai:dataCollectionType"] == "Synthetic: generated by a diffusion model"
    assert validate_croissant(out / "croissant.json") == 2
    # Sequences animated by a learned AU motion model say so
    corpus = json.loads((root / "corpus.json").read_text())
    corpus["sequences"] = [{**seq, "expression": "motion"} for seq in corpus["sequences"]]
    (root / "corpus.json").write_text(json.dumps(corpus))
    write_card([root], tmp_path / "card-motion")
    doc = json.loads((tmp_path / "card-motion" / "croissant.json").read_text())
    assert "animated by a learned AU motion model" in doc["rai:dataCollectionType"]
    # New people, and how they were vetted; a leaking control is named as such
    corpus["identities"] = {"kind": "new", "n": 8, "prior": {"description": "Dirichlet mix of 3"},
                            "face_filter": {"threshold": 0.1198, "method": "leave-subject-out", "quantile": 0.05,
                                            "checked": 14, "rejected": 6}}
    (root / "corpus.json").write_text(json.dumps(corpus))
    write_card([root], tmp_path / "card-new")
    text = " ".join((tmp_path / "card-new" / "README.md").read_text().split())
    assert ("8 new people drawn from the generator's identity prior (Dirichlet mix of 3); face filter: 6 of 14 "
            "candidates redrawn because a rendered neutral face came closer than 0.1198 (RMS) to a training frame "
            "(leave-subject-out, quantile 0.05), and every frame checked against the same threshold") in text
    corpus["identities"] = {"kind": "train", "n": 20}
    (root / "corpus.json").write_text(json.dumps(corpus))
    write_card([root], tmp_path / "card-leak")
    assert "LEAKING control corpus" in (tmp_path / "card-leak" / "README.md").read_text()
    # After the privacy audit the card must be regenerated (--check says so), and then shows the figures.
    audit = {"membership_inference": {"auc": 0.512, "tpr_at_1pct_fpr": 0.013},
             "nearest_neighbour": {"synthetic_to_train": {"median": 4.2, "p01": 1.5},
                                   "holdout_to_train": {"median": 4.0, "p01": 1.4}},
             "memorized_frames": 0, "rejection_rate": 0.333, "passed": True,
             "checks": {"nn_pixel_median": {"passed": True, "value": 4.2, "bound": 3.8, "stable": False,
                                            "bound_interval": [3.6, 4.4]},
                        "nn_pixel_p01": {"passed": True, "value": 1.5, "bound": 1.33, "stable": None,
                                         "bound_interval": [1.33, 1.33]},
                        "membership_inference_auc": {"passed": True, "value": 0.512, "bound": 0.6, "stable": True,
                                                     "value_interval": [0.5, 0.55]},
                        "identity_distance_median": {"passed": None, "value": None, "bound": None}},
             "inputs": {"corpus_sha256": file_sha256(root / "corpus.json"), "sequence_ids": ["seq-00000", "seq-00001"]}}
    (root / "audit.json").write_text(json.dumps(audit))
    assert any("new: audit.json" in p for p in check_card([root], out))
    write_card([root], out)
    readme = (out / "README.md").read_text()
    assert "NOT AUDITED" not in readme and "**PASSED**" in readme and "| 0.512 |" in readme
    assert "| nn_pixel_median | 4.2 | 3.8 | yes | borderline |" in readme
    assert "| membership_inference_auc | 0.512 | 0.6 | yes | holds |" in readme
    assert "| nn_pixel_p01 | 1.5 | 1.33 | yes | unknown (one held-out unit) |" in readme
    assert "| identity_distance_median | - | - | not run | - |" in readme
    assert _front_matter(out / "README.md")["emosync"]["audited"] is True
    assert _front_matter(out / "README.md")["emosync"]["audit_current"] is True and "STALE" not in readme
    assert check_card([root], out) == []
    # A second audit (emosync synth audit never overwrites: audit-2.json) is the one reported.
    audit.update(passed=False, inputs={**audit["inputs"], "corpus_matches_model": False})
    (root / "audit-2.json").write_text(json.dumps(audit))
    assert any("new: audit-2.json" in p for p in check_card([root], out))
    write_card([root], out)
    readme = (out / "README.md").read_text()
    assert "**FAILED**" in readme and "**PASSED**" not in readme and "does not vouch for this corpus" in readme


def test_small_cell_suppression():
    assert suppress_small_cells({"a": 6, "b": 7, "c": 9}, 5) == {"a": "6", "b": "7", "c": "9"}
    # One hidden cell could be recovered from the total: the smallest visible one is hidden too.
    assert suppress_small_cells({"a": 6, "b": 7, "c": 2}, 5) == {"a": "<5", "b": "7", "c": "<5"}
    assert suppress_small_cells({"a": 1, "b": 3, "c": 9}, 5) == {"a": "<5", "b": "<5", "c": "9"}
    assert suppress_small_cells({"a": 4, "b": 0}, 3) == {"a": "4"}
    assert suppress_small_cells({"a": 2, "b": 9}, 10) == {"a": "<10", "b": "<10"}
    subjects = [f"sub-{i:02d}" for i in range(14)]
    demographics = {s: SubjectDemographics(sex="female" if i < 8 else "male", age_band="18-24")
                    for i, s in enumerate(subjects[:13])}
    demographics["sub-99"] = SubjectDemographics(sex="male")  # not in the data: not counted
    tables = demographic_tables(demographics, subjects, k=5)
    # "male: 5" shown would reveal "not reported" = 14 - 8 - 5 = 1.
    assert tables["sex"] == {"female": "8", "male": "<5", "not reported": "<5"}
    # Its only reported value hidden: "<5" beside the total 14 would still give every reporter's age band.
    assert tables["age_band"] == {}
    assert "gender" not in tables  # nobody reported it


def test_missing_fields_todo_and_check_fails(recorded, tmp_path):
    root, _ = recorded
    (root / "card.yaml").unlink()
    out = tmp_path / "card"
    result = _run(root, "--out", out)
    assert result.exit_code == 0, result.output
    readme = (out / "README.md").read_text()
    assert "THIS CARD IS INCOMPLETE" in readme and "(`consent` in card.yaml)" in readme
    assert _front_matter(out / "README.md")["emosync"]["todo"] == ["consent", "legal_basis", "ethics_approval",
                                                                    "contact"]
    result = _run(root, "--out", out, "--check")
    assert result.exit_code == 1 and "No card.yaml" in result.output
    # A card.yaml without the ethics approval: still generated, still failing, and the message names the field.
    (root / "card.yaml").write_text(yaml.safe_dump({k: v for k, v in COMPLETE.items() if k != "ethics_approval"}))
    assert _run(root, "--out", out).exit_code == 0
    assert "(`ethics_approval` in card.yaml)" in (out / "README.md").read_text()
    result = _run(root, "--out", out, "--check")
    assert result.exit_code == 1 and "ethics_approval" in result.output and "consent" not in result.output


def test_check_fails_after_data_change(recorded, tmp_path):
    root, _ = recorded
    out = tmp_path / "card"
    write_card([root], out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert check_card([root], out) == []
    with h5py.File(root / "sub-01" / "s2.h5", "r+") as f:
        f.attrs["notes"] = "edited after the card was written"
    result = _run(root, "--out", out, "--check")
    assert result.exit_code == 1
    assert "data changed" in result.output and "sub-01/s2.h5" in result.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # --check writes nothing
    write_card([root], out)
    assert check_card([root], out) == []
    # A new session, and a hand-edited README, are caught too.
    _write_session(root / "sub-02" / "s4.h5", subject="sub-02", seed=4, markers=[])
    (out / "README.md").write_text((out / "README.md").read_text() + "\nhand edit\n")
    problems = check_card([root], out)
    assert any("new: sub-02/s4.h5" in p for p in problems) and any("edited" in p for p in problems)


def test_clear_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _run(empty)
    assert result.exit_code == 1 and "No session files" in result.output
    bad = tmp_path / "bad"
    bad.mkdir()
    _write_session(bad / "good.h5", subject="sub-01", seed=0, markers=[])
    with h5py.File(bad / "other.h5", "w") as f:
        f["x"] = np.zeros(3)
    out = tmp_path / "card"
    result = _run(bad, "--out", out)
    assert result.exit_code == 1 and "other.h5" in result.output and "not an emosync session" in result.output
    assert not out.exists()  # nothing half-written
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    result = _run(notes)
    assert result.exit_code == 1 and "Not session files" in result.output
    # An existing README that is not a card is never overwritten.
    other = tmp_path / "docs"
    other.mkdir()
    (other / "README.md").write_text("mine")
    result = _run(bad / "good.h5", "--out", other)
    assert result.exit_code == 1 and "not an emosync card" in result.output
    assert (other / "README.md").read_text() == "mine"


def test_card_yaml_template_and_unknown_keys(tmp_path):
    template = load_human_card(CONFIG_DIR / "card" / "card.yaml")
    assert isinstance(template, HumanCard)
    assert template.missing_required() == ["consent", "legal_basis", "ethics_approval", "contact"]
    (tmp_path / "card.yaml").write_text("consnet: typo\n")
    with pytest.raises(ConfigError, match="consnet"):
        load_human_card(tmp_path / "card.yaml")


SHIPPED = sorted(p.parent for p in (CONFIG_DIR.parent / "data_cards" / "cards").glob(f"*/{INPUTS_JSON}"))


@pytest.mark.parametrize("folder", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_cards(folder):
    """The cards in data_cards/ are complete, unedited since generation, and validate offline."""
    record = json.loads((folder / INPUTS_JSON).read_text())
    for name, sha in record["outputs"].items():
        assert file_sha256(folder / name) == sha, f"{folder / name} was edited by hand; regenerate it"
    assert _front_matter(folder / "README.md")["emosync"]["todo"] == []
    assert validate_croissant(folder / "croissant.json") == len(record["inputs"]) - sum(
        not name.endswith(".h5") for name in record["inputs"])


def test_audit_is_stale_after_the_corpus_grew(tmp_path):
    root = _corpus(tmp_path)
    corpus = json.loads((root / "corpus.json").read_text())
    audit = {"passed": True, "inputs": {"corpus_sha256": file_sha256(root / "corpus.json"),
                                        "sequence_ids": [seq["id"] for seq in corpus["sequences"]]}}
    (root / "audit.json").write_text(json.dumps(audit))
    # `synth sample --append` adds a sequence after the audit.
    _write_session(root / "sessions" / "seq-00002.h5", subject="synthetic-seq-00002", seed=12, synthetic=True,
                   markers=_expr(0.3, "happiness", "micro"))
    corpus["sequences"].append({**corpus["sequences"][0], "id": "seq-00002", "file": "sessions/seq-00002.h5"})
    (root / "corpus.json").write_text(json.dumps(corpus))
    write_card([root], tmp_path / "card")
    readme = (tmp_path / "card" / "README.md").read_text()
    header = _front_matter(tmp_path / "card" / "README.md")
    assert "AUDIT STALE" in readme and "1 sequence(s) added" in readme and "**PASSED**" not in readme
    assert header["emosync"]["audited"] is True and header["emosync"]["audit_current"] is False
    doc = json.loads((tmp_path / "card" / "croissant.json").read_text())
    assert any("AUDIT STALE" in s for s in doc["rai:dataLimitations"])


def test_corpus_sessions_are_not_carded_as_recordings(tmp_path):
    first = _corpus(tmp_path / "a")
    _corpus(tmp_path / "b")
    parent = first.parent.parent
    for paths in ([parent], [first / "sessions" / "seq-00000.h5"]):
        with pytest.raises(ValueError, match="Card each corpus folder separately"):
            write_card(paths, tmp_path / "card")
    result = _run(tmp_path / "a", tmp_path / "b")
    assert result.exit_code == 1 and "Give one folder" in result.output and "not a mix" not in result.output
