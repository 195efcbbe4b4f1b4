"""What every reconcile step shares: the API client, the store, the settings, the clock, and the
two ways a step speaks to the cluster, both of which never raise.

- :meth:`Context.patch` writes a status only when it differs from the current one, and puts the
  written object into the store at once so later steps of the same pass see it;
- :meth:`Context.event` posts an Event, logging (not raising) when that fails;
- :meth:`Context.isolated` runs one object's share of a step, so that an unexpected error on one
  object is logged and reported on it, and the step goes on with the others (one bad object must
  never stop the reconciliation of everything else).

The helpers below build what the steps write: a status through its kind's model
(:func:`built_status`), condition lists (:func:`conditions`), object references for Events
(:func:`ref`) and RFC 3339 times (:func:`iso`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from plumbob.api import ComplianceProfile, ComplianceScan, ComplianceSchedule
from plumbob.api.common import Condition, ConditionStatus, Model, set_condition
from plumbob.benchmarks.catalog import CatalogError, available, load_benchmark
from plumbob.benchmarks.tailoring import Tailoring
from plumbob.benchmarks.versions import benchmark_for
from plumbob.controller.decisions.jobs import DEFAULT_AGENT_RESOURCES
from plumbob.controller.decisions.platforms import PlatformChoice, choose_platform
from plumbob.controller.decisions.scanning import selects
from plumbob.controller.metrics import count_error
from plumbob.controller.store import Store
from plumbob.kube import Kube, KubeError

log = logging.getLogger("plumbob.controller")
Clock = Callable[[], datetime]
T = TypeVar("T")
R = TypeVar("R")


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json_env(name: str, default: Any) -> Any:
    """A JSON value from the environment (the chart renders these with ``toJson``)."""
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"{name} is not valid JSON: {exc}") from exc


def _pull_secret_names() -> list[str]:
    """``PLUMBOB_IMAGE_PULL_SECRETS``: the chart's ``imagePullSecrets``, ``[{"name": ...}]``."""
    return [str(item["name"]) for item in _json_env("PLUMBOB_IMAGE_PULL_SECRETS", [])]


@dataclass
class Settings:
    namespace: str = field(default_factory=lambda: os.environ.get("PLUMBOB_NAMESPACE", "plumbob-system"))
    image: str = field(
        default_factory=lambda: os.environ.get("PLUMBOB_AGENT_IMAGE", "ghcr.io/plumbob/plumbob:0.1.0")
    )
    agent_resources: dict[str, Any] = field(
        default_factory=lambda: dict(_json_env("PLUMBOB_AGENT_RESOURCES", DEFAULT_AGENT_RESOURCES))
    )
    image_pull_secrets: list[str] = field(default_factory=_pull_secret_names)
    progress_interval: float = 2.0  # seconds between progress writes of a running scan
    write_concurrency: int = 8  # API writes of one step in flight at once (Job creates, report statuses)
    min_interval: float = 0.3  # seconds between reconciles (batches bursts of events)


def conditions(
    current: list[Condition],
    generation: int | None,
    now: datetime,
    wanted: Mapping[str, tuple[bool, str, str]],
) -> list[dict[str, Any]]:
    """``current`` with each wanted condition set (transition times kept when unchanged), as wire dicts."""
    out = list(current)
    for type_, (ok, reason, message) in wanted.items():
        out = set_condition(
            out,
            Condition(
                type=type_,
                status=ConditionStatus.TRUE if ok else ConditionStatus.FALSE,
                reason=reason,
                message=message,
                last_transition_time=now,
                observed_generation=generation,
            ),
        )
    return [c.to_dict() for c in out]


def unknown_keys(given: Any, kept: Any, path: str = "status", *, empty_too: bool = True) -> list[str]:
    """The keys of ``given`` (recursively) that ``kept`` lost: misspelt fields, when ``kept`` is
    ``given`` after a round trip through its model. ``empty_too=False`` passes over lost keys
    whose value is ``None``, ``[]`` or ``{}`` (for a ``kept`` that leaves those out)."""
    out: list[str] = []
    if isinstance(given, Mapping) and isinstance(kept, Mapping):
        for key, value in given.items():
            if key not in kept:
                if empty_too or value not in (None, [], {}):
                    out.append(f"{path}.{key}")
            else:
                out += unknown_keys(value, kept[key], f"{path}.{key}", empty_too=empty_too)
    elif isinstance(given, list) and isinstance(kept, list):
        for i, (g, k) in enumerate(zip(given, kept, strict=False)):
            out += unknown_keys(g, k, f"{path}[{i}]", empty_too=empty_too)
    return out


