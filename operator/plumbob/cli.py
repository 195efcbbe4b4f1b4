"""Command line: ``plumbob audit | agent | operator | rescan | crds``.

Each sub-command lives in the module that owns it; this module only parses arguments and
dispatches, so ``plumbob --help`` stays fast (heavy imports happen inside the handlers).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from plumbob import __version__

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="plumbob", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in _REGISTRARS:
        register(sub)
    return parser


def _register_crds(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("crds", help="print or write the CustomResourceDefinitions generated from the models")
    p.add_argument("--output-dir", help="write one file per CRD into this directory instead of stdout")
    p.add_argument("--check", action="store_true", help="exit 1 if the files in --output-dir differ")

    def run(args: argparse.Namespace) -> int:
        from plumbob.api import crdgen  # noqa: PLC0415 - loaded only when the subcommand runs

        return crdgen.main(output_dir=args.output_dir, check=args.check)

    p.set_defaults(handler=run)


def _register_audit(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "audit",
        help="audit this node against a benchmark, read-only, and report every control with evidence",
        description=(
            "Exit codes: 0 no scored check failed; 1 a scored check failed; 2 usage or configuration "
            "error (unknown benchmark, bad --set); 3 the audit could not run (host root unreadable); "
            "4 no scored check failed but some could not be evaluated (error)."
        ),
    )
    p.add_argument(
        "--host-root", default="/", metavar="DIR", help="the node's / (default: /; /host in a pod)"
    )
    p.add_argument("--proc-dir", metavar="DIR", help="the node's /proc (default: HOST_ROOT/proc)")
    p.add_argument("--benchmark", default="cis-1.12", metavar="ID", help="benchmark id (default: cis-1.12)")
    p.add_argument("--rules", nargs="+", metavar="GLOB", help="only these rule ids (globs such as 1.2.*)")
    p.add_argument(
        "--role",
        action="append",
        choices=["control-plane", "worker", "etcd"],
        help="node role (repeatable); default: detected from the running components",
    )
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override a variable")
    p.add_argument("--format", choices=["text", "json", "junit"], default="text")
    p.add_argument("--output", metavar="FILE", help="write the report here instead of stdout")

    def run(args: argparse.Namespace) -> int:
        # Imported here so that `plumbob --help` stays fast.
        from pathlib import Path  # noqa: PLC0415

        from plumbob.agent.auditing import AuditError, run_audit  # noqa: PLC0415
        from plumbob.benchmarks.catalog import CatalogError, load_benchmark  # noqa: PLC0415
        from plumbob.benchmarks.rules import Target  # noqa: PLC0415
        from plumbob.reports.rendering import render  # noqa: PLC0415

        overrides = {}
        for item in args.set:
            name, eq, value = item.partition("=")
            if not eq or not name:
                print(f"plumbob audit: --set wants NAME=VALUE, got {item!r}", file=sys.stderr)
                return 2
            overrides[name] = value
        try:
            benchmark = load_benchmark(args.benchmark, overrides)
        except CatalogError as exc:
            print(f"plumbob audit: {exc}", file=sys.stderr)
            return 2
        roles = [Target(r) for r in args.role] if args.role else None
        try:
            result = run_audit(
                args.host_root,
                benchmark_id=args.benchmark,
                rule_patterns=args.rules,
                roles=roles,
                overrides=overrides,
                proc_dir=args.proc_dir,
            )
        except AuditError as exc:
            print(f"plumbob audit: {exc}", file=sys.stderr)
            return 3
        if args.rules and not result.findings:
            print(f"plumbob audit: no rule matches {' '.join(args.rules)}", file=sys.stderr)
            return 2
        text = render(result, args.format, {r.id: r.remediation for r in benchmark.rules})
        if args.output:
            try:
                Path(args.output).write_text(text, encoding="utf-8")
            except OSError as exc:
                print(f"plumbob audit: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
                return 3
        else:
            sys.stdout.write(text)
        if result.failed_scored():
            return 1
        return 4 if result.errored_scored() else 0

    p.set_defaults(handler=run)


def _register_operator(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("operator", help="run the operator (kopf) against the current cluster")
    p.add_argument(
        "--lease-duration",
        type=int,
        default=15,
        metavar="SECONDS",
        help="leader election: a replica that stops renewing its Lease is replaced after this long "
        "(default: 15)",
    )
    p.add_argument("--liveness", help="serve liveness probes, e.g. http://0.0.0.0:8080/healthz")
    p.add_argument("--verbose", action="store_true")

    def run(args: argparse.Namespace) -> int:
        from plumbob.controller import operating  # noqa: PLC0415 - heavy import

        return operating.run(lease_seconds=args.lease_duration, liveness=args.liveness, verbose=args.verbose)

    p.set_defaults(handler=run)


def _register_agent(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("agent", help="audit this node and write its ComplianceReport (runs in audit Pods)")

    def run(args: argparse.Namespace) -> int:
        from plumbob.agent import running  # noqa: PLC0415 - heavy import

        return running.main()

    p.set_defaults(handler=run)


def _register_rescan(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "rescan",
        help="scan a profile now: sets its plumbob.dev/rescan annotation (uses $KUBECONFIG)",
        description="Under GitOps, commit a new plumbob.dev/rescan value instead, so Git stays the truth.",
    )
    p.add_argument("profile", help="name of the ComplianceProfile")

    def run(args: argparse.Namespace) -> int:
        from datetime import UTC, datetime  # noqa: PLC0415 - keep --help fast

        from plumbob.api.common import ANNOTATION_RESCAN  # noqa: PLC0415
        from plumbob.kube import Kube, KubeError, NotFoundError  # noqa: PLC0415

        value = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            Kube().annotate("complianceprofiles", args.profile, {ANNOTATION_RESCAN: value})
        except NotFoundError:
            print(f"error: there is no ComplianceProfile named {args.profile!r}", file=sys.stderr)
            return 2
        except KubeError as exc:
            print(f"error: could not request the rescan: {exc}", file=sys.stderr)
            return 3
        print(
            f"rescan of {args.profile} requested ({ANNOTATION_RESCAN}={value}); follow it with: "
            f"kubectl get compliancescans -l plumbob.dev/profile={args.profile} -w"
        )
        return 0

    p.set_defaults(handler=run)


_REGISTRARS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [
    _register_crds,
    _register_audit,
    _register_operator,
    _register_agent,
    _register_rescan,
]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        print(__version__)
        return 0
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    return handler(args)
