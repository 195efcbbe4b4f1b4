"""Property tests of the agent's parsers: garbage in gives a ParseError with a reason, never a crash.

Cases (hypothesis):
- cmdline: any bytes → a tuple of strings; NUL-joined words round-trip;
- config documents (kubelet/kube-proxy/etcd): arbitrary bytes and YAML-ish text → a mapping or a
  ParseError with a non-empty reason; valid mappings round-trip through YAML and JSON;
- manifests and kubeconfigs: arbitrary documents → argv / summary, or ParseError;
- end to end: whatever bytes sit in the kubelet config, the audit returns a finding (error with
  a reason when unreadable), never an exception.
"""

from __future__ import annotations

import atexit
import itertools
import json
import shutil
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plumbob.agent.auditing import run_audit
from plumbob.agent.parsing import ParseError, parse_cmdline, parse_document, parse_kubeconfig, parse_manifest
from plumbob.engine.findings import Status
from testbed.hosttrees import worker_spec

yamlish = st.text(alphabet=st.sampled_from(list("ab:-[]{}&*!|>'\"#%@ \n\t0,.")), max_size=200)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20))
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(st.binary(max_size=512))
def test_cmdline_never_fails(raw: bytes) -> None:
    argv = parse_cmdline(raw)
    assert all(isinstance(w, str) for w in argv)


@given(
    st.lists(
        st.text(alphabet=st.characters(blacklist_characters="\0", blacklist_categories=["Cs"]), min_size=1),
        min_size=1,
    )
)
def test_cmdline_round_trip(words: list[str]) -> None:
    assert parse_cmdline(b"\0".join(w.encode() for w in words) + b"\0") == tuple(words)


def _parse_or_reason(parser: object, raw: bytes) -> object:
    try:
        return parser(raw)  # type: ignore[operator]  # any of the parsers
    except ParseError as exc:
        assert str(exc), "a ParseError must say why"
        return None


@given(st.one_of(st.binary(max_size=300), yamlish.map(str.encode)))
def test_garbage_documents(raw: bytes) -> None:
    for parser in (parse_document, parse_manifest, parse_kubeconfig):
        _parse_or_reason(parser, raw)


@given(documents)
def test_any_document_shape(doc: object) -> None:
    for raw in (yaml.safe_dump(doc).encode(), json.dumps(doc).encode()):
        for parser in (parse_document, parse_manifest, parse_kubeconfig):
            _parse_or_reason(parser, raw)
        if isinstance(doc, dict):
            assert parse_document(raw) == doc or not all(isinstance(k, str) for k in doc)


@given(documents)
def test_manifest_shapes(containers: object) -> None:
    raw = yaml.safe_dump({"spec": {"containers": containers}}).encode()
    result = _parse_or_reason(parse_manifest, raw)
    assert result is None or isinstance(result, tuple)


@given(documents, documents)
def test_kubeconfig_shapes(clusters: object, users: object) -> None:
    raw = yaml.safe_dump({"clusters": clusters, "users": users}).encode()
    result = _parse_or_reason(parse_kubeconfig, raw)
    assert result is None or isinstance(result, tuple)


def test_alias_bomb() -> None:
    names = "abcdefghi"
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{new}: &{new} [{', '.join([f'*{old}'] * 10)}]\n" for old, new in itertools.pairwise(names)
    )
    assert _parse_or_reason(parse_document, bomb.encode()) is None


_TREE = Path(tempfile.mkdtemp(prefix="plumbob-prop-"))
worker_spec().write(_TREE)
atexit.register(shutil.rmtree, _TREE, True)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.one_of(
        st.binary(max_size=300), yamlish.map(str.encode), documents.map(lambda d: yaml.safe_dump(d).encode())
    )
)
def test_audit_survives_any_kubelet_config(raw: bytes) -> None:
    (_TREE / "var/lib/kubelet/config.yaml").write_bytes(raw)
    [f] = run_audit(_TREE, rule_patterns=["4.2.1"]).findings
    assert f.status in (Status.PASS, Status.FAIL, Status.ERROR)
    if f.status is Status.ERROR:
        assert f.reason and "/var/lib/kubelet/config.yaml" in f.reason
