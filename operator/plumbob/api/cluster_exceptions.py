"""``ClusterComplianceException`` (cluster-scoped): accepted deviations anywhere in the cluster.

For node findings (select nodes by name or by label, never both), cluster-level findings and
findings in any namespace. Shares its entry fields and status with the namespaced
``ComplianceException`` (:mod:`plumbob.api.exceptions`).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field, model_validator

from plumbob.api.common import CrdInfo, LabelSelector, Resource, Spec, cel, validations
from plumbob.api.exceptions import MAX_ENTRIES, EntryFields, ExceptionStatus, NameGlob, exception_columns


class ClusterExceptionEntry(EntryFields):
    """One accepted deviation. Scope fields narrow it down; an absent scope field matches anything."""

    nodes: Annotated[list[NameGlob], Field(min_length=1, max_length=100)] | None = Field(
        default=None, description="node names or globs (or use nodeSelector)"
    )
    node_selector: LabelSelector | None = Field(
        default=None, description="labels of the nodes (or use nodes)"
    )
    namespaces: Annotated[list[NameGlob], Field(min_length=1, max_length=64)] | None = Field(
        default=None, description="only findings about objects in these namespaces (names or globs)"
    )

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!(has(self.nodes) && has(self.nodeSelector))",
                "nodes and nodeSelector are mutually exclusive: list node names in nodes, or select "
                "nodes by label in nodeSelector, not both",
                field_path=".nodeSelector",
                reason="FieldValueForbidden",
            )
        )
    )

    @model_validator(mode="after")
    def _nodes_xor_selector(self) -> ClusterExceptionEntry:
        if self.nodes is not None and self.node_selector is not None:
            raise ValueError("nodes and nodeSelector are mutually exclusive: keep only one of them")
        return self


class ClusterComplianceExceptionSpec(Spec):
    """Accepted deviations for node findings, cluster-level findings and findings in any namespace:
    each entry names the rules, an optional scope, a reason, an owner and an expiry.
    """

    entries: Annotated[list[ClusterExceptionEntry], Field(min_length=1, max_length=MAX_ENTRIES)]


class ClusterComplianceException(Resource):
    """Accepted deviations for node, cluster-level and any-namespace findings."""

    CRD: ClassVar[CrdInfo] = CrdInfo(
        plural="clustercomplianceexceptions",
        singular="clustercomplianceexception",
        short_names=["ccex"],
        namespaced=False,
        printer_columns=exception_columns(),
    )

    kind: Literal["ClusterComplianceException"] = "ClusterComplianceException"
    spec: ClusterComplianceExceptionSpec
    status: ExceptionStatus | None = None
