"""The Hugging Face-style ``README.md`` of a card: a YAML header and the sections a reader looks for.

Only formatting lives here: the numbers come from :mod:`.stats`, the words from ``card.yaml``
(:mod:`.human`). A required field that is missing is rendered as a loud TODO, so an
incomplete card is visibly incomplete wherever it is read.
"""

from __future__ import annotations

from typing import Any

import yaml

from data_cards.human import HumanCard
from data_cards.stats import CorpusStats

TODO = "**TODO**"


def todo(field: str, what: str) -> str:
    """The marker written in place of a missing human field."""
    return f"> {TODO} (`{field}` in card.yaml): {what}"


def size_category(n: int) -> str:
    """Hugging Face's ``size_categories`` bucket for ``n`` examples (sessions)."""
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return label
    return "n>1M"


def _text(value: str | None, field: str, what: str) -> str:
    return value.strip() if value and value.strip() else todo(field, what)


def _bullets(values: list[str], field: str, what: str) -> str:
    return "\n".join(f"- {v}" for v in values) if values else todo(field, what)


def _rate(values: set[float] | list[float]) -> str:
    values = sorted(values)
    if not values:
        return "-"
    return f"{values[0]:g}" if values[0] == values[-1] else f"{values[0]:g}-{values[-1]:g}"


def _eff(values: list[float]) -> str:
    if not values:
        return "-"
    lo, hi = min(values), max(values)
    return f"{lo:.3f}" if abs(hi - lo) < 5e-4 else f"{lo:.3f}-{hi:.3f}"


def front_matter(header: dict[str, Any]) -> str:
    """``---``-delimited YAML header."""
    return "---\n" + yaml.safe_dump(header, sort_keys=False, allow_unicode=True, width=1000) + "---\n"