def built_status(model: type[Model], fields: Mapping[str, Any]) -> dict[str, Any]:
    """A status to write, built through its kind's status ``model`` from wire-named ``fields``.

    Only the fields given are written. A top-level ``None`` removes a field, as in a merge patch,
    whatever the field's type (an exception list's ``entries`` too); it is not validated, but its
    name is checked. A field the model does not know, at any depth, raises ``ValueError`` naming
    it: a misspelt key fails the step and its tests, instead of being dropped without a word by
    the API server.
    """
    removed = [key for key, value in fields.items() if value is None]
    built = model.model_validate({key: value for key, value in fields.items() if value is not None})
    wire = built.model_dump(by_alias=True, exclude_unset=True, mode="json")
    known = {info.alias or name for name, info in model.model_fields.items()}
    wire |= dict.fromkeys(key for key in removed if key in known)
    unknown = unknown_keys(fields, wire)
    if unknown:
        raise ValueError(f"{model.__name__} has no field {', '.join(unknown)}")
    return wire


def stalled(reason: str, message: str, waiting: str) -> dict[str, tuple[bool, str, str]]:
    """The wanted conditions of an object that cannot make progress until its spec is fixed."""
    return {
        "Ready": (False, reason, message),
        "Stalled": (True, reason, message),
        "Reconciling": (False, reason, waiting),
    }


