"""Operator settings from the environment the chart's Deployment sets.

Cases:
- ``PLUMBOB_AGENT_RESOURCES`` (the chart's ``agent.resources`` as JSON) becomes the audit
  container's resources; unset, the default applies;
- ``PLUMBOB_IMAGE_PULL_SECRETS`` (the chart's ``imagePullSecrets`` as JSON) becomes the secret names;
- a value that is not JSON stops the operator with the variable's name.
"""

from __future__ import annotations

import pytest

from plumbob.controller.context import Settings
from plumbob.controller.decisions.jobs import DEFAULT_AGENT_RESOURCES


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PLUMBOB_AGENT_RESOURCES", raising=False)
    monkeypatch.delenv("PLUMBOB_IMAGE_PULL_SECRETS", raising=False)
    settings = Settings()
    assert settings.agent_resources == DEFAULT_AGENT_RESOURCES
    assert settings.image_pull_secrets == []


def test_chart_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLUMBOB_AGENT_RESOURCES", '{"limits":{"memory":"1Gi"}}')
    monkeypatch.setenv("PLUMBOB_IMAGE_PULL_SECRETS", '[{"name":"a"},{"name":"b"}]')
    settings = Settings()
    assert settings.agent_resources == {"limits": {"memory": "1Gi"}}
    assert settings.image_pull_secrets == ["a", "b"]


def test_bad_json_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLUMBOB_AGENT_RESOURCES", "{limits")
    with pytest.raises(ValueError, match="PLUMBOB_AGENT_RESOURCES is not valid JSON"):
        Settings()
