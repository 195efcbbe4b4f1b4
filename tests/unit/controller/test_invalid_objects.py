"""The failed status of an object the store could not parse (``controller/invalid_objects.py``).

Cases:
- each of the six kinds is built through its own status model: the one ``plumbob.api`` declares
  for the kind of that plural (the two exception kinds share one);
- the status reads as failed: ``observedGeneration`` current, ``Stalled=True``, ``Ready=False``,
  ``Reconciling=False`` with the problem; the claims of a working object are removed (``null`` in
  the merge patch), an exception list's ``entries`` too, and no other field is written;
- a misspelt field in that status raises naming it, for every kind; so does a field of another
  kind's status (a schedule's ``nextScheduleTime`` in a scan's status);
- a pass writes that status and posts one Warning Event per object version, and a second pass
  over the same versions writes nothing.
"""

from __future__ import annotations

import dataclasses
import typing
from datetime import UTC, datetime
from typing import Any

import pytest

from plumbob.api import KINDS
from plumbob.api.common import Model
from plumbob.controller.context import Context
from plumbob.controller.invalid_objects import CLAIMS, STATUS_MODELS, InvalidObjects, failed_status
from plumbob.controller.kinds import OWN_KINDS
from plumbob.controller.store import Invalid, Store

NOW = datetime(2026, 12, 2, 6, 0, 0, tzinfo=UTC)
PLURALS = sorted(OWN_KINDS)


def own_status_model(plural: str) -> type[Model]:
    """The status model ``plumbob.api`` declares for the kind of ``plural``."""
    kind = next(k for k in KINDS if k.CRD.plural == plural)
    annotation = kind.model_fields["status"].annotation
    model: type[Model] = next(a for a in typing.get_args(annotation) if a is not type(None))
    return model


def bad(plural: str, generation: int | None = 4) -> Invalid:
    namespace = "team-a" if plural == "complianceexceptions" else None
    return Invalid(plural, namespace, "broken", "uid-1", "spec.entries[0].expires: not a date", generation)


@dataclasses.dataclass
class RecordingKube:
    """The two calls the step makes, recorded."""

    patches: list[tuple[str, str, dict[str, Any], str | None]] = dataclasses.field(default_factory=list)
    events: list[tuple[dict[str, str], str]] = dataclasses.field(default_factory=list)

    def patch_status(
        self, plural: str, name: str, status: dict[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        self.patches.append((plural, name, status, namespace))
        return {}

    def post_event(self, involved: dict[str, str], *, type_: str, reason: str, message: str) -> None:
        self.events.append((involved, reason))


def test_every_kind_the_step_marks_has_its_own_status_model() -> None:
    assert set(STATUS_MODELS) == set(OWN_KINDS)
    assert {k.CRD.plural for k in KINDS} - set(STATUS_MODELS) == {"namespacecompliancereports"}
    for plural in PLURALS:
        assert STATUS_MODELS[plural] is own_status_model(plural), plural
        assert OWN_KINDS[plural] == next(k.__name__ for k in KINDS if k.CRD.plural == plural)


@pytest.mark.parametrize("plural", PLURALS)
def test_failed_status_is_built_through_the_kinds_model(plural: str) -> None:
    status = failed_status(bad(plural), NOW)
    claims = CLAIMS.get(plural, ())
    assert set(status) == {"observedGeneration", "conditions", *claims}
    assert status["observedGeneration"] == 4
    assert all(status[claim] is None for claim in claims)
    conditions = {c["type"]: c for c in status["conditions"]}
    assert {t: c["status"] for t, c in conditions.items()} == {
        "Ready": "False",
        "Stalled": "True",
        "Reconciling": "False",
    }
    assert conditions["Stalled"]["message"] == "spec.entries[0].expires: not a date"
    assert conditions["Stalled"]["lastTransitionTime"] == "2026-12-02T06:00:00Z"
    assert all(c["observedGeneration"] == 4 for c in status["conditions"])


def test_an_exception_list_loses_its_entries_summary_and_next_expiry() -> None:
    for plural in ("complianceexceptions", "clustercomplianceexceptions"):
        status = failed_status(bad(plural), NOW)
        assert {k: status[k] for k in ("entries", "summary", "nextExpiry")} == dict.fromkeys(
            ("entries", "summary", "nextExpiry")
        )


@pytest.mark.parametrize("plural", PLURALS)
def test_misspelt_field_raises_for_every_kind(plural: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(CLAIMS, plural, ("observedGenration",))
    with pytest.raises(ValueError, match=r"has no field status\.observedGenration"):
        failed_status(bad(plural), NOW)


def test_a_field_of_another_kinds_status_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(CLAIMS, "compliancescans", ("nextScheduleTime",))
    with pytest.raises(ValueError, match=r"ComplianceScanStatus has no field status\.nextScheduleTime"):
        failed_status(bad("compliancescans"), NOW)


def test_a_pass_writes_the_failed_status_once_per_version() -> None:
    kube = RecordingKube()
    ctx = Context(kube, Store(), clock=lambda: NOW)  # type: ignore[arg-type]  # a fake Kube
    step = InvalidObjects(ctx)
    snap = dataclasses.replace(Store().snapshot(), invalid=[bad(p) for p in PLURALS])
    step.reconcile(snap)
    assert [(p, name, ns) for p, name, _status, ns in kube.patches] == [
        (p, "broken", "team-a" if p == "complianceexceptions" else None) for p in PLURALS
    ]
    assert all(status == failed_status(bad(p), NOW) for p, _name, status, _ns in kube.patches)
    reasons = {"complianceschedules": "InvalidSchedule", "compliancereports": "InvalidReport"}
    assert [(involved["kind"], reason) for involved, reason in kube.events] == [
        (OWN_KINDS[p], reasons.get(p, "InvalidSpec")) for p in PLURALS
    ]
    step.reconcile(snap)
    assert len(kube.patches) == len(PLURALS) and len(kube.events) == len(PLURALS)