def same(current: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether writing ``new`` into a status holding ``current`` would change nothing."""
    current = current or {}
    return all(current.get(k) == v for k, v in new.items())


def ref(obj: ComplianceProfile | ComplianceSchedule | ComplianceScan) -> dict[str, str]:
    """The object as an Event's ``involvedObject``."""
    return {
        "apiVersion": obj.api_version,
        "kind": obj.kind,
        "name": obj.metadata.name,
        "uid": obj.metadata.uid or "",
    }


class Context:
    def __init__(
        self, kube: Kube, store: Store, settings: Settings | None = None, clock: Clock = utcnow
    ) -> None:
        self.kube = kube
        self.store = store
        self.settings = settings or Settings()
        self.clock = clock
        self._kubernetes_version: str | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._failures: set[tuple[str, str, str]] = set()  # (what, name, error) already reported
        self._posted: set[tuple[str | None, ...]] = set()  # keys of Events posted once
        # profile -> (its spec and platform, its tailoring): see resolve()
        self._resolved: dict[str, tuple[tuple[object, ...], Tailoring]] = {}
        # profile -> (what its platform was decided from, the choice): see platform()
        self._platforms: dict[str, tuple[tuple[object, ...], PlatformChoice]] = {}

    @contextlib.contextmanager
    def isolated(self, what: str, name: str, involved: dict[str, str] | None = None) -> Iterator[None]:
        """Run one object's share of a step; an unexpected error is contained to that object.

        The error is logged with its traceback and posted as a ``ReconcileError`` Event on
        ``involved``, once per object and message (the next pass meets the same error again).
        """
        try:
            yield
        except Exception as exc:  # the point: contain any failure to its object
            count_error(what)
            key = (what, name, f"{type(exc).__name__}: {exc}"[:300])
            if key in self._failures:
                return
            self._failures.add(key)
            log.exception("reconciling %s %s failed; going on with the others", what, name)
            if involved is not None:
                self.event(
                    involved,
                    "Warning",
                    "ReconcileError",
                    f"the operator could not reconcile this object: {key[2]}",
                )

    def in_parallel(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``fn`` over ``items`` with up to ``write_concurrency`` at once, results in order.

        A step's writes are independent of each other (one Job per node, one status per report);
        issued one by one they would leave the loop waiting on round trips at thousands of nodes.
        """
        work = list(items)
        if len(work) <= 1 or self.settings.write_concurrency <= 1:
            return [fn(item) for item in work]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                self.settings.write_concurrency, thread_name_prefix="plumbob-write"
            )
        return list(self._pool.map(fn, work))

    def kubernetes_version(self) -> str:
        if self._kubernetes_version is None:
            self._kubernetes_version = self.kube.server_version()
        return self._kubernetes_version

    def platform(self, profile: ComplianceProfile) -> PlatformChoice:
        """The platform the profile's benchmark is for (``auto``: detected from the nodes the
        profile selects, and the API server's version)."""
        requested = profile.spec.benchmark.platform.value
        roles = [r.value for r in profile.spec.node_roles]
        with self.store.lock:
            nodes = list(self.store.objects["nodes"].values())
            node_changes = self.store.node_changes
        # Decided again only when a Node changed (not on heartbeats) or the profile's choice did:
        # a pass at 1,000 nodes otherwise re-detects every node's platform for every scan and profile.
        key = (requested, repr(profile.spec.node_selector), tuple(roles), node_changes)
        cached = self._platforms.get(profile.metadata.name)
        if cached is not None and cached[0] == key:
            return cached[1]
        selected = [n for n in nodes if selects(n, profile.spec.node_selector, roles)]
        choice = choose_platform(requested, selected, self.kubernetes_version())
        self._platforms[profile.metadata.name] = (key, choice)
        return choice

    def resolve(self, profile: ComplianceProfile) -> Tailoring:
        """The profile's benchmark and tailoring; raises CatalogError when it cannot be resolved.

        Resolved again only when the profile's spec or its platform changed (each pass asks for
        every profile and scan); a profile that cannot be resolved is tried again each time.
        """
        platform = self.platform(profile).platform
        key = (profile.spec, platform)
        cached = self._resolved.get(profile.metadata.name)
        if cached is not None and cached[0] == key:
            return cached[1]
        tailoring = self._resolve(profile, platform)
        self._resolved[profile.metadata.name] = (key, tailoring)
        return tailoring

    def _resolve(self, profile: ComplianceProfile, platform: str) -> Tailoring:
        bench = profile.spec.benchmark
        version = str(bench.version)
        if version == "auto":
            benchmark_id = benchmark_for(self.kubernetes_version(), platform)
        else:
            benchmark_id = f"cis-{version}"
            if platform != "generic" and f"{platform}-{benchmark_id}" in available():
                benchmark_id = f"{platform}-{benchmark_id}"
        loaded = load_benchmark(benchmark_id, profile.spec.variables or None)  # validates id and variables
        rules = profile.spec.rules
        tailoring = Tailoring(
            benchmark=benchmark_id,
            include=tuple(rules.include),
            exclude=tuple(rules.exclude),
            manual={m.rule: m.rationale for m in rules.manual},
            variables=dict(profile.spec.variables),
        )
        pss = profile.spec.pod_security
        added = load_benchmark(f"pss-{pss.level}").rules if pss else []
        problems = tailoring.problems(loaded.rules, added, len(profile.spec.custom_rules))
        if problems:
            raise CatalogError("; ".join(problems))
        return tailoring

    def event(
        self,
        involved: dict[str, str],
        type_: str,
        reason: str,
        message: str,
        *,
        once: tuple[str | None, ...] | None = None,
    ) -> None:
        """Post an Event; with ``once``, at most one per key in this process, so that a trigger whose
        record could not be written (a tick whose status write failed) does not repeat its Event."""
        if once is not None:
            if once in self._posted:
                return
            if len(self._posted) > 10_000:
                self._posted.clear()
            self._posted.add(once)
        try:
            self.kube.post_event(involved, type_=type_, reason=reason, message=message)
        except KubeError as exc:
            log.warning("could not post %s event: %s", reason, exc)

    def patch(
        self,
        plural: str,
        name: str,
        current: Mapping[str, Any] | None,
        new: dict[str, Any],
        namespace: str | None = None,
    ) -> bool:
        """Write ``new`` into the object's status unless that changes nothing; whether it was written."""
        if same(current, new):
            return False
        try:
            written = self.kube.patch_status(plural, name, new, namespace)
        except KubeError as exc:
            log.warning("could not update status of %s %s: %s", plural, name, exc)
            return False
        if written.get("metadata"):
            self.store.upsert(plural, dict(written))  # later steps of this pass see it at once
        return True
