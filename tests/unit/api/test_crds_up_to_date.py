"""The committed CRDs in ``crds/`` are exactly what the models generate.

Cases:
- every generated file exists in ``crds/`` with identical content, and no stale file is left;
- ``crdgen.main(check=True)`` agrees (exit 0), and reports a difference with exit 1;
- generation is deterministic (two renders are byte-identical);
- the YAML round-trips to the generated mapping (line folding loses nothing).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from plumbob.api import KINDS, crdgen

REPO = Path(__file__).resolve().parents[3]
CRDS = REPO / "crds"
HINT = "crds/ is out of date with operator/plumbob/api: run `make crds` and commit the result"


def test_committed_files_equal_generated() -> None:
    generated = crdgen.render()
    committed = {p.name: p.read_text() for p in CRDS.glob("plumbob.dev_*.yaml")}
    assert sorted(committed) == sorted(generated), HINT
    for name, text in generated.items():
        assert committed[name] == text, f"{name}: {HINT}"


def test_check_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert crdgen.main(output_dir=str(CRDS), check=True) == 0
    assert crdgen.main(output_dir=str(tmp_path), check=False) == 0
    victim = next(tmp_path.glob("*.yaml"))
    victim.write_text(victim.read_text() + "# edited by hand\n")
    assert crdgen.main(output_dir=str(tmp_path), check=True) == 1
    assert "make crds" in capsys.readouterr().err


def test_deterministic() -> None:
    assert crdgen.render() == crdgen.render()


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_yaml_round_trips(kind: type) -> None:
    text = crdgen.render()[crdgen.file_name(kind)]
    assert yaml.safe_load(text) == crdgen.crd(kind)
