"""``audit.md``: the audit's result as a short page a person reads, saying what each figure means."""

from __future__ import annotations

from typing import Any


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _verdict(passed: bool | None) -> str:
    return "not decided" if passed is None else ("PASS" if passed else "FAIL")


def _nn_rows(block: dict[str, Any] | None) -> list[str]:
    if not block or block.get("synthetic_to_train") is None:
        return [f"(not computed: {(block or {}).get('skipped', 'disabled')})", ""]
    rows = ["| frames | median | p01 | min | n |", "|---|---|---|---|---|"]
    for key, label in (("synthetic_to_train", "synthetic -> training"), ("holdout_to_train", "held-out -> training")):
        s = block[key]
        rows.append(f"| {label} | {_fmt(s['median'])} | {_fmt(s['p01'])} | {_fmt(s['min'])} | {s['n']} |")
    return [*rows, ""]


def render_markdown(result: dict[str, Any]) -> str:
    """The Markdown summary of an audit result (the dict :func:`synth.privacy.audit_corpus` returns)."""
    inputs, mia, mem = result["inputs"], result["membership_inference"], result["memorization"]
    emb = result.get("nearest_neighbour_embedding") or {}
    lines = [
        f"# Privacy audit: {_verdict(result['passed'])}",
        "",
        f"Corpus `{inputs['corpus_dir']}` ({result['n_frames']['synthetic']} frames audited) from the "
        f"{inputs['model_kind']} model `{inputs['model_dir']}` (weights sha256 `{inputs['model_sha256'][:12]}...`"
        f"{'' if inputs['corpus_matches_model'] else ', NOT the model recorded in corpus.json'}), against "
        f"{result['n_frames']['train']} training frames (subjects {', '.join(inputs['train_subjects'])}) and "
        f"{result['n_frames']['holdout']} held-out frames (subjects {', '.join(inputs['holdout_subjects'])}). "
        f"Created {result['created']}.",
        "",
        f"**Baseline: {inputs['baseline']}.** "
        + ("The question is whether the corpus comes closer to a training frame than a *new person* does; "
           "a generator that faithfully reproduces its few training faces fails it, by design."
           if inputs["baseline"] == "held-out subjects" else
           "The question is whether the corpus comes closer to a training frame than a *new recording of a "
           "training subject* does: frame-level copying, not identity."),
        "",
        "## Checks (all must pass)",
        "",
        "| check | value | bound | result | with other held-out people | rule |",
        "|---|---|---|---|---|---|",
    ]
    for name, check in result["checks"].items():
        lines.append(f"| {name} | {_fmt(check['value'])} | {_fmt(check['bound'])} | {_verdict(check['passed'])} "
                     f"| {firmness_text(check)} | {check['rule']} |")
    lines += [*_reference_rows(result.get("reference_interval")), ""]
    lines += [
        "",
        "## Nearest neighbours in pixel space",
        "",
        "RMS distance from each frame to its closest training frame, over RGB and depth scaled to [-1, 1] "
        "(0 is an exact copy). Synthetic frames should be no closer than held-out real frames.",
        "",
        *_nn_rows(result["nearest_neighbour"]),
        "## Nearest neighbours in the identity embedding",
        "",
        "The same statistic in the embedding of a small identity encoder trained here to tell the training "
        "subjects apart: small means \"looks like a training person\", whatever the expression.",
        "",
        *_nn_rows(emb),
    ]
    if emb.get("encoder"):
        enc = emb["encoder"]
        lines += [f"Encoder: {enc['architecture']}; trained {enc['steps']} steps on {enc['n_frames']} frames of "
                  f"{enc['trained_on']}; subject accuracy {_fmt(enc['train_accuracy'], 3)} on its training frames, "
                  f"{_fmt(enc['validation_accuracy'], 3)} on the held-back last "
                  f"{_fmt(100 * emb['validation_fraction'], 3)} % of each session. "
                  f"{_fmt(100 * emb['identity_match_fraction'], 3)} % of synthetic frames are closer to a training "
                  f"identity than {_fmt(100 * (1 - emb['identity_match_quantile']), 3)} % of held-out real "
                  "faces are.", ""]
    lines += _identity_rows(result.get("identity_privacy"), result.get("files", {}))
    lines += [
        "## Memorization",
        "",
        f"{result['memorized_frames']} of {mem['n']} synthetic frames ({_fmt(100 * mem['memorized_fraction'], 3)} %) "
        f"lie within {_fmt(mem['threshold'])} of a training frame ({mem['calibration']}; measured: "
        f"{_fmt(100 * mem['holdout_fraction_under_threshold'], 3)} % of held-out real frames fall under it). "
        "The closest pairs are drawn in "
        f"`{_basename(result.get('files', {}).get('closest_pairs', 'closest_pairs.png'))}`.",
        "",
        "## Membership inference",
        "",
    ]
    if mia.get("auc") is None:
        lines.append(f"Not run ({mia.get('skipped')}).")
    else:
        lines.append(
            f"A loss-threshold attacker who guesses \"trained on\" when the generator's loss on a real frame is low "
            f"separates {mia['n_members']} training frames from {mia['n_nonmembers']} held-out frames with ROC AUC "
            f"{_fmt(mia['auc'], 3)} (0.5 = chance) and catches {_fmt(100 * mia['tpr_at_1pct_fpr'], 3)} % of training "
            f"frames at a 1 % false-positive rate (median loss {_fmt(mia['member_loss_median'])} on training vs "
            f"{_fmt(mia['nonmember_loss_median'])} on held-out frames).")
    lines += [
        "",
        "## Rejection filter",
        "",
        ("No rejection filter was used when sampling." if result["rejection_rate"] is None else
         f"The sampler's nearest-neighbour filter rejected {_fmt(100 * result['rejection_rate'], 3)} % of "
         "generated samples before they reached the corpus (so the figures above describe what was kept)."),
        "",
    ]
    return "\n".join(lines)


