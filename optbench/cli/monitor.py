"""`optbench drift` (did the inputs drift?) and `optbench abtest` (which arm of a route wins?)."""

from __future__ import annotations

from optbench.errors import ConfigError


def add_parsers(sub) -> None:
    d = sub.add_parser("drift", help="test whether current inputs drifted from a reference",
                       description="KS + PSI per feature, chi-square on predicted classes, Holm "
                       "correction. REF: a drift_profile.json, an artifact folder holding one, "
                       "or a .npy array; CUR: a .npy array. Arrays are images (N,C,H,W or N,H,W)"
                       " or, with --tabular, rows of features (N,F).")
    d.add_argument("reference")
    d.add_argument("current")
    d.add_argument("--tabular", action="store_true", help="arrays are (N, F) feature rows")
    d.add_argument("--alpha", type=float, default=0.01, help="family-wise error rate")
    d.add_argument("--json", help="also write the report as JSON here")
    d.add_argument("--fail-on-drift", action="store_true", help="exit with status 1 on drift")
    d.set_defaults(func=drift)

    a = sub.add_parser("abtest", help="compare the two arms of an A/B route from its log",
                       description="Reads the JSON-lines log of `optbench serve --ab-log`: "
                       "two-proportion z-test on accuracy (needs labels in requests), "
                       "Mann-Whitney and a bootstrap CI on latency, and a verdict.")
    a.add_argument("log")
    a.add_argument("--metric", choices=("accuracy", "latency"), default="accuracy")
    a.add_argument("--alpha", type=float, default=0.05)
    a.add_argument("--planned-n", type=int, help="planned records per arm (warns on peeking)")
    a.add_argument("--baseline-rate", type=float, help="with --mde: compute the planned n")
    a.add_argument("--mde", type=float, help="minimum detectable absolute effect, e.g. 0.01")
    a.set_defaults(func=abtest)


def drift(args) -> int:
    from optbench.io import atomic_write_json, load_array
    from optbench.monitor import drift

    profile = drift.load_reference(args.reference, tabular=args.tabular)
    cur = load_array(args.current)
    report = (drift.compare(profile, tabular=cur, alpha=args.alpha) if args.tabular
              else drift.compare(profile, inputs=cur, alpha=args.alpha))
    print(report.table())
    print(f"\n{report.verdict}")
    if args.json:
        atomic_write_json(args.json, report.to_dict())
    return 1 if report.drifted and args.fail_on_drift else 0


def abtest(args) -> int:
    from optbench.monitor import abtest

    planned = args.planned_n
    if args.baseline_rate is not None or args.mde is not None:
        if args.baseline_rate is None or args.mde is None:
            raise ConfigError("--baseline-rate and --mde go together")
        planned = abtest.sample_size(args.baseline_rate, args.mde, alpha=args.alpha)
        print(f"planned sample: {planned} per arm (baseline {args.baseline_rate}, detectable "
              f"effect {args.mde}, alpha {args.alpha}, power 0.8)")
    report = abtest.analyze(abtest.load_records(args.log), alpha=args.alpha, planned_n=planned,
                            metric=args.metric)
    print(report.render())
    return 0
