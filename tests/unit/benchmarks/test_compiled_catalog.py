"""The compiled catalog: the validated benchmark shipped as JSON so a node audit starts fast.

Cases:
- every shipped ``compiled.json`` equals what its YAML sources compile to now (edit a source,
  run ``make catalog``); compiling validates the sources, so an invalid data file fails here;
- a compiled file whose recorded sources differ from the files on disk is not used: loading falls
  back to validating the YAML (a stale file never shadows an edited source), and an invalid
  source then fails to load;
- the compiled and the validated paths build equal benchmarks, with variables substituted;
- ``plumbob audit`` and the agent's audit import no pydantic, jinja2 or Kubernetes client.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from plumbob.benchmarks import catalog
from plumbob.benchmarks.catalog import (
    COMPILED,
    CatalogError,
    available,
    compiled_text,
    load_benchmark,
    validate_sources,
)

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("benchmark_id", available())
def test_shipped_compiled_catalog_is_up_to_date(benchmark_id: str) -> None:
    directory = catalog.DATA_DIR / benchmark_id
    assert (directory / COMPILED).read_text(encoding="utf-8") == compiled_text(directory, benchmark_id), (
        f"{benchmark_id}/{COMPILED} is stale: run `make catalog`"
    )


@pytest.fixture
def copy_of_shipped(tmp_path: Path) -> Path:
    target = tmp_path / "cis-1.12"
    shutil.copytree(catalog.DATA_DIR / "cis-1.12", target)
    return target


def test_fresh_compiled_file_is_used(copy_of_shipped: Path) -> None:
    plain = catalog._from_compiled(copy_of_shipped)
    assert plain is not None
    assert plain == validate_sources(copy_of_shipped, "copy")


def test_stale_compiled_file_is_ignored(copy_of_shipped: Path) -> None:
    source = copy_of_shipped / "4-worker-nodes.yaml"
    source.write_text(source.read_text().replace("title: Worker Nodes", "title: Edited"), encoding="utf-8")
    assert catalog._from_compiled(copy_of_shipped) is None
    assert validate_sources(copy_of_shipped, "copy") is not None


def test_invalid_source_with_stale_compiled_file_fails(
    copy_of_shipped: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = copy_of_shipped / "1-control-plane.yaml"
    source.write_text(source.read_text().replace("severity: medium", "severity: urgent", 1), encoding="utf-8")
    monkeypatch.setattr(catalog, "DATA_DIR", copy_of_shipped.parent)
    catalog._plain.cache_clear()
    catalog._tailored.cache_clear()
    try:
        with pytest.raises(CatalogError, match=r"1-control-plane\.yaml"):
            load_benchmark("cis-1.12")
    finally:
        catalog._plain.cache_clear()
        catalog._tailored.cache_clear()


def test_compiled_and_validated_paths_agree(copy_of_shipped: Path) -> None:
    shipped = load_benchmark("cis-1.12", {"audit_log_maxage": "90"})
    from_yaml = load_benchmark("cis-1.12", {"audit_log_maxage": "90"}, directory=copy_of_shipped)
    assert shipped == from_yaml
    assert shipped.variables["audit_log_maxage"] == "90"
    assert "${" not in json.dumps([str(r.audit) for r in shipped.rules])


_IMPORTS = """
import sys
from plumbob.cli import main
rc = main(["audit", "--host-root", sys.argv[1], "--format", sys.argv[2]])
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"pydantic", "jinja2", "kubernetes", "kopf"})
print(" ".join(heavy) or "none")
"""


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_audit_imports_no_validation_or_template_library(tmp_path: Path, fmt: str) -> None:
    from testbed.hosttrees import build_tree  # noqa: PLC0415

    root = build_tree(tmp_path / "node", "worker").root
    out = subprocess.run(
        [sys.executable, "-c", _IMPORTS, str(root), fmt],
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(REPO / "operator"), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "none"