def firmness_text(check: dict[str, Any]) -> str:
    """``bound 0.16-0.21: holds`` / ``...: borderline``: a check's interval over held-out people, or ``-``."""
    for which in ("bound", "value"):
        interval = check.get(f"{which}_interval")
        if interval is not None:
            if check["stable"] is None:
                return "unknown: one held-out unit"
            return (f"{which} {_fmt(interval[0], 3)}-{_fmt(interval[1], 3)}: "
                    f"{'holds' if check['stable'] else 'borderline'}")
    return "-"


def _reference_rows(block: dict[str, Any] | None) -> list[str]:
    """What the "with other held-out people" column means, and a warning for a small reference."""
    if not block or not block.get("enabled"):
        return ["", "(Intervals over held-out people not computed: reference_interval.enabled=false.)"]
    lines = ["", f"\"With other held-out people\": the {_fmt(100 * block['confidence'], 3)} % interval of a check's "
             f"bound (or value) when the held-out {block['unit']}s ({block['n_units']}) are resampled with replacement "
             f"({block['n_resamples']} resamples of whole {block['unit']}s). *Borderline*: the verdict differs between "
             "the ends of that interval, so held-out people other than these could turn it round; *holds*: it does "
             "not flip inside the interval, but the interval understates the uncertainty (resampling never shows a "
             "person closer or farther than all of these; docs/privacy-audit.md gives the measured coverage); "
             "*unknown*: a single held-out unit leaves nothing to resample."]
    if block["n_units"] < block["advised_units"]:
        lines[-1] += (f" Only {block['n_units']} held-out {block['unit']}(s): other groups of people this size "
                      f"often fall outside these intervals; {block['advised_units']} or more are advised.")
    return lines


def _identity_rows(block: dict[str, Any] | None, files: dict[str, str]) -> list[str]:
    """The "New people?" section: per-identity distances and the re-identification attack."""
    lines = ["## New people? Identity distances and re-identification", ""]
    if block is None:
        return [*lines, "Not run (identity_privacy.enabled=false).", ""]
    lines += [f"Identities: {block['identity_source']}.", ""]
    if block.get("skipped"):
        return [*lines, f"Not run: {block['skipped']}.", ""]
    test, reid, n = block["distance_test"], block["reidentification"], block["n_identities"]
    bound, rank = test["holdout_median_lower_bound"], test["rank_test"]
    holdout = ", ".join(f"{s['subject']} {_fmt(s['distance'], 3)}" for s in block["holdout"]["subjects"])
    lines += [
        f"{n['total']} synthetic identities ({n['new']} new, {n['leak']} labelled `train:<subject>`, "
        f"{n['labelled']} otherwise labelled, {n['sequence']} single sequences; {n['excluded_few_frames']} left out "
        f"with fewer than the minimum frames), each summarized by the robust centroid of its identity-encoder "
        f"embeddings and measured by the distance to the nearest training subject's centroid (0-2). The reference is "
        f"real new people: the held-out subjects who are not training subjects, each measured on "
        f"{block['groups_per_subject']} groups of {block['group_size']} frames (as many as a synthetic identity has).",
        "",
        f"Mode: {block['mode']}.",
        "",
        "| | median distance | p05 | min | n |",
        "|---|---|---|---|---|",
        f"| synthetic identities | {_fmt(block['synthetic']['distance']['median'])} | "
        f"{_fmt(block['synthetic']['distance']['p05'])} | {_fmt(block['synthetic']['distance']['min'])} | "
        f"{block['synthetic']['distance']['n']} |",
        f"| held-out subjects | {_fmt(block['holdout']['distance']['median'])} | "
        f"{_fmt(block['holdout']['distance']['p05'])} | {_fmt(block['holdout']['distance']['min'])} | "
        f"{block['holdout']['distance']['n']} |",
        "",
        f"Held-out subjects: {holdout}. Lower bound of their median: {_fmt(bound['value'])} (order statistic "
        f"{bound['order']} of {bound['k']}, confidence {_fmt(bound['confidence'], 3)}). One-sided rank test "
        f"(synthetic closer): p = {_fmt(rank['p_value'], 3)} (smallest attainable {_fmt(rank['min_attainable_p'], 3)}; "
        f"AUC {_fmt(rank['auc'], 3)}, 0.5 = no difference).",
        "",
        f"Re-identification (\"which training subject is this?\", the encoder's subject head): "
        f"{reid['n_reidentified']} of {n['total']} identities ({_fmt(100 * reid['rate'], 3)} %) are attributed to a "
        f"training subject more confidently (probability {_fmt(reid['threshold'], 6)}) than the "
        f"{_fmt(reid['quantile'], 3)} quantile of held-out subjects; real new people would exceed it "
        f"{_fmt(100 * reid['expected_rate_new_people'], 3)} % of the time (exact p of this many: "
        f"{_fmt(reid['p_value'], 3)}). Per training subject: "
        + ", ".join(f"{k} {v}" for k, v in reid["attributed"].items()) + ".",
        "",
    ]
    leak = reid.get("leak_control")
    if leak:
        lines += [f"Leaking control: {leak['n']} identities labelled `train:<subject>`; the attack names that subject "
                  f"for {_fmt(None if leak['accuracy'] is None else 100 * leak['accuracy'], 3)} % of them (chance "
                  f"{_fmt(100 * leak['chance'], 3)} %, binomial p {_fmt(leak['p_value'], 3)}).", ""]
    if files.get("identity_distances"):
        lines += [f"Histograms: `{_basename(files['identity_distances'])}`.", ""]
    return lines


def _basename(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]
