"""ComplianceReport of a profile's cluster-level rules: keep the objects, evaluate, write.

:mod:`~plumbob.controller.steps.cluster.watches` keeps the API objects the cluster rules read in
the store (compact JSON), only while a profile needs them. This step keeps one parsed
:class:`~plumbob.engine.cluster.Inventory` for the term and, before each evaluation, puts into it
only the objects whose digest changed (and removes the gone ones), so that the evaluation checks
only what changed. A profile is evaluated when its ``spec`` changes, 0.25 s after a watched
object changes, and every ``interval`` (60 s).
It evaluates the selected cluster-level rules of the profile's benchmark
(:mod:`plumbob.engine.cluster`), its Pod Security Standards and its ``customRules`` (CEL), writes
the cluster-level ``ComplianceReport`` named after the profile (no ``spec.nodeName``; ``spec``
holds the results, each naming its object; ``status`` the summary with exceptions applied), the
per-namespace reports (:mod:`~plumbob.controller.steps.cluster.namespace_reports`) and the drift Events
(:mod:`~plumbob.controller.steps.cluster.cluster_drift`).

What the report promises:

- a kind that cannot be read (forbidden, server error) makes every benchmark rule ``error`` with
  the reason: a rule never passes on objects it could not see;
- a custom rule that does not compile is one ``error`` result naming the rule and the compiler's
  message (and the profile is ``Stalled``, reason ``InvalidCustomRule``, with one Event: see
  :mod:`~plumbob.controller.steps.profile_status`); the other rules still run;
- a custom rule on a kind the API server does not serve (or that cannot be listed) is ``error``,
  with one ``CustomRuleUnreadable`` Event per profile generation;
- with ``spec.podSecurity``, the Pod Security Standards of that level are evaluated too (rule
  ids such as ``privileged``), at the pinned policy version or, with ``auto``, each namespace's
  enforce-version label, else the cluster's minor version;
- expected holders (the benchmark's defaults, or the profile's ``expectedHolders`` instead) are
  listed as ``pass`` results whose reason starts with ``expected:``;
- at most :data:`MAX_LISTED` failing (or erroring) objects per rule are listed, then one result
  without an object says how many more there are; the whole list stays under the API's cap.

The reads and the evaluation run in a worker thread of their own (one evaluation at a time), so
that a slow one never holds up scans; after an evaluation that took t, the next starts no sooner
than 2t after it started (constant churn costs at most half a core).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from plumbob.api.common import MAX_RULES, ResultStatus, Summary
from plumbob.api.profiles import ComplianceProfile
from plumbob.api.reports import ComplianceReportStatus
from plumbob.benchmarks.catalog import CatalogError, load_benchmark
from plumbob.benchmarks.rules import ExpectedHolder, Target
from plumbob.benchmarks.tailoring import Tailoring
from plumbob.controller.context import Context, built_status, ref, same
from plumbob.controller.decisions import excepting
from plumbob.controller.decisions.cluster_results import MAX_EXPECTED, MAX_LISTED, check_result, clip
from plumbob.controller.decisions.digests import ReportDigest
from plumbob.controller.kinds import CLUSTER_RULE_KINDS as CLUSTER_KINDS
from plumbob.controller.steps.cluster.cluster_drift import DriftEvents, Violation
from plumbob.controller.steps.cluster.namespace_reports import NamespaceReports
from plumbob.controller.steps.cluster.watches import ObjectWatches
from plumbob.controller.store import Snapshot
from plumbob.engine.cluster import ClusterSettings, Holders, Inventory, evaluate_cluster
from plumbob.engine.cluster.custom import CustomRule, compile_rules, evaluate_custom, rule_finding
from plumbob.engine.cluster.pss import LATEST, parse_version
from plumbob.engine.findings import Finding, ObjectRef, Status, finding_for
from plumbob.kube import ConflictError, KubeError, NotFoundError
from plumbob.names import API_VERSION, LABEL_PROFILE, report_name

log = logging.getLogger("plumbob.controller")
_PLURAL = {(api_version, kind): plural for api_version, plural, kind in CLUSTER_KINDS}
_BY_PLURAL = {plural: (api_version, kind) for api_version, plural, kind in CLUSTER_KINDS}
_API_VERSION_OF_PLURAL = {plural: api_version for api_version, plural, _ in CLUSTER_KINDS}
_PLURAL_OF_GROUP_KIND = {(v.rpartition("/")[0], kind): plural for v, plural, kind in CLUSTER_KINDS}


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
    """Plumbob itself: the objects of its namespace (the operator's Pods, its Roles) and its service
    accounts, which hold the permissions the chart grants. Listed as expected with this reason in
    every profile, whatever its own list says; never hidden. Its namespace's Pods and Jobs are not
    read at all (see :mod:`~plumbob.controller.steps.cluster.watches`): its audit Jobs, which need
    host access to read the nodes (hostPID, read-only hostPath, one capability), come and go with
    every scan, and listing them as expected made each scan rewrite the reports."""
    why = "Plumbob's own {}: it audits the nodes and reads the API (namespace " + namespace + ")"
    return [
        ExpectedHolder(rules=["*"], namespace=namespace, reason=why.format("objects")),
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
        rest = [f for f in group if f.status not in (Status.FAIL, Status.ERROR) and not f.expected]
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


def cluster_report_status(
    report: ReportDigest, entries: Iterable[excepting.Entry], now: datetime
) -> dict[str, Any]:
    """The status of a profile's cluster report, in wire names: the summary per rule and the
    excepted results, with the entries applied that cover it ``now``. Not yet built through
    :class:`~plumbob.api.reports.ComplianceReportStatus`: the step does that when it writes it."""
    applied = excepting.apply_to_cluster_report(report, entries, now)
    summary = Summary.of([ResultStatus(s) for s in applied.effective.values()])
    return {
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
        self._written: dict[str, tuple[str, dict[str, Any]]] = {}  # report → (resourceVersion, spec)
        # profile → (generation, API-object change count, when, in seconds) at its last evaluation
        self._done: dict[str, tuple[int | None, tuple[int, int], float]] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._running: Future[None] | None = None
        self._last_start = float("-inf")
        self._last_took = 0.0
        # the objects the rules read, parsed, kept between evaluations and brought up to date from
        # the store: only what changed is parsed and checked again (see Inventory)
        self._inventory = Inventory()
        self._held: dict[tuple[str, tuple[str | None, str]], int] = {}  # store key → digest put
        self.watches = ObjectWatches(ctx.kube, ctx.store)  # the kinds the profiles' rules read
        self._needs: dict[tuple[str, int | None], bool] = {}  # (profile, generation) → reads built-in kinds

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
            return 0.2  # an evaluation is under way (it reads the watched kinds): look again soon
        wanted: dict[tuple[str, str], str | None] = {}
        if any(self._reads_builtin_kinds(p) for p in snap.profiles.values()):
            wanted.update(_PLURAL)
        # the built-in rules read no status: kept without, unless a custom rule names the kind
        lean = set(wanted)
        for p in snap.profiles.values():
            for r in p.spec.custom_rules:
                wanted.setdefault((r.match.api_version, r.match.kind), None)
                lean.discard((r.match.api_version, r.match.kind))
        self.watches.threads = self.background
        # Plumbob's own namespace's Pods and Jobs (its audit Jobs come and go with every scan) are
        # not read: every one of them is an expected holder anyway (own_holders)
        outside = f"metadata.namespace!={self.ctx.settings.namespace}"
        # changed only between evaluations: a watch stopped or started anew empties its kind in
        # the store for a moment, which an evaluation under way would read as objects deleted
        self.watches.ensure(wanted, {("v1", "Pod"): outside, ("batch/v1", "Job"): outside}, lean)
        if not self.watches.settled(set(wanted)):
            return 0.2  # a kind's first LIST is under way
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

    def _reads_builtin_kinds(self, profile: ComplianceProfile) -> bool:
        """Whether the profile selects a cluster-level rule of its benchmark or the Pod Security
        Standards: then the built-in rules' kinds are watched (a profile of node rules alone, or
        of custom rules alone, needs none of them)."""
        key = (profile.metadata.name or "", profile.metadata.generation)
        if key not in self._needs:
            if len(self._needs) > 10_000:
                self._needs.clear()
            try:
                tailoring = self.ctx.resolve(profile)
                bench = load_benchmark(tailoring.benchmark, tailoring.variables or None)
            except (CatalogError, KubeError):
                return False  # not decided yet: asked again at the next pass
            self._needs[key] = profile.spec.pod_security is not None or any(
                r.targets == [Target.CLUSTER] and tailoring.selects(r.id) for r in bench.rules
            )
        return self._needs[key]

    def _settle_reports(self, snap: Snapshot, entries: list[excepting.Entry], now: datetime) -> None:
        """Each profile's cluster report's status: summary per rule and the excepted results."""
        for profile in snap.profiles.values():
            name = report_name(profile.metadata.name or "", None)
            report = snap.reports.get(name)
            if report is None or report.node is not None:
                continue
            with self.ctx.isolated("report", name):
                new = cluster_report_status(report, entries, now)
                # built through the model only when it is written: at every pass, a thousand
                # excepted results would cost some 25 ms per profile to build
                if not same(report.status, new):
                    new = built_status(ComplianceReportStatus, new)
                    self.ctx.patch("compliancereports", name, report.status, new)

    def close(self) -> None:
        """The term is over: stop the custom kinds' watches and the worker (after its evaluation)."""
        self.watches.stop_all()
        if self._pool is not None:
            self._pool.shutdown(wait=False)

    def wait(self, timeout: float | None = None) -> None:
        """Until the evaluation under way (if any) is finished; for tools and tests."""
        if self._running is not None:
            self._running.result(timeout)

    def _evaluate_all(
        self, due: list[ComplianceProfile], entries: list[excepting.Entry], now: datetime
    ) -> None:
        started = time.monotonic()
        # a term's first evaluation, or a profile's, parses or checks everything once: it does not
        # count in the duty cycle (a 15 s first evaluation would hold the next change back 30 s)
        first = not self._held or any(p.metadata.name not in self._failing for p in due)
        try:
            read_errors = self._read()
            for profile in due:
                with self.ctx.isolated("profile", profile.metadata.name, ref(profile)):
                    self._evaluate(profile, read_errors=read_errors, entries=entries, now=now)
        except Exception:
            log.exception("cluster rule evaluation failed; retrying at the next interval")
        finally:
            self._last_took = 0.0 if first else time.monotonic() - started
            self.ctx.store.wake.set()  # the pass writes the new reports' status

    def _read(self) -> list[str]:
        """Bring the kept inventory up to date with the store (kept current by the watches, see
        :mod:`~plumbob.controller.steps.cluster.watches`); why a kind the rules read could not be
        LISTed, if one could not."""
        errors = [e for key in _PLURAL if (e := self.watches.error(key))]
        self._sync()
        return errors

    def _sync(self) -> None:
        """Put the objects whose digest changed since the last evaluation into the inventory, and
        remove the ones the store no longer holds: the evaluation then checks only what changed."""
        store, inventory = self.ctx.store, self._inventory
        prints = store.cluster_fingerprints()
        for key, print_ in prints.items():
            if self._held.get(key) == print_ or key[0] not in _BY_PLURAL:
                continue  # unchanged, or a kind only custom rules read
            body = store.cluster_object_body(*key)
            if body is not None:
                inventory.put(body)
            self._held[key] = print_
        for key in [k for k in self._held if k not in prints]:
            del self._held[key]
            plural, (namespace, name) = key
            api_version, kind = _BY_PLURAL[plural]
            inventory.remove(ObjectRef(api_version=api_version, kind=kind, namespace=namespace, name=name))

    def _custom_objects(
        self, rules: Iterable[CustomRule]
    ) -> dict[tuple[str, str], list[dict[str, Any]] | str]:
        """The objects each custom rule's kind has: from the store for a kind the operator watches,
        else one LIST; or why they cannot be read."""
        out: dict[tuple[str, str], list[dict[str, Any]] | str] = {}
        for rule in rules:
            key = (rule.api_version, rule.kind)
            if key in out:
                continue
            watched = _PLURAL.get(key) or self.watches.objects(key)
            if watched:
                out[key] = self.ctx.store.cluster_object_bodies(watched)
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
            inventory = self._inventory
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
        findings += self._custom(profile)
        self._write(profile, tailoring, findings, now)
        self.namespaces.write(
            profile, tailoring.benchmark, findings=findings, entries=entries, tailoring=tailoring, now=now
        )

    def _custom(self, profile: ComplianceProfile) -> list[Finding]:
        # a rule that does not compile is an error result here; profile_status makes the profile
        # Stalled with one Event; the other rules still run
        compiled, errors = compile_rules(custom_rules(profile))
        out: list[Finding] = [
            rule_finding(
                err.rule, Status.ERROR, clip(f"the rule does not compile: {err.message}", 1000) or ""
            )
            for err in errors
        ]
        sources = self._custom_objects([c.rule for c in compiled])
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
        # Drift is decided on every failing object, not on the report's capped list, and announced
        # before the report is written (the Events are what people wait for); the first evaluation
        # of a term starts from the stored report (a new report is the baseline).
        key = profile.metadata.name or ""
        new = {
            _violation(f)
            for f in findings
            if f.status is Status.FAIL and f.resource is not None and not f.expected
        }
        old = self._failing.get(key)
        if old is None:
            stored = self._stored(name)
            old = None if stored is None else _failing(stored.get("results") or [])
        self._failing[key] = new
        if old is not None and old != new:
            self.drift.announce(profile, old, new, self._involved(old ^ new))
        try:
            self._create_or_replace(body)
        except KubeError as exc:
            log.warning("could not write the cluster report of %s: %s", profile.metadata.name, exc)

    def _involved(self, wanted: set[Violation]) -> dict[tuple[str, str, str | None, str], dict[str, str]]:
        """What an Event's ``involvedObject`` says about each wanted object the store holds."""
        out: dict[tuple[str, str, str | None, str], dict[str, str]] = {}
        for group, kind, namespace, name in {v.key() for v in wanted}:
            plural = _PLURAL_OF_GROUP_KIND.get((group, kind))
            where = (_API_VERSION_OF_PLURAL[plural], plural) if plural else self.watches.held(group, kind)
            body = self.ctx.store.cluster_object_body(where[1], (namespace, name)) if where else None
            if where and body:
                out[(group, kind, namespace, name)] = {
                    "apiVersion": where[0],
                    "kind": kind,
                    "name": name,
                    "namespace": namespace or "",
                    "uid": str((body.get("metadata") or {}).get("uid") or ""),
                }
        return out

    def _stored(self, name: str) -> dict[str, Any] | None:
        """The stored report's ``spec`` (None: there is none, or it cannot be read), remembered with
        its resourceVersion for the next write."""
        try:
            current = self.ctx.kube.get_object("compliancereports", name)
        except NotFoundError:
            return None
        except KubeError as exc:
            log.warning("could not read the cluster report %s: %s", name, exc)
            return None
        spec = dict(current.get("spec") or {})
        self._written[name] = (str(current["metadata"]["resourceVersion"]), spec)
        return spec

    def _create_or_replace(self, body: dict[str, Any]) -> None:
        """Write the report unless its results are unchanged. The spec last written or read is
        remembered, so that a write needs no read first (the operator alone writes a report's
        spec); it is read again when the watched copy shows the report gone, and on a conflict.
        A replace carries the newer of the resourceVersions written and watched (the status
        written since bumps it)."""
        kube, name = self.ctx.kube, body["metadata"]["name"]
        watched = self.ctx.store.versions.get(("compliancereports", (None, name)))
        if watched is None:
            self._written.pop(name, None)  # gone (its profile recreated?), or not seen yet: read it
        for _attempt in range(5):
            spec = self._written[name][1] if name in self._written else self._stored(name)
            if spec is None:
                try:
                    created = kube.create_object("compliancereports", body)
                except ConflictError:
                    continue
                self._written[name] = (str(created["metadata"]["resourceVersion"]), body["spec"])
                return
            if spec == body["spec"] | {"auditTime": spec.get("auditTime")}:
                return  # same results: keep the object (and its audit time) as it is
            held = self._written[name][0]
            rv = str(max(int(held or 0), watched or 0))
            replacement = {**body, "metadata": {**body["metadata"], "resourceVersion": rv}}
            try:
                replaced = kube.replace_object("compliancereports", replacement)
            except (ConflictError, NotFoundError):
                self._written.pop(name, None)
                continue
            self._written[name] = (str(replaced["metadata"]["resourceVersion"]), body["spec"])
            return
        raise KubeError(409, "the cluster report kept changing (5 conflicts)")


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
