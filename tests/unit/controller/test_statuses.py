"""Statuses built through their kind's model (``context.built_status``).

Cases:
- the wire dict holds exactly the fields given, with the model's wire form of each value;
- a ``None`` field stays in the dict (a merge patch removes it from the stored status), also for a
  field whose type has no ``None`` (an exception list's ``entries``); a misspelt one raises;
- a misspelt field, at the top or nested (in a condition), raises ``ValueError`` naming it;
- a value the model refuses raises pydantic's ``ValidationError``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from plumbob.api.exceptions import ExceptionStatus
from plumbob.api.profiles import ComplianceProfileStatus
from plumbob.api.schedules import ComplianceScheduleStatus
from plumbob.controller.context import built_status, conditions, iso

NOW = datetime(2026, 12, 2, 6, 0, 0, tzinfo=UTC)


def test_exactly_the_fields_given_in_wire_form() -> None:
    fields = {
        "observedGeneration": 3,
        "lastScheduleTime": iso(NOW),
        "profiles": ["cis"],
        "conditions": conditions([], 3, NOW, {"Ready": (True, "Scheduled", "next scan at …")}),
    }
    assert built_status(ComplianceScheduleStatus, fields) == fields


def test_none_is_kept_to_remove_a_field() -> None:
    assert built_status(ComplianceScheduleStatus, {"nextScheduleTime": None}) == {"nextScheduleTime": None}


def test_none_removes_a_field_of_any_type() -> None:
    fields = {"observedGeneration": 2, "entries": None, "summary": None, "nextExpiry": None}
    assert built_status(ExceptionStatus, fields) == fields


def test_misspelt_field_to_remove_raises() -> None:
    with pytest.raises(ValueError, match=r"ExceptionStatus has no field status\.entires"):
        built_status(ExceptionStatus, {"entires": None})


def test_misspelt_top_level_field_raises() -> None:
    with pytest.raises(ValueError, match=r"status\.lastSchedulTime"):
        built_status(ComplianceScheduleStatus, {"lastSchedulTime": iso(NOW)})


def test_misspelt_nested_field_raises() -> None:
    condition = {**conditions([], 1, NOW, {"Ready": (True, "Scanned", "ok")})[0], "mesage": "typo"}
    with pytest.raises(ValueError, match=r"status\.conditions\[0\]\.mesage"):
        built_status(ComplianceProfileStatus, {"conditions": [condition]})


def test_value_the_model_refuses_raises() -> None:
    with pytest.raises(ValidationError):
        built_status(ComplianceProfileStatus, {"score": 101})
