"""Does the audit's "with other held-out people" interval predict what other held-out people say?

The frame-level bounds and the membership AUC of ``emosync synth audit`` are computed from the
held-out people at hand, and each comes with a cluster-bootstrap interval over those people
(:mod:`synth.privacy.reference_interval`). This audits one corpus of one model against several
*disjoint* groups of held-out people (``--group-size`` each, in the order given), then against
larger pools (disjoint pairs of groups, and all of them), and reports per reference:

- each held-out statistic (pixel and embedding p01 and median, memorization threshold, membership
  AUC), with its interval;
- whether each other disjoint group's point value falls inside this group's interval: a correct
  90 % interval for the population value holds another equal-sized group's value about 75 % of
  the time (the two groups' errors add: P(|Z| < 1.645 / sqrt 2));
- the verdicts and how many checks are "borderline" (their verdict flips inside the interval).

Prints markdown tables and writes one JSON line per audit to ``--log``.

Run (simulated rig):
    python benchmarks/synth_audit_reference.py MODEL CORPUS --train sessions/*.h5 \
        --holdout heldout/*.h5 --group-size 4 --log audit-reference.jsonl --threads 2
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import time
from pathlib import Path

import numpy as np

#: (label, where in the audit result the held-out point value is, where its interval is, key in the interval).
STATISTICS = (
    ("pixel p01", ("nearest_neighbour", "holdout_to_train", "p01"), ("nearest_neighbour", "holdout_interval"), "p01"),
    ("pixel median", ("nearest_neighbour", "holdout_to_train", "median"), ("nearest_neighbour", "holdout_interval"),
     "median"),
    ("embedding p01", ("nearest_neighbour_embedding", "holdout_to_train", "p01"),
     ("nearest_neighbour_embedding", "holdout_interval"), "p01"),
    ("embedding median", ("nearest_neighbour_embedding", "holdout_to_train", "median"),
     ("nearest_neighbour_embedding", "holdout_interval"), "median"),
    ("memorization threshold", ("memorization", "threshold"), ("memorization", "interval"), "threshold"),
    ("membership AUC", ("membership_inference", "auc"), ("membership_inference", "interval"), "auc"),
)


def _get(result: dict, path: tuple[str, ...]):
    for key in path:
        result = result[key]
    return result


def audit(model: Path, corpus: Path, train: list[Path], holdout: list[Path], overrides: list[str]) -> dict:
    from synth.privacy import audit_corpus, load_audit_config

    return audit_corpus(model, corpus, train, holdout, load_audit_config("audit", overrides)).result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--train", type=Path, nargs="+", required=True, help="The model's training sessions.")
    parser.add_argument("--holdout", type=Path, nargs="+", required=True,
                        help="Held-out sessions, one person each, split in order into disjoint groups.")
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--log", type=Path, default=Path("audit-reference.jsonl"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="Audit config override, repeatable.")
    args = parser.parse_args(argv)
    logging.getLogger("emosync").setLevel(logging.ERROR)
    if len(args.holdout) < 2 * args.group_size:
        parser.error(f"--holdout needs at least two groups of {args.group_size} sessions")
    groups = [args.holdout[i:i + args.group_size] for i in range(0, len(args.holdout), args.group_size)]
    groups = [g for g in groups if len(g) == args.group_size]
    references = {f"group {k + 1}": g for k, g in enumerate(groups)}
    if len(groups) >= 4:  # disjoint pairs of groups: twice the people, still independent of each other
        for a in range(0, len(groups) - 1, 2):
            references[f"groups {a + 1}+{a + 2}"] = groups[a] + groups[a + 1]
    references["all"] = [p for g in groups for p in g]
    overrides = [f"threads={args.threads}", *args.overrides]

    results: dict[str, dict] = {}
    for name, sessions in references.items():
        tic = time.perf_counter()
        result = audit(args.model, args.corpus, args.train, sessions, overrides)
        results[name] = result
        record = {"reference": name, "holdout": [p.stem for p in sessions], "seconds": time.perf_counter() - tic,
                  "passed": result["passed"], "checks": result["checks"],
                  "statistics": {label: {"point": _get(result, point), "interval": _get(result, where)[key]}
                                 for label, point, where, key in STATISTICS}}
        with args.log.open("a") as log:
            log.write(json.dumps(record) + "\n")
        print(f"{name}: {'PASS' if result['passed'] else 'FAIL'} ({record['seconds']:.0f} s)", flush=True)

    print(f"\nCorpus {args.corpus}, model {args.model}; 90 % cluster-bootstrap intervals over the held-out people.\n")
    print("| reference | people | " + " | ".join(label for label, *_ in STATISTICS) + " |")
    print("|---|---|" + "---|" * len(STATISTICS))
    for name, result in results.items():
        cells = []
        for _label, point, where, key in STATISTICS:
            lo, hi = _get(result, where)[key]
            cells.append(f"{_get(result, point):.3f} [{lo:.3f}-{hi:.3f}]")
        print(f"| {name} | {len(references[name])} | " + " | ".join(cells) + " |")

    group_names = [n for n in references if n.startswith("group ")]
    print("\nCoverage: share of (group, other group) pairs whose other point value lies in the group's interval.\n")
    print("| statistic | covered | pairs |")
    print("|---|---|---|")
    for label, point, where, key in STATISTICS:
        hits = [bool(_get(results[a], where)[key][0] <= _get(results[b], point) <= _get(results[a], where)[key][1])
                for a, b in itertools.permutations(group_names, 2)]
        print(f"| {label} | {np.mean(hits):.2f} | {len(hits)} |")

    print("\n| reference | verdict | failed checks | borderline checks |")
    print("|---|---|---|---|")
    for name, result in results.items():
        failed = [k for k, c in result["checks"].items() if c["passed"] is False]
        shaky = [k for k, c in result["checks"].items() if c.get("stable") is False]
        print(f"| {name} | {'PASS' if result['passed'] else 'FAIL'} | {', '.join(failed) or '-'} | "
              f"{', '.join(shaky) or '-'} |")


if __name__ == "__main__":
    main()
