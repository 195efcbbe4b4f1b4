"""ComplianceReport of a profile's cluster-level rules: read API objects, evaluate, write.

For each profile, at most every ``interval`` seconds and at once when its ``spec`` changes, the
operator reads the API objects the cluster rules need (one paginated LIST per kind, shared by
every profile due in the pass), evaluates the selected cluster-level rules of the profile's
benchmark (:mod:`plumbob.engine.cluster`) and its ``customRules`` (CEL), and writes the
cluster-level ``ComplianceReport`` named after the profile (no ``spec.nodeName``): its ``spec``
holds the results, each naming its object, and its ``status`` the summary.

What the report promises:

- a kind that cannot be read (forbidden, server error) makes every benchmark rule ``error`` with
  the reason: a rule never passes on objects it could not see;
- a custom rule that does not compile is one ``error`` result naming the rule and the compiler's
  message (and the profile is ``Stalled``, reason ``InvalidCustomRule``, with one Event: see
  :mod:`~plumbob.controller.profile_status`); the other rules still run;
- a custom rule on a kind the API server does not serve (or that cannot be listed) is ``error``,
  with one ``CustomRuleUnreadable`` Event per profile generation;
- a custom rule on a kind the API server does not serve, or cannot be listed, is ``error``;
- with ``spec.podSecurity``, the Pod Security Standards of that level are evaluated too (rule
  ids such as ``privileged``), at the pinned policy version or, with ``auto``, each namespace's
  enforce-version label, else the cluster's minor version;
- expected holders (the benchmark's defaults, or the profile's ``expectedHolders`` instead) are
  listed as ``pass`` results whose reason starts with ``expected:``;
- at most :data:`MAX_LISTED` failing (or erroring) objects per rule are listed, then one result
  without an object says how many more there are; the whole list stays under the API's cap.

This is a polling step of the level-based loop; the reads and the evaluation run in a worker
thread of their own (one evaluation at a time). Watching the kinds, re-evaluating only what
changed, drift Events per object, per-namespace reports and exceptions on cluster results are
not done here yet (issue 8, §5).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from plumbob.api.common import MAX_RULES, ResultStatus, Summary
from plumbob.api.profiles import ComplianceProfile
from plumbob.benchmarks.catalog import CatalogError, load_benchmark
from plumbob.benchmarks.rules import ExpectedHolder, Target
from plumbob.benchmarks.tailoring import Tailoring
from plumbob.controller.context import Context, ref
from plumbob.controller.decisions import excepting
from plumbob.controller.decisions.cluster_results import MAX_EXPECTED, MAX_LISTED, check_result, clip
from plumbob.controller.kinds import CLUSTER_RULE_KINDS as CLUSTER_KINDS
from plumbob.controller.steps.cluster.cluster_drift import DriftEvents, Violation
from plumbob.controller.steps.cluster.namespace_reports import NamespaceReports
from plumbob.controller.store import Snapshot
from plumbob.engine.cluster import ClusterSettings, Holders, Inventory, evaluate_cluster
from plumbob.engine.cluster.custom import CustomRule, compile_rules, evaluate_custom, rule_finding
from plumbob.engine.cluster.pss import LATEST, parse_version
from plumbob.engine.findings import Finding, Status, finding_for
from plumbob.kube import ConflictError, KubeError, NotFoundError
from plumbob.names import API_VERSION, LABEL_PROFILE, report_name

log = logging.getLogger("plumbob.controller")


def custom_rules(profile: ComplianceProfile) -> list[CustomRule]:
    return [
        CustomRule(
            id=r.id,
            title=r.title,
            severity=r.severity.value,
            api_version=r.match.api_version,
            kind=r.match.kind,
            expression=r.expression,
            namespaces=tuple(r.match.namespaces),
            message=r.message,
            remediation=r.remediation,
        )
        for r in profile.spec.custom_rules
    ]


def own_holders(namespace: str) -> list[ExpectedHolder]:
    """Plumbob itself: its audit Pods and Jobs need host access to read the node (hostPID, hostPath,
    a capability), and its service accounts the permissions the chart grants. Listed as expected
    with this reason in every profile, whatever its own list says; never hidden."""
    why = "Plumbob's own {}: it audits the nodes and reads the API (namespace " + namespace + ")"
    return [
        ExpectedHolder(rules=["*"], namespace=namespace, reason=why.format("audit Pods and Jobs")),
        ExpectedHolder(
            rules=["*"],
            subject_kind="ServiceAccount",
            subject=f"{namespace}/*",
            reason=why.format("service accounts"),
        ),
    ]


def expected_holders(
    profile: ComplianceProfile, defaults: Sequence[ExpectedHolder], namespace: str
) -> list[ExpectedHolder]:
    """The profile's list when it has one (even empty), else the benchmark's defaults; Plumbob's own
    Pods and service accounts (in ``namespace``) in either case."""
    own = profile.spec.expected_holders
    chosen = (
        list(defaults) if own is None else [ExpectedHolder(**h.model_dump(exclude_none=True)) for h in own]
    )
    return own_holders(namespace) + chosen


def capped_results(findings: Sequence[Finding], tailoring: Tailoring | None) -> list[dict[str, Any]]:
    """Results with at most MAX_LISTED failures and MAX_EXPECTED expected holders per rule."""
    by_rule: dict[str, list[Finding]] = defaultdict(list)
    for f in findings:
        by_rule[f.rule_id].append(f)
    out: list[dict[str, Any]] = []
    for rule_id, group in by_rule.items():
        bad = [f for f in group if f.status in (Status.FAIL, Status.ERROR)]
        expected = [f for f in group if f.expected]
        rest = [f for f in group if f not in bad and not f.expected]
        out += [check_result(f, tailoring) for f in rest]
        out += [check_result(f, tailoring) for f in bad[:MAX_LISTED]]
        out += [check_result(f, tailoring) for f in expected[:MAX_EXPECTED]]
        if len(bad) > MAX_LISTED:
            first = bad[0]
            more = len(bad) - MAX_LISTED
            out.append(
                {
                    "id": rule_id,
                    "title": clip(first.title, 256),
                    "severity": first.severity,
                    "status": first.status.value,
                    "reason": f"{more} more objects fail this rule; the list is capped at {MAX_LISTED}",
                    "evidence": [],
                }
            )
    return out[:MAX_RULES]


class ClusterStatus:
    """The step. With ``background`` (the default) the reads and the evaluation run in one worker
    thread, so that a slow evaluation (seconds at 10,000 Pods) never holds up scans and reports;
    the reconcile pass only decides which profiles are due and hands them over."""

    def __init__(
        self, ctx: Context, interval: float = 60.0, *, background: bool = True, settle: float = 0.25
    ) -> None:
        self.ctx = ctx
        self.interval = interval
        self.settle = settle  # at least this long between the starts of two evaluations
        self.background = background
        self.drift = DriftEvents(ctx)
        self.namespaces = NamespaceReports(ctx)
        self._failing: dict[str, set[Violation]] = {}  # profile → every failing (rule, object), last time
        # profile → (generation, API-object change count, when, in seconds) at its last evaluation
        self._done: dict[str, tuple[int | None, tuple[int, int], float]] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._running: Future[None] | None = None
        self._last_start = float("-inf")
        self._listed_at: float | None = None  # when the objects were last LISTed (monotonic)
        self._list_errors = False
        self._last_took = 0.0

    def _due(self, profile: ComplianceProfile, clock: float, changes: tuple[int, int]) -> float:
        """Seconds until ``profile`` is due (0: now): its spec changed, an object the cluster rules
        read changed (after a short settling time), or the interval passed (custom rules' kinds,
        which are not watched)."""
        done = self._done.get(profile.metadata.name or "")
        if done is None or done[0] != profile.metadata.generation:
            return 0.0
        # after a slow evaluation, wait as long as it took: under constant churn (Pods coming and
        # going) the cluster rules take at most half of a core
        gap = max(self.settle, 2 * self._last_took)
        if done[1] != changes:
            return max(0.0, self._last_start + gap - clock)
        return max(0.0, done[2] + self.interval - clock)

    def reconcile(self, snap: Snapshot, entries: list[excepting.Entry], now: datetime) -> float:
        """Write each cluster report's status (exceptions applied) and start the evaluation of the
        profiles that are due; the seconds until the next one is."""
        self._settle_reports(snap, entries, now)
        if self._running is not None and not self._running.done():
            return 0.2  # an evaluation is under way: look again soon
        clock = now.timestamp()
        # a watched object or an exception entry changed (entries decide the namespace reports)
        changes = (self.ctx.store.cluster_changes, hash(repr(entries)))
        due = [p for p in snap.profiles.values() if self._due(p, clock, changes) == 0.0]
        if due:
            for profile in due:
                self._done[profile.metadata.name or ""] = (profile.metadata.generation, changes, clock)
            self._last_start = clock
            if self.background:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(1, thread_name_prefix="plumbob-cluster")
                self._running = self._pool.submit(self._evaluate_all, due, entries, now)
            else:
                self._evaluate_all(due, entries, now)
            self.namespaces.forget(p.metadata.name or "" for p in snap.profiles.values())
        waits = [self._due(p, clock, changes) for p in snap.profiles.values()]
        return min(waits, default=self.interval) or 0.05

    def _settle_reports(self, snap: Snapshot, entries: list[excepting.Entry], now: datetime) -> None:
        """Each profile's cluster report's status: summary per rule and the excepted results."""
        for profile in snap.profiles.values():
            name = report_name(profile.metadata.name or "", None)
            report = snap.reports.get(name)
            if report is None or report.node is not None:
                continue
            with self.ctx.isolated("report", name):
                applied = excepting.apply_to_cluster_report(report, entries, now)
                summary = Summary.of([ResultStatus(s) for s in applied.effective.values()])
                new = {
                    "observedGeneration": report.generation,
                    "summary": summary.to_dict(),
                    "exceptions": [
                        {
                            "rule": r.rule,
                            "resource": {
                                "apiGroup": r.api_group,
                                "kind": r.kind,
                                "name": r.name,
                                **({"namespace": r.namespace} if r.namespace else {}),
                            },
                            "exception": entry.ref(),
                        }
                        for r, entry in applied.excepted[:MAX_RULES]
                    ],
                }
                self.ctx.patch("compliancereports", name, report.status, new)

    def wait(self, timeout: float | None = None) -> None:
        """Until the evaluation under way (if any) is finished; for tools and tests."""
        if self._running is not None:
            self._running.result(timeout)

    def _evaluate_all(
        self, due: list[ComplianceProfile], entries: list[excepting.Entry], now: datetime
    ) -> None:
        started = time.monotonic()
        try:
            objects, read_errors = self._read()
            # one inventory for every profile due (the objects are the same), built when first needed
            inventory: list[Inventory] = []

            def shared() -> Inventory:
                if not inventory:
                    inventory.append(Inventory.build(o for items in objects.values() for o in items))
                return inventory[0]

            for profile in due:
                with self.ctx.isolated("profile", profile.metadata.name, ref(profile)):
                    self._evaluate(
                        profile, objects, shared, read_errors=read_errors, entries=entries, now=now
                    )
        except Exception:
            log.exception("cluster rule evaluation failed; retrying at the next interval")
        finally:
            self._last_took = time.monotonic() - started
            self.ctx.store.wake.set()  # the pass writes the new reports' status

    def _read(self) -> tuple[dict[tuple[str, str], list[dict[str, Any]]], list[str]]:
        """The objects the rules read: from the store (kept current by the watches), or, for a
        term's first evaluation and then every ``interval``, from one LIST per kind, which also
        resets the store's copy (a watch that was down may have missed a deletion)."""
        now = time.monotonic()
        full = self._listed_at is None or now - self._listed_at >= self.interval or self._list_errors
        objects: dict[tuple[str, str], list[dict[str, Any]]] = {}
        errors: list[str] = []
        for api_version, plural, kind in CLUSTER_KINDS:
            if not full:
                objects[(api_version, kind)] = self.ctx.store.cluster_object_bodies(plural)
                continue
            try:
                items, version = self.ctx.kube.list_api_collection(api_version, plural, kind)
            except KubeError as exc:
                errors.append(f"cannot list {plural} ({api_version}): {exc}")
                continue
            self.ctx.store.replace_cluster_objects(plural, items, version)
            objects[(api_version, kind)] = items
        if full:
            self._listed_at = now
            self._list_errors = bool(errors)
        return objects, errors

    def _custom_objects(
        self, rules: Iterable[CustomRule], objects: dict[tuple[str, str], list[dict[str, Any]]]
    ) -> dict[tuple[str, str], list[dict[str, Any]] | str]:
        out: dict[tuple[str, str], list[dict[str, Any]] | str] = {}
        for rule in rules:
            key = (rule.api_version, rule.kind)
            if key in out:
                continue
            if key in objects:
                out[key] = objects[key]
                continue
            try:
                plural = self.ctx.kube.resource_plural(*key)
                if plural is None:
                    out[key] = f"the API server serves no kind {rule.kind} in {rule.api_version}"
                else:
                    out[key] = self.ctx.kube.list_api_objects(rule.api_version, plural, rule.kind)
            except KubeError as exc:
                out[key] = f"cannot list {rule.kind} ({rule.api_version}): {exc}"
        return out

    def _evaluate(
        self,
        profile: ComplianceProfile,
        objects: dict[tuple[str, str], list[dict[str, Any]]],
        shared: Callable[[], Inventory],
        *,
        read_errors: list[str],
        entries: list[excepting.Entry],
        now: datetime,
    ) -> None:
        name = profile.metadata.name or ""
        try:
            tailoring = self.ctx.resolve(profile)
            bench = load_benchmark(tailoring.benchmark, tailoring.variables or None)
        except (CatalogError, KubeError) as exc:
            log.info("profile %s: no cluster evaluation: %s", name, exc)  # profile_status reports it
            return
        rules = [r for r in bench.rules if r.targets == [Target.CLUSTER] and tailoring.selects(r.id)]
        settings = ClusterSettings(
            holders=Holders.of(
                expected_holders(profile, bench.expected_holders, self.ctx.settings.namespace),
                bench.never_expected,
            ),
            cluster_version=parse_version(_minor(self.ctx.kubernetes_version()), (1, 10_000)),
        )
        pss = profile.spec.pod_security
        pss_bench = load_benchmark(f"pss-{pss.level}") if pss else None
        pss_rules = [r for r in pss_bench.rules if not tailoring.excludes(r.id)] if pss_bench else []
        if read_errors:
            reason = clip("; ".join(read_errors), 1000)
            findings = [finding_for(r, Status.ERROR, reason) for r in [*rules, *pss_rules]]
        else:
            inventory = shared()
            findings = evaluate_cluster(rules, inventory, settings)
            if pss and pss_bench:
                pinned = None if pss.version == "auto" else parse_version(pss.version, LATEST)
                pss_settings = ClusterSettings(
                    holders=Holders.of(
                        expected_holders(profile, pss_bench.expected_holders, self.ctx.settings.namespace),
                        pss_bench.never_expected,
                    ),
                    cluster_version=settings.cluster_version,
                    pss_version=pinned,
                )
                findings += evaluate_cluster(pss_rules, inventory, pss_settings)
        findings += self._custom(profile, objects)
        self._write(profile, tailoring, findings, now, objects)
        self.namespaces.write(
            profile, tailoring.benchmark, findings=findings, entries=entries, tailoring=tailoring, now=now
        )

    def _custom(
        self, profile: ComplianceProfile, objects: dict[tuple[str, str], list[dict[str, Any]]]
    ) -> list[Finding]:
        # a rule that does not compile is an error result here; profile_status makes the profile
        # Stalled with one Event; the other rules still run
        compiled, errors = compile_rules(custom_rules(profile))
        out: list[Finding] = [
            rule_finding(
                err.rule, Status.ERROR, clip(f"the rule does not compile: {err.message}", 1000) or ""
            )
            for err in errors
        ]
        sources = self._custom_objects([c.rule for c in compiled], objects)
        for c in compiled:
            source = sources[(c.rule.api_version, c.rule.kind)]
            if isinstance(source, str):
                out.append(rule_finding(c.rule, Status.ERROR, clip(source, 1000) or ""))
                self.ctx.event(
                    ref(profile), "Warning", "CustomRuleUnreadable",
                    clip(f"custom rule {c.rule.id}: {source}", 1000) or "",
                    once=(profile.metadata.name, str(profile.metadata.generation), c.rule.id, "unreadable"),
                )  # fmt: skip
                continue
            out += evaluate_custom([c], source)
        return out

    def _write(
        self,
        profile: ComplianceProfile,
        tailoring: Tailoring,
        findings: list[Finding],
        now: datetime,
        objects: Mapping[tuple[str, str], list[dict[str, Any]]],
    ) -> None:
        name = report_name(profile.metadata.name or "", None)
        results = capped_results(findings, tailoring)
        body: dict[str, Any] = {
            "apiVersion": API_VERSION,
            "kind": "ComplianceReport",
            "metadata": {
                "name": name,
                "labels": {LABEL_PROFILE: profile.metadata.name or ""},
                "ownerReferences": [
                    {
                        "apiVersion": API_VERSION,
                        "kind": "ComplianceProfile",
                        "name": profile.metadata.name,
                        "uid": profile.metadata.uid,
                    }
                ],
            },
            "spec": {
                "profile": profile.metadata.name,
                "scan": "continuous",
                "benchmark": tailoring.benchmark,
                "auditTime": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "results": results,
            },
        }
        try:
            before = self._create_or_replace(body)
        except KubeError as exc:
            log.warning("could not write the cluster report of %s: %s", profile.metadata.name, exc)
            return
        # Drift is decided on every failing object, not on the report's capped list; the first
        # evaluation of a term starts from the stored report (a new report is the baseline).
        key = profile.metadata.name or ""
        new = {
            _violation(f)
            for f in findings
            if f.status is Status.FAIL and f.resource is not None and not f.expected
        }
        old = self._failing.get(key)
        if old is None and before is not None:
            old = _failing(before.get("results") or [])
        self._failing[key] = new
        if old is not None and old != new:
            self.drift.announce(profile, old, new, _involved(objects, old ^ new))

    def _create_or_replace(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """Write the report unless its results are unchanged; the ``spec`` it had before (None: new)."""
        kube = self.ctx.kube
        for _attempt in range(5):
            try:
                current = kube.get_object("compliancereports", body["metadata"]["name"])
            except NotFoundError:
                try:
                    kube.create_object("compliancereports", body)
                    return None
                except ConflictError:
                    continue
            spec = dict(current.get("spec") or {})
            if spec == body["spec"] | {"auditTime": spec.get("auditTime")}:
                return spec  # same results: keep the object (and its audit time) as it is
            replacement = {
                **body,
                "metadata": {**body["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]},
            }
            try:
                kube.replace_object("compliancereports", replacement)
                return spec
            except ConflictError:
                continue
        raise KubeError(409, "the cluster report kept changing (5 conflicts)")


def _involved(
    objects: Mapping[tuple[str, str], list[dict[str, Any]]], wanted: set[Violation]
) -> dict[tuple[str, str, str | None, str], dict[str, str]]:
    """What an Event's ``involvedObject`` says about each wanted object that exists."""
    keys = {v.key() for v in wanted}
    out: dict[tuple[str, str, str | None, str], dict[str, str]] = {}
    for (api_version, kind), items in objects.items():
        group = api_version.rpartition("/")[0]
        for obj in items:
            meta = obj.get("metadata") or {}
            key = (group, kind, meta.get("namespace") or None, str(meta.get("name")))
            if key in keys:
                out[key] = {
                    "apiVersion": api_version,
                    "kind": kind,
                    "name": key[3],
                    "namespace": key[2] or "",
                    "uid": str(meta.get("uid") or ""),
                }
    return out


def _violation(finding: Finding) -> Violation:
    ref = finding.resource
    assert ref is not None  # callers pass findings about an object
    return Violation(finding.rule_id, ref.api_group, ref.kind, ref.namespace, ref.name)


def _failing(results: Iterable[Mapping[str, Any]]) -> set[Violation]:
    """The (rule, object) pairs a report's results say fail."""
    out = set()
    for r in results:
        res = r.get("resource")
        if r.get("status") == "fail" and isinstance(res, Mapping):
            out.add(
                Violation(
                    str(r.get("id")),
                    str(res.get("apiGroup") or ""),
                    str(res.get("kind")),
                    res.get("namespace") or None,
                    str(res.get("name")),
                )
            )
    return out


def _minor(version: str) -> str:
    """``v1.36.3`` → ``v1.36`` (the policy version the Pod Security Standards use)."""
    major, _, rest = version.lstrip("v").partition(".")
    return f"v{major}.{rest.split('.')[0]}"
