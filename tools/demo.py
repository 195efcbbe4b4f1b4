"""``make demo``: Plumbob's whole story on a local testbed, narrated step by step.

1. start a real control plane (etcd, kube-apiserver, kube-controller-manager) on loopback;
2. install Plumbob: CRDs, the node-bound admission policy, the chart's service accounts and RBAC;
3. start the operator as a local process under the chart's service account;
4. start simulated nodes: ``cp-1`` audits the real control-plane processes of step 1 (host root
   ``/``), three workers audit fixture host trees, two of them with misconfigurations;
5. apply the samples from ``docs/examples/`` and request a scan with the rescan annotation;
6. show ``kubectl get plumbob`` and the per-rule results of a node's report;
7. break a worker (its kubelet starts allowing anonymous requests), rescan, show the drift Events
   on the profile and on the Node;
8. fix it again, rescan, show the ``ComplianceRestored`` Events.

Everything is torn down at the end, also on Ctrl-C. ``--keep`` leaves it running until Ctrl-C and
prints the ``KUBECONFIG`` line to explore it with kubectl.

``--real-node`` (``make demo-real-node``) tells the shorter story of a real installation instead: a
real node (containerd, runc, kubelet, kube-proxy, kube-scheduler in namespaces of its own, see
``tools/testbed/realnode.py``) next to the control plane, ``helm install`` of the chart, the operator
Pod running the image from ``make image``, a scan whose audit Pod reads the real node's files and
``/proc``, the report, and ``helm uninstall``.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "operator"), str(REPO / "tools")]

try:
    from testbed.binaries import BuildError, ensure_helm
    from testbed.controlplane import ControlPlane, StartError
    from testbed.deploy import install, start_operator
    from testbed.hosttrees import build_tree
    from testbed.realnode import CONTROLLERS, ClusterPlan, RealNode
    from testbed.simnodes import SimulatedCluster, SimulatedNode
except ImportError as exc:  # pragma: no cover - run outside the venv
    sys.exit(
        f"error: cannot import the testbed ({exc}). Run `make demo` from the repository root: it "
        "creates .venv with Plumbob's dependencies first."
    )

PROFILE = "cis-kubeadm"  # the name used in docs/examples/profile-kubeadm.yaml
EXAMPLES = REPO / "docs" / "examples"
SCAN_TIMEOUT = 180.0


class DemoError(Exception):
    """A step failed; ``hint`` says what to do next."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


# ---- narration -------------------------------------------------------------------------------------
_T0 = time.monotonic()
_STEP = [0]
_STEPS = 8


def _elapsed() -> str:
    return f"{time.monotonic() - _T0:5.0f}s"


def heading(title: str) -> None:
    _STEP[0] += 1
    bar = "=" * max(4, 78 - len(title) - 10)
    print(f"\n== {_STEP[0]}/{_STEPS}  {title} {bar}", flush=True)


def say(message: str) -> None:
    print(f"   [{_elapsed()}] {message}", flush=True)


def explain(text: str) -> None:
    print(textwrap.indent(textwrap.fill(textwrap.dedent(text).strip(), 96), "   "), flush=True)


def show(command: str, output: str) -> None:
    print(f"\n   $ {command}", flush=True)
    print(textwrap.indent(output.rstrip() or "(no output)", "     "), flush=True)