def _streams_table(stats: CorpusStats) -> str:
    rows = ["| stream | type | modality | channels | unit | nominal Hz | effective Hz | sessions | samples | hours |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for name, s in stats.streams.items():
        units = ", ".join(sorted(u for u in s.units if u)) or "-"
        rows.append(f"| {name} | {', '.join(sorted(s.types))} | {', '.join(sorted(s.modalities))} | "
                    f"{_rate({float(c) for c in s.channel_counts})} | {units}"
                    f" | {_rate(s.nominal_srates_hz)} | {_eff(s.effective_srates_hz)} | {s.n_sessions} | "
                    f"{s.n_samples} | {s.duration_s / 3600:.4f} |")
    return "\n".join(rows)


def _expressions_section(stats: CorpusStats) -> str:
    lines = []
    if stats.expressions:
        micro = sum(n for (_, kind), n in stats.expressions.items() if kind == "micro")
        macro = sum(n for (_, kind), n in stats.expressions.items() if kind == "macro")
        lines += [f"{micro} micro- and {macro} macro-expressions, bounded by `onset/<emotion>/<kind>` and "
                  "`offset/...` markers in the sessions' Markers streams.", "",
                  "| emotion | kind | count |", "|---|---|---|"]
        lines += [f"| {emotion} | {kind} | {n} |" for (emotion, kind), n in sorted(stats.expressions.items())]
    else:
        lines.append("No expression markers (no Markers stream with `onset/`/`offset/` pairs): the sessions "
                     "carry no expression labels.")
    if stats.derived_expressions:
        lines += ["", "Derived (predicted, not ground truth) expression markers, e.g. from `emosync spot`:", "",
                  "| stream | emotion | kind | count |", "|---|---|---|---|"]
        lines += [f"| {stream} | {emotion} | {kind} | {n} |"
                  for (stream, emotion, kind), n in sorted(stats.derived_expressions.items())]
    return "\n".join(lines)


def _au_section(stats: CorpusStats, threshold: float) -> str:
    if not stats.au:
        return "No ActionUnits stream: no AU intensities to summarize."
    lines = [f"From the ActionUnits streams (FACS intensity 0-5), one table per stream (a simulator's ground truth "
             f"and a face tracker's estimates are not mixed); active means intensity > {threshold:g}."]
    for name, au in stats.au.items():
        lines += ["", f"`{name}`:", "", "| AU | mean | max | fraction active |", "|---|---|---|---|"]
        lines += [f"| {r['au']} | {r['mean']:.3f} | {r['max']:.3f} | {r['fraction_active']:.3f} |"
                  for r in au.table()]
    return "\n".join(lines)


def _demographics_section(human: HumanCard | None, tables: dict[str, dict[str, str]], stats: CorpusStats) -> str:
    k = human.min_cell_count if human else 5
    lines = [f"{len(stats.subjects)} pseudonymous subject(s) in the data "
             f"(sessions per subject: {_rate({float(n) for n in stats.subjects.values()})})."]
    if not tables and stats.synthetic:
        lines += ["", "Not applicable: the subjects are simulated or generated, not people."]
        return "\n".join(lines)
    if not tables:
        lines += ["", todo("demographics", "per-subject age band, sex, handedness, skin type... (optional; write "
                           "'not collected' in known_limitations if none were collected).")
                  if not (human and human.demographics) else "No demographic attribute was reported."]
        return "\n".join(lines)
    lines += ["", f"Counts of subjects; cells below {k} are shown as \"<{k}\" (and one more cell is hidden when "
              "a single hidden cell could be recovered from the total)."]
    for attribute, counts in tables.items():
        if not counts:
            lines += ["", f"**{attribute.replace('_', ' ')}**: left out: its only reported value is held by fewer "
                      f"than {k} subjects, and showing it would disclose that value for every subject who reported it."]
            continue
        lines += ["", f"**{attribute.replace('_', ' ')}**", "", "| value | subjects |", "|---|---|"]
        lines += [f"| {value} | {shown} |" for value, shown in counts.items()]
    return "\n".join(lines)


def _synthetic_section(corpus: dict[str, Any] | None, audit: dict[str, Any] | None, stats: CorpusStats,
                       audit_stale: str | None = None) -> str:
    if corpus is None:
        return ""
    unflagged = [s.file for s in stats.sessions if not s.synthetic]
    generator = corpus.get("generator") or {}
    seeds = corpus.get("seeds") or []
    rejection = corpus.get("rejection")
    lines = ["## Synthetic data: generator and privacy audit", ""]
    if unflagged or corpus.get("synthetic") is not True:
        lines += [f"> **WARNING**: this is a generated corpus, but {len(unflagged)} session file(s) lack the "
                  f"`synthetic` flag (e.g. {unflagged[:3]}) or corpus.json does not say `synthetic: true`.", ""]
    else:
        lines += ["Every session file is flagged `synthetic: true`, as are this card's header, `croissant.json` "
                  "and `sessions.csv`.", ""]
    lines += [f"- generator: **{generator.get('kind', 'unknown')}**",
              f"- model: `{generator.get('model_dir', 'unknown')}`, "
              f"sha256 `{generator.get('model_sha256', 'unknown')}`",
              f"- seeds: {seeds[0]} to {seeds[-1]}" if len(seeds) >= 2 else f"- seeds: {seeds or 'not recorded'}",
              f"- sequences: {len(corpus.get('sequences', []))}, created {corpus.get('created', 'unknown')} with "
              f"emosync {corpus.get('emosync_version', 'unknown')}",
              f"- rejection sampling: {_rejection_text(rejection)}",
              f"- identities: {_identities_text(corpus.get('identities'))}"]
    lines += ["", "Generator configuration:", "", "```yaml",
              yaml.safe_dump(generator.get("config", {}), sort_keys=True).rstrip() or "{}", "```", ""]
    if audit is None:
        lines += ["> **NOT AUDITED**: this corpus has no `audit.json`. Nothing here shows that it does not "
                  "reproduce its training data. Run the privacy audit before sharing it, then regenerate this card."]
        return "\n".join(lines)
    mia = audit.get("membership_inference") or {}
    nn = audit.get("nearest_neighbour") or {}
    s2t, h2t = nn.get("synthetic_to_train") or {}, nn.get("holdout_to_train") or {}
    verdict = "**PASSED**" if audit.get("passed") else "**FAILED**"
    if audit_stale:
        verdict = f"**STALE**, was {verdict[2:-2]}"
        lines += [f"> **AUDIT STALE**: {audit_stale}. The figures below describe an earlier state of this corpus "
                  "and do not vouch for it as it is now.", ""]
    lines += [f"Privacy audit ({verdict}, {audit.get('created', 'date unknown')}):", ""]
    inputs = audit.get("inputs") or {}
    if inputs.get("corpus_matches_model") is False:
        lines += ["> **WARNING**: the audit was run against a model whose sha256 differs from the generator "
                  "recorded in corpus.json; it does not vouch for this corpus.", ""]
    if inputs.get("baseline"):
        lines += [f"Baseline (held-out data): {inputs['baseline']}.", ""]
    lines += ["| figure | value |", "|---|---|",
              f"| membership-inference AUC (0.5 = chance) | {_num(mia.get('auc'))} |",
              f"| membership-inference TPR at 1% FPR | {_num(mia.get('tpr_at_1pct_fpr'))} |",
              f"| nearest-neighbour distance, synthetic to train: median / 1st percentile | "
              f"{_num(s2t.get('median'))} / {_num(s2t.get('p01'))} |",
              f"| nearest-neighbour distance, held-out real to train: median / 1st percentile | "
              f"{_num(h2t.get('median'))} / {_num(h2t.get('p01'))} |",
              f"| memorized frames | {audit.get('memorized_frames', '-')} |",
              f"| rejection rate | {_num(audit.get('rejection_rate'))} |"]
    checks = audit.get("checks") or {}
    if checks:
        lines += ["", "| check | value | bound | passed | with other held-out people |", "|---|---|---|---|---|"]
        lines += [f"| {name} | {_num(c.get('value'))} | {_num(c.get('bound'))} | "
                  f"{'not run' if c.get('passed') is None else ('yes' if c['passed'] else '**no**')} | "
                  f"{_firmness(c)} |" for name, c in checks.items()]
    return "\n".join(lines)


def _firmness(check: dict[str, Any]) -> str:
    """Whether an audit check's verdict holds across its interval over held-out people (``stable``)."""
    if "bound_interval" not in check and "value_interval" not in check:
        return "-"
    return {True: "holds", False: "borderline"}.get(check.get("stable"), "unknown (one held-out unit)")


def _rejection_text(record: Any) -> str:
    """``corpus.json``'s ``rejection`` record in words: ``{"n_generated", "n_rejected", "rate", "threshold"}``/null."""
    if record is None:
        return "none"
    if not isinstance(record, dict):
        return f"unreadable record {record!r}"
    return (f"{record.get('n_rejected')} of {record.get('n_generated')} generated sequences rejected, "
            f"rate {_num(record.get('rate'))}, threshold {_num(record.get('threshold'))}")


def _identities_text(record: Any) -> str:
    """``corpus.json``'s ``identities`` record in words: who the faces are, and how new people were made."""
    if not record or not isinstance(record, dict) or record.get("kind") in (None, "none"):
        return "not recorded (an AU-only generator: its faces are those of its training subjects)"
    if record["kind"] == "train":
        return (f"**{record.get('n')} training subjects' own identities: a deliberately LEAKING control corpus**; "
                "never use it as data")
    prior = (record.get("prior") or {}).get("description", "prior not recorded")
    text = f"{record.get('n')} new people drawn from the generator's identity prior ({prior})"
    face = record.get("face_filter")
    if isinstance(face, dict):
        text += (f"; face filter: {face.get('rejected')} of {face.get('checked')} candidates redrawn because a "
                 f"rendered neutral face came closer than {_num(face.get('threshold'))} (RMS) to a training frame "
                 f"({face.get('method')}{', quantile ' + _num(face.get('quantile')) if face.get('quantile') else ''}), "
                 "and every frame checked against the same threshold (rejection sampling above)")
    else:
        text += "; no face filter (`--reject-identities-closer-than` was off)"
    return text


def _num(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def render_readme(*, header: dict[str, Any], human: HumanCard | None, stats: CorpusStats,
                  demographics: dict[str, dict[str, str]], corpus: dict[str, Any] | None,
                  audit: dict[str, Any] | None, missing: list[str], card_yaml_found: bool,
                  source_command: str, au_threshold: float, audit_stale: str | None = None) -> str:
    """The card's ``README.md`` text (see the module docstring)."""
    h = human or HumanCard()
    title = h.title or header.get("pretty_name", "Untitled corpus")
    synthetic = stats.synthetic
    out = [front_matter(header), f"# {title}", ""]
    if not card_yaml_found or missing:
        why = "no card.yaml was found beside the data" if not card_yaml_found else \
            f"required field(s) missing from card.yaml: {', '.join(missing)}"
        out += [f"> {TODO} **THIS CARD IS INCOMPLETE**: {why}. `emosync card --check` fails until consent, "
                "legal basis, ethics approval and contact are written (template: `configs/card/card.yaml`).", ""]
    if synthetic is True:
        out += ["> **Synthetic data.** No session in this corpus is a recording of a person.", ""]
    elif synthetic is None:
        out += ["> **Mixed corpus**: some sessions are synthetic, some recorded (see `synthetic` in sessions.csv).", ""]
    out += [f"*Generated by `{source_command}` (emosync {header['emosync']['emosync_version']}). The numbers below "
            "are computed from the session files; the prose comes from `card.yaml`. Do not edit this file: edit "
            "card.yaml and run the command again.*", ""]
    out += ["## Summary", "", _text(h.summary, "summary", "what the corpus is and why it was made."), "",
            f"- sessions: {stats.n_sessions}, total duration {stats.total_duration_s:.1f} s "
            f"({stats.total_duration_s / 3600:.3f} h), {stats.total_bytes / 1e6:.1f} MB",
            f"- subjects: {len(stats.subjects)} (pseudonymous ids only)",
            f"- synthetic: {'mixed' if synthetic is None else str(synthetic).lower()}",
            f"- license: {h.license or 'TODO'}", ""]
    out += ["## Modalities and rates", "", _streams_table(stats), "",
            "Nominal rates are what each source declared; effective rates and durations come from the "
            "synchronized time stamps, as `emosync info` reports them (range over sessions). Units: EMG/EEG in "
            "volts, depth in millimetres, AUs in FACS intensity 0-5.", ""]
    out += ["## Expressions and action units", "", _expressions_section(stats), "", _au_section(stats, au_threshold),
            ""]
    synthetic_section = _synthetic_section(corpus, audit, stats, audit_stale)
    if synthetic_section:
        out += [synthetic_section, ""]
    out += ["## Collection process", "", _text(h.collection_process, "collection_process",
                                                 "how, where and with which devices the sessions were made."), ""]
    if h.annotation_process:
        out += ["### Annotation", "", h.annotation_process.strip(), ""]
    out += ["## Consent and legal basis", "",
            "### Consent", "", _text(h.consent, "consent", "who consented to what, and how consent is withdrawn."), "",
            "### Legal basis", "", _text(h.legal_basis, "legal_basis",
                                         "e.g. GDPR Art. 6(1)(a) and 9(2)(a), explicit consent."), "",
            "### Ethics approval", "", _text(h.ethics_approval, "ethics_approval",
                                             "the approving board and reference number."), ""]
    out += ["## De-identification", "",
            _text(h.de_identification, "de_identification",
                  "what identifies a person in the data (face video is biometric) and what was done about it."),
            "", "Subjects appear only under pseudonymous ids (`subject_id`).", ""]
    out += ["## Demographics", "", _demographics_section(human, demographics, stats), ""]
    out += ["## Intended uses", "", _bullets(h.intended_uses, "intended_uses", "what the data is for."), "",
            "## Out-of-scope and prohibited uses", "",
            _bullets(h.out_of_scope_uses, "out_of_scope_uses",
                     "uses that are not allowed, e.g. identifying people, emotion surveillance."), ""]
    limitations = list(h.known_limitations)
    if corpus is not None and audit is None:
        limitations.append("NOT AUDITED: no privacy audit was run on this synthetic corpus.")
    elif corpus is not None and audit_stale:
        limitations.append(f"AUDIT STALE: {audit_stale}.")
    out += ["## Known limitations and biases", "",
            _bullets(limitations, "known_limitations", "what the data cannot support."), ""]
    if h.known_biases:
        out += ["### Biases", "", _bullets(h.known_biases, "known_biases", ""), ""]
    if h.social_impact:
        out += ["### Social impact", "", h.social_impact.strip(), ""]
    out += ["## Maintenance", "", _text(h.maintenance, "maintenance", "who maintains it, how errors are reported."),
            "", "### Contact", "", _text(h.contact, "contact", "who answers questions about this data."), ""]
    if h.citation:
        out += ["## Citation", "", "```bibtex", h.citation.strip(), "```", ""]
    out += ["## Files", "",
            "- `sessions.csv`: one row per session file (hash, subject, synthetic flag, streams, rates, counts).",
            "- `croissant.json`: Croissant 1.1 JSON-LD with the responsible-AI fields, describing `sessions.csv`.",
            "- `card-inputs.json`: SHA-256 of every input, read by `emosync card --check`.", ""]
    return "\n".join(out)
