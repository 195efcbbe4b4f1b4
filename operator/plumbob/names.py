"""The API's group and version, the labels Plumbob writes, and the name of a node's report.

Plain constants and one function, so that the agent can name and label the report it writes
without importing the pydantic models of :mod:`plumbob.api` (which re-exports all of this).
"""

from __future__ import annotations

GROUP = "plumbob.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# Labels and annotations Plumbob reads or writes.
LABEL_PROFILE = f"{GROUP}/profile"
LABEL_NODE = f"{GROUP}/node"
LABEL_SCAN = f"{GROUP}/scan"
ANNOTATION_RESCAN = f"{GROUP}/rescan"

MAX_NAME = 253  # metadata.name of any object


def report_name(profile: str, node: str | None) -> str:
    """Name of the ``ComplianceReport`` of ``profile`` for ``node`` (``None``: the cluster-level report).

    ``<profile>`` for the cluster report, ``<profile>.<node>`` for a node, never shortened: the
    admission policy checks that an agent writes under exactly this name, and the operator reads a
    node's results only from the report so named (a report under any other name is not counted).
    Profile names are DNS labels (no dots), so the two never collide. Raises ``ValueError`` when
    ``<profile>.<node>`` exceeds 253 characters (a node name over 216 characters): such a node
    cannot have a report of that profile, and the operator does not audit it for that profile.
    """
    if node is None:
        return profile
    name = f"{profile}.{node}"
    if len(name) > MAX_NAME:
        room = MAX_NAME - 1 - len(node)
        fix = f"a profile name of at most {room} characters" if room > 0 else "a shorter node name"
        raise ValueError(
            f"the report name '<profile>.<node>' would have {len(name)} characters, over the {MAX_NAME} "
            f"an object name may have: auditing this node needs {fix}"
        )
    return name