# ---- the demo ----------------------------------------------------------------------------------------
class Demo:
    def __init__(self, keep: bool) -> None:
        self.keep = keep
        self.workdir = Path(tempfile.mkdtemp(prefix="plumbob-demo-"))
        self.cp: Any = None
        self.operator: Any = None
        self.cluster: Any = None
        self.trees: dict[str, Path] = {}

    # -- helpers ---------------------------------------------------------------------------------------
    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        result = self.cp.kubectl(*args, check=False, input=stdin)
        if result.returncode != 0:
            raise DemoError(
                f"kubectl {' '.join(args)} failed:\n{result.stderr.strip()}",
                "the apiserver refused a request; see the message above",
            )
        return str(result.stdout)

    def get_json(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def check_operator(self) -> None:
        if self.operator is not None and not self.operator.alive():
            raise DemoError(
                f"the operator exited (code {self.operator.process.returncode}); its log ends with:\n"
                + textwrap.indent(self.operator.tail(30), "  "),
                "this is a bug in the operator: please report it with the log above",
            )

    def scans(self) -> list[dict[str, Any]]:
        return [s for s in self.get_json("compliancescans")["items"] if s["spec"]["profile"] == PROFILE]

    def wait_for_scan(self, after: set[str]) -> dict[str, Any]:
        """Wait for a scan of the profile not in ``after`` to complete, showing its progress."""
        deadline = time.monotonic() + SCAN_TIMEOUT
        last_line = ""
        scan: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            self.check_operator()
            fresh = [s for s in self.scans() if s["metadata"]["name"] not in after]
            scan = fresh[-1] if fresh else None
            status = (scan or {}).get("status") or {}
            nodes = status.get("nodes") or {}
            line = (
                f"scan {scan['metadata']['name']}: phase {status.get('phase', '-')}, "
                f"{nodes.get('done', 0)}/{nodes.get('total', '?')} nodes audited"
                if scan
                else "waiting for the operator to create the scan"
            )
            if line != last_line:
                say(line)
                last_line = line
            if status.get("phase") in ("Complete", "Failed"):
                assert scan is not None
                if status["phase"] == "Failed":
                    raise DemoError(
                        f"scan {scan['metadata']['name']} failed: {json.dumps(status.get('conditions'))}",
                        "see the scan's conditions above",
                    )
                for problem in nodes.get("problems") or []:
                    node, state, reason = problem["node"], problem["state"], problem["reason"]
                    say(f"  node {node}: {state} ({reason}): {problem['message']}")
                return scan
            time.sleep(1)
        raise DemoError(
            f"no scan of {PROFILE} completed within {SCAN_TIMEOUT:.0f}s (last: {last_line})\n"
            f"scan status: {json.dumps((scan or {}).get('status'), indent=1)[:2000]}\n"
            "operator log (tail):\n" + textwrap.indent(self.operator_log(), "  "),
            "the operator or the simulated nodes are stuck; the logs above say where",
        )

    def operator_log(self) -> str:
        return str(self.operator.tail(30)) if self.operator is not None else ""

    def rescan(self, value: str) -> None:
        self.kubectl("annotate", "--overwrite", "complianceprofile", PROFILE, f"plumbob.dev/rescan={value}")
        say(f"annotated complianceprofile/{PROFILE} with plumbob.dev/rescan={value}")

    # -- steps -----------------------------------------------------------------------------------------
    def start_control_plane(self) -> None:
        heading("Start a real Kubernetes control plane on this machine")
        explain("""
            etcd, kube-apiserver and kube-controller-manager v1.36.3, built from the Go module proxy
            (the first run compiles them: 10-20 minutes on two cores, then they are cached in
            ~/.cache/plumbob), listening on free loopback ports.""")
        self.cp = ControlPlane.start(self.workdir / "controlplane", progress=say)
        say("pids: " + ", ".join(f"{name} {pid}" for name, pid in self.cp.pids.items()))

    def install(self) -> None:
        heading("Install Plumbob: CRDs, node-bound admission policy, RBAC")
        explain("""
            What `helm install` does on a real cluster, minus the operator Deployment (there is no
            container runtime here): the six plumbob.dev CRDs, the ValidatingAdmissionPolicy that
            lets a node's agent write only its own node's report, the plumbob-system namespace,
            the operator's and the agent's service accounts and RBAC.""")
        say("applying crds/ and the Helm chart (helm is built once with `go install` if missing)")
        install(self.cp)
        show("kubectl get crds", self.kubectl("get", "crds"))

    def start_operator(self) -> None:
        heading("Start the operator")
        explain("""
            `python -m plumbob operator` runs as a local process, authenticated with a token of
            the chart's plumbob-operator service account, so it has exactly the chart's RBAC.""")
        self.operator = start_operator(self.cp, self.workdir)
        time.sleep(3)
        self.check_operator()
        say(f"operator running (pid {self.operator.process.pid}, log {self.operator.log})")

    def start_nodes(self) -> None:
        heading("Start simulated nodes")
        explain("""
            A small Python "kubelet" registers the Nodes, runs the audit Pods the operator creates
            (`python -m plumbob agent`, for real, as a process) and reports their status. Each
            node audits a host tree: cp-1 audits THIS machine (host root /), where it finds the
            real etcd, kube-apiserver and kube-controller-manager started in step 1; the workers
            audit fixture trees of a kubeadm worker.""")
        workers = {
            "worker-1": [],
            "worker-2": ["kubelet-always-allow", "proxy-metrics-public"],
            "worker-3": ["kubelet-config-world-readable"],
        }
        nodes = [SimulatedNode(name="cp-1", role="control-plane", host_root="/")]
        say("cp-1: control-plane node, host root / (the real processes of step 1)")
        for name, broken in workers.items():
            root = self.workdir / "hosts" / name
            build_tree(root, "worker", broken, hostname=name)
            self.trees[name] = root
            say(f"{name}: worker tree at {root}, misconfigured: {', '.join(broken) or 'nothing'}")
            nodes.append(SimulatedNode(name=name, role="worker", host_root=root))
        self.cluster = SimulatedCluster(
            self.cp.kubeconfig, nodes, ca_file=self.cp.ca_file, workdir=self.workdir / "simnodes"
        )
        self.cluster.start()
        show("kubectl get nodes", self.kubectl("get", "nodes"))

    def apply_samples(self) -> None:
        heading("Apply the samples and request a scan")
        explain(f"""
            From docs/examples/: the {PROFILE} profile (CIS Kubernetes Benchmark, tailored for
            kubeadm), the nightly schedule (02:30 Europe/Berlin, so it will not fire during the
            demo), the platform team's cluster exceptions (one accepts 1.1.12, the owner of etcd's
            data directory, on cp-1; the others match nothing here and show as unused) and the
            payments team's namespaced exceptions. A scan is requested now with the
            plumbob.dev/rescan annotation.""")
        if self.cp.kubectl("get", "namespace", "payments", check=False).returncode != 0:
            self.kubectl("create", "namespace", "payments")
        for sample in (
            "profile-kubeadm.yaml",
            "schedule-nightly.yaml",
            "cluster-exceptions.yaml",
            "team-exceptions.yaml",
        ):
            out = self.kubectl("apply", "-f", str(EXAMPLES / sample))
            say(f"docs/examples/{sample}: {out.strip()}")
        self.rescan("1")
        scan = self.wait_for_scan(set())
        self.first_scan = scan["metadata"]["name"]

    def show_results(self) -> None:
        heading("The results")
        explain("""
            Every Plumbob resource at a glance (the `plumbob` category): the profile's score and
            counts, the scan, one report per node, the schedule and the exception lists.""")
        time.sleep(2)  # let the profile and exception statuses settle after the scan
        show("kubectl get plumbob -A", self.kubectl("get", "plumbob", "-A"))
        self.show_report("worker-2")
        explain("""
            cp-1 is this machine. The testbed's control plane is deliberately minimal (no TLS between
            etcd and the apiserver, a static token file, no audit log), and the audit of its real
            processes says so, flag by flag:""")
        self.show_report("cp-1")
        self.note_audited_processes()
        self.show_excepted()

    def note_audited_processes(self) -> None:
        """Say which kube-apiserver cp-1's agent audited (the lowest pid when several run)."""
        report = self.get_json("compliancereport", f"{PROFILE}.cp-1")
        pids = {
            int(m.group(1))
            for r in report["spec"]["results"]
            if r["id"].startswith("1.2.")
            for ev in r.get("evidence") or []
            if (m := re.search(r"\bpid (\d+)", ev.get("location") or ""))
        }
        ours = self.cp.pids["kube-apiserver"]
        if not pids:
            say("cp-1's agent found no kube-apiserver process")
        elif pids == {ours}:
            say(f"cp-1's agent audited the demo's own kube-apiserver (pid {ours}) and its real flags")
        else:
            say(
                f"note: cp-1's agent audited kube-apiserver pid {min(pids)}, not the demo's own (pid {ours}):"
                " another control plane runs on this machine, and the agent audits the lowest pid"
                " when a component runs more than once"
            )

    def show_report(self, node: str) -> None:
        name = f"{PROFILE}.{node}"
        report = self.get_json("compliancereport", name)
        results = report["spec"]["results"]
        counts: dict[str, int] = {}
        for r in results:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        lines = [f"{len(results)} rules: {summary}", ""]
        excepted = {e["rule"] for e in (report.get("status") or {}).get("exceptions") or []}
        failing = [r for r in results if r["status"] == "fail"]
        lines.append(f"{'rule':<8} {'status':<9} {'title':<56} why")
        for r in failing:
            status = "excepted" if r["id"] in excepted else r["status"]
            why = (r.get("reason") or "").split("; ")[0]
            lines.append(f"{r['id']:<8} {status:<9} {r['title'][:56]:<56} {why[:100]}")
        if not failing:
            lines.append("(no failing rule)")
        show(f"kubectl get compliancereport {name} -o yaml   # its failing rules, in short", "\n".join(lines))

    def show_excepted(self) -> None:
        lines = []
        for report in self.get_json("compliancereports")["items"]:
            for item in (report.get("status") or {}).get("exceptions") or []:
                ref = item.get("exception") or {}
                entry = f"{ref.get('kind')} {ref.get('name')} entry {ref.get('entry')}"
                who = f"owner {ref.get('owner')}, expires {ref.get('expires')}"
                lines.append(f"{report['spec'].get('nodeName', '-'):<10} {item['rule']:<8} {entry}: {who}")
        show("exceptions applied to stored results (report status.exceptions)", "\n".join(lines) or "(none)")

    def break_and_rescan(self) -> None:
        heading("Break worker-1, rescan, see the drift")
        explain("""
            worker-1 was compliant. Its kubelet config now allows anonymous requests (CIS 4.2.1),
            as if someone edited /var/lib/kubelet/config.yaml by hand. A rescan finds it; the rule
            went from pass to fail on that node, so the operator raises a ComplianceDrift Warning
            Event on the profile and on the Node (one Event per node per scan, listing the rules).""")
        build_tree(self.trees["worker-1"], "worker", ["kubelet-anonymous-auth"], hostname="worker-1")
        say("rebuilt worker-1's tree with kubelet-anonymous-auth")
        self.rescan("2")
        scan = self.wait_for_scan({self.first_scan})
        self.second_scan = scan["metadata"]["name"]
        drift = (scan.get("status") or {}).get("drift") or {}
        show(
            f"kubectl get compliancescan {self.second_scan} -o jsonpath='{{.status.drift}}'",
            json.dumps(drift, indent=2),
        )
        self.wait_for_events("ComplianceDrift")
        show(
            "kubectl get events -A --field-selector reason=ComplianceDrift",
            self.kubectl("get", "events", "-A", "--field-selector", "reason=ComplianceDrift"),
        )
        show("kubectl describe node worker-1   # the Events section", self.node_events("worker-1"))

    def fix_and_rescan(self) -> None:
        heading("Fix worker-1, rescan, see it restored")
        build_tree(self.trees["worker-1"], "worker", [], hostname="worker-1")
        say("rebuilt worker-1's tree without the misconfiguration")
        self.rescan("3")
        self.wait_for_scan({self.first_scan, self.second_scan})
        self.wait_for_events("ComplianceRestored")
        show(
            "kubectl get events -A --field-selector reason=ComplianceRestored",
            self.kubectl("get", "events", "-A", "--field-selector", "reason=ComplianceRestored"),
        )
        show(f"kubectl get complianceprofile {PROFILE}", self.kubectl("get", "complianceprofile", PROFILE))

    def wait_for_events(self, reason: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.get_json("events", "-A", "--field-selector", f"reason={reason}")["items"]:
                return
            time.sleep(0.5)
        raise DemoError(
            f"no {reason} Event appeared within {timeout:.0f}s after the scan completed\n"
            "operator log (tail):\n" + textwrap.indent(self.operator.tail(30), "  "),
            "the operator did not report the drift: this is a bug, please report it with the log",
        )

    def node_events(self, node: str) -> str:
        text = self.kubectl("describe", "node", node)
        _, marker, events = text.partition("\nEvents:")
        return (marker.strip() + events) if marker else "(no Events section)"

    # -- lifecycle -------------------------------------------------------------------------------------
    def run(self) -> None:
        self.start_control_plane()
        self.install()
        self.start_operator()
        self.start_nodes()
        self.apply_samples()
        self.show_results()
        self.break_and_rescan()
        self.fix_and_rescan()
        print(f"\n== done in {time.monotonic() - _T0:.0f}s", flush=True)
        if self.keep:
            self.wait_until_interrupted()

    def wait_until_interrupted(self) -> None:
        print(
            textwrap.dedent(f"""
            The testbed keeps running (the control plane, the operator and the simulated nodes live
            as long as this process). In another shell:

                export KUBECONFIG={self.cp.kubeconfig}
                export PATH={self.cp.binaries["kubectl"].parent}:$PATH
                kubectl get plumbob -A

            Press Ctrl-C here to stop everything and clean up."""),
            flush=True,
        )
        while True:
            time.sleep(1)
            self.check_operator()

    def save_logs(self) -> Path | None:
        """Copy the logs somewhere that survives the clean-up (after a failure)."""
        keep = Path(tempfile.mkdtemp(prefix="plumbob-demo-logs-"))
        sources = [self.workdir / "operator.log", *sorted((self.workdir / "controlplane").glob("*.log"))]
        copied = 0
        for src in sources:
            if src.is_file():
                shutil.copy2(src, keep / src.name)
                copied += 1
        if not copied:
            keep.rmdir()
            return None
        return keep

    def cleanup(self, interrupted: bool = False) -> None:
        """Stop the operator, the simulated nodes and the control plane, and remove the work directory.

        A Ctrl-C in the terminal reaches every process of the demo at once: etcd stops at the same
        moment as the demo, so requests to the apiserver would hang until they time out. After an
        interrupt the control plane therefore goes first, which makes every pending request fail
        at once, and the simulated kubelet's complaints about that are not shown.
        """
        print("\n== cleaning up: operator, simulated nodes, control plane", flush=True)
        steps: list[tuple[str, Callable[[], None]]] = []
        if self.operator is not None:
            steps.append(("operator", self.operator.stop))
        if self.cluster is not None:
            # The control plane goes with every Node object: no need to delete them one by one.
            cluster = self.cluster
            steps.append(("simulated nodes", lambda: cluster.stop(delete_nodes=False)))
        if self.cp is not None:
            steps.insert(0 if interrupted else len(steps), ("control plane", self.cp.stop))
        if interrupted:
            logging.getLogger("testbed.simnodes").setLevel(logging.CRITICAL)
        for what, stop in steps:
            try:
                stop()
            except Exception as exc:  # clean up the rest regardless
                print(f"   could not stop the {what} cleanly: {exc}", flush=True)
        shutil.rmtree(self.workdir, ignore_errors=True)
        print("   done: nothing is left running", flush=True)


class RealNodeDemo(Demo):
    """``--real-node``: Helm on a real node, the way a cluster admin installs Plumbob."""

    NODE = "node-1"

    def __init__(self, keep: bool) -> None:
        super().__init__(keep)
        self.plan: Any = None
        self.node: Any = None

    def helm(self, *args: str) -> str:
        result = subprocess.run(
            [str(ensure_helm()), f"--kubeconfig={self.cp.kubeconfig}", *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        if result.returncode != 0:
            raise DemoError(
                f"helm {' '.join(args)} failed:\n{result.stderr.strip()}", "see helm's message above"
            )
        return result.stdout

    def operator_log(self) -> str:
        result = self.cp.kubectl(
            "logs", "-n", "plumbob-system", "deployment/plumbob-operator", "--tail=30", check=False
        )
        return str(result.stdout or result.stderr)

    def start_control_plane(self) -> None:
        heading("Start a real control plane and a real node")
        explain("""
            The control plane of the plain demo, plus a real node: containerd 2.4, Debian's runc,
            kubelet, kube-proxy and kube-scheduler v1.36.3 (built once from the Go module proxy and
            cached in ~/.cache/plumbob), in network, mount and PID namespaces of their own. The
            node's /etc, /var and /usr are overlays of this machine's: the node sees this machine's
            files plus its own kubeadm-style configuration, and writes nothing back. The image of
            `make image` and a pause image are imported into containerd: nothing is pulled.""")
        self.plan = ClusterPlan.create([self.NODE], self.workdir / "real-node")
        self.cp = ControlPlane.start(
            self.workdir / "controlplane",
            progress=say,
            extra_apiserver_args=self.plan.apiserver_args(),
            extra_controllers=CONTROLLERS,
        )
        self.node = RealNode.start(self.plan, self.cp, self.NODE, progress=say)
        show("kubectl get nodes -o wide", self.kubectl("get", "nodes", "-o", "wide"))

    def install(self) -> None:
        heading("helm install plumbob charts/plumbob")
        explain("""
            The chart as a cluster admin installs it: CRDs, the node-bound admission policy, RBAC,
            and the operator Deployment, which the scheduler places on the real node. The operator
            runs the image as uid 65532 with a read-only root file system.""")
        say(self.helm("install", "plumbob", str(REPO / "charts" / "plumbob"), "-n", "plumbob-system",
                      "--create-namespace", "--wait", "--timeout=5m").splitlines()[0])  # fmt: skip
        show(
            "kubectl get pods -n plumbob-system -o wide",
            self.kubectl("get", "pods", "-n", "plumbob-system", "-o", "wide"),
        )

    def apply_samples(self) -> None:
        heading("Apply the kubeadm profile and request a scan")
        explain(f"""
            docs/examples/profile-kubeadm.yaml selects every node. The operator creates one audit
            Job for {self.NODE}; its Pod runs on the real kubelet with hostPID, read-only hostPath
            mounts and only the DAC_READ_SEARCH capability, and reads the node's real kubelet
            command line in /proc and its configuration files.""")
        say(self.kubectl("apply", "-f", str(EXAMPLES / "profile-kubeadm.yaml")).strip())
        self.rescan("1")
        self.wait_for_scan(set())

    def show_results(self) -> None:
        heading("The real node's report")
        show("kubectl get plumbob -A", self.kubectl("get", "plumbob", "-A"))
        self.show_report(self.NODE)

    def uninstall(self) -> None:
        heading("helm uninstall plumbob")
        self.kubectl("delete", "complianceprofile", PROFILE, "--wait=true")
        say(self.helm("uninstall", "plumbob", "-n", "plumbob-system", "--wait").strip())
        show(
            "kubectl get all,leases,serviceaccounts,roles,rolebindings -n plumbob-system",
            self.kubectl("get", "all,leases,serviceaccounts,roles,rolebindings", "-n", "plumbob-system"),
        )
        show("kubectl get crds   # the CRDs stay, as Helm leaves CRDs", self.kubectl("get", "crds"))

    def run(self) -> None:
        global _STEPS  # noqa: PLW0603 - the narration's step count
        _STEPS = 5
        self.start_control_plane()
        self.install()
        self.apply_samples()
        self.show_results()
        if self.keep:
            print(f"\n== done in {time.monotonic() - _T0:.0f}s", flush=True)
            self.wait_until_interrupted()
        self.uninstall()
        print(f"\n== done in {time.monotonic() - _T0:.0f}s", flush=True)

    def cleanup(self, interrupted: bool = False) -> None:
        print("\n== cleaning up: real node, control plane", flush=True)
        for what, stop in (
            ("real node", self.node and self.node.stop),
            ("control plane", self.cp and self.cp.stop),
        ):
            try:
                if stop:
                    stop()
            except Exception as exc:  # clean up the rest regardless
                print(f"   could not stop the {what} cleanly: {exc}", flush=True)
        shutil.rmtree(self.workdir, ignore_errors=True)
        print("   done: nothing is left running", flush=True)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="leave the testbed running until Ctrl-C")
    parser.add_argument(
        "--real-node",
        action="store_true",
        help="helm install on a real node (containerd, kubelet; needs root and `make image`)",
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)

    print("Plumbob demo: continuous compliance on a local, real Kubernetes control plane", flush=True)
    demo = RealNodeDemo(args.keep) if args.real_node else Demo(args.keep)
    code = 0
    try:
        demo.run()
    except KeyboardInterrupt:
        print("\ninterrupted", flush=True)
        code = 130
    except BuildError as exc:
        _fail(str(exc), "install what the message names (Go 1.26+) and run `make demo` again")
        code = 1
    except StartError as exc:
        _fail(
            f"the control plane did not start: {exc}",
            "another process may hold the ports, or the machine is short of memory; run `make demo` again",
        )
        code = 1
    except DemoError as exc:
        _fail(str(exc), exc.hint)
        code = 1
    except subprocess.CalledProcessError as exc:
        _fail(
            f"{' '.join(map(str, exc.cmd))} failed ({exc.returncode}):\n{exc.stderr or exc.output}",
            "see the message above",
        )
        code = 1
    except Exception as exc:  # a newcomer gets a message, not a stack trace
        _fail(
            f"unexpected error: {type(exc).__name__}: {exc}",
            "this is a bug in the demo or the operator; the traceback is in the saved logs below",
        )
        (demo.workdir / "demo-traceback.txt").write_text(traceback.format_exc())
        code = 1
    finally:
        if code == 1:
            tb = demo.workdir / "demo-traceback.txt"
            saved = demo.save_logs()
            if saved is not None and tb.exists():
                shutil.copy2(tb, saved / tb.name)
            if saved is not None:
                print(f"   logs saved in {saved}", file=sys.stderr, flush=True)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not abort the clean-up
        demo.cleanup(interrupted=code == 130)
    return code


def _fail(message: str, hint: str) -> None:
    print(f"\nerror: {message}", file=sys.stderr, flush=True)
    if hint:
        print(f"what to do: {hint}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
