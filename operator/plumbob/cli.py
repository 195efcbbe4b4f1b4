"""Command line: ``plumbob audit | agent | operator | rescan | report | status | crds``.

Each sub-command lives in the module that owns it; this module only parses arguments and
dispatches, so ``plumbob --help`` stays fast (heavy imports happen inside the handlers).
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Callable, Sequence

from plumbob import __version__

Handler = Callable[[argparse.Namespace], int]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; ``only`` registers just that sub-command (the one being run: a node audit starts
    faster without building the others' parsers)."""
    parser = argparse.ArgumentParser(prog="plumbob", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, register in _REGISTRARS.items():
        if only is None or name == only:
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
    p.add_argument(
        "--benchmark",
        metavar="ID",
        help="benchmark id, e.g. cis-1.12 or k3s-cis-1.12 (default: from --platform)",
    )
    p.add_argument(
        "--platform",
        default="auto",
        choices=["auto", "generic", "k3s", "rke2", "eks", "gke", "aks"],
        help="platform variant of the benchmark (default: auto, detected from the node's file system)",
    )
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
        from plumbob.benchmarks.detection import host_platform  # noqa: PLC0415
        from plumbob.benchmarks.rules import Target  # noqa: PLC0415
        from plumbob.benchmarks.versions import newest_for_platform  # noqa: PLC0415
        from plumbob.reports.rendering import render  # noqa: PLC0415

        benchmark_id = args.benchmark
        if benchmark_id is None:
            platform = args.platform
            if platform == "auto":
                root = Path(args.host_root)
                platform = host_platform(lambda mark: (root / mark.lstrip("/")).exists()).platform
            try:
                benchmark_id = newest_for_platform(platform)
            except CatalogError as exc:
                print(f"plumbob audit: {exc}", file=sys.stderr)
                return 2
        overrides = {}
        for item in args.set:
            name, eq, value = item.partition("=")
            if not eq or not name:
                print(f"plumbob audit: --set wants NAME=VALUE, got {item!r}", file=sys.stderr)
                return 2
            overrides[name] = value
        try:
            benchmark = load_benchmark(benchmark_id, overrides)
        except CatalogError as exc:
            print(f"plumbob audit: {exc}", file=sys.stderr)
            return 2
        roles = [Target(r) for r in args.role] if args.role else None
        try:
            result = run_audit(
                args.host_root,
                benchmark_id=benchmark_id,
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
        import os  # noqa: PLC0415

        from plumbob.controller import operating  # noqa: PLC0415 - heavy import
        from plumbob.dashboards import server  # noqa: PLC0415
        from plumbob.telemetry import parse_address  # noqa: PLC0415

        address = parse_address(os.environ.get("PLUMBOB_DASHBOARD_ADDRESS", server.DEFAULT_ADDRESS))
        return operating.run(
            lease_seconds=args.lease_duration,
            liveness=args.liveness,
            verbose=args.verbose,
            on_ready=(lambda: server.start_logging_errors(*address)) if address else None,
        )

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

        from plumbob.kube import Kube, KubeError, NotFoundError  # noqa: PLC0415
        from plumbob.names import ANNOTATION_RESCAN  # noqa: PLC0415

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


def _register_report(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "report",
        help="the auditor's report of a profile: every control with status and evidence (uses $KUBECONFIG)",
        description="Exit codes: 0 written; 2 no such profile; 3 the API server could not be read.",
    )
    p.add_argument("profile", help="name of the ComplianceProfile")
    p.add_argument("--format", choices=["html", "markdown", "json", "junit"], default="html")
    p.add_argument("--output", metavar="FILE", help="write the report here instead of stdout")

    def run(args: argparse.Namespace) -> int:
        from pathlib import Path  # noqa: PLC0415 - keep --help fast

        from plumbob.dashboards.reading import Reader  # noqa: PLC0415
        from plumbob.kube import KubeError  # noqa: PLC0415
        from plumbob.reports.auditor import render_report  # noqa: PLC0415

        try:
            view = Reader().profile(args.profile)
        except KubeError as exc:
            print(f"plumbob report: could not read the cluster: {exc}", file=sys.stderr)
            return 3
        if view is None:
            print(f"plumbob report: there is no ComplianceProfile named {args.profile!r}", file=sys.stderr)
            return 2
        text = render_report(view, args.format)
        if args.output:
            Path(args.output).write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)
        return 0

    p.set_defaults(handler=run)


def _register_status(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "status", help="every profile at a glance: score, failing rules, drift, expiring exceptions"
    )

    def run(args: argparse.Namespace) -> int:
        from datetime import UTC, datetime  # noqa: PLC0415 - keep --help fast

        from plumbob.dashboards.reading import Reader  # noqa: PLC0415
        from plumbob.kube import KubeError  # noqa: PLC0415
        from plumbob.reports.summary import render_status  # noqa: PLC0415

        try:
            views = Reader().profiles()
        except KubeError as exc:
            print(f"plumbob status: could not read the cluster: {exc}", file=sys.stderr)
            return 3
        sys.stdout.write(render_status(views, datetime.now(UTC)))
        return 0

    p.set_defaults(handler=run)


_REGISTRARS: dict[str, Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = {
    "crds": _register_crds,
    "audit": _register_audit,
    "operator": _register_operator,
    "agent": _register_agent,
    "rescan": _register_rescan,
    "report": _register_report,
    "status": _register_status,
}


# Short processes that allocate many small objects and keep them to the end: the cyclic garbage
# collector's passes free nothing there (a node audit ran about 28 of them, ~4 ms). Only when
# main() is the process's entry point (no argv given), never inside a caller's process.
_NO_GC = frozenset({"audit", "agent"})


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if argv is None and words and words[0] in _NO_GC:
        gc.disable()
    parser = build_parser(words[0] if words and words[0] in _REGISTRARS else None)
    args = parser.parse_args(words)
    if args.version:
        print(__version__)
        return 0
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    return handler(args)
