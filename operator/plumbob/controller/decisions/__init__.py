"""Pure decisions the steps share: no I/O, no clock but the ``now`` passed in.

Nothing here imports :mod:`plumbob.kube`, the store or the context (an import-linter contract
in ``pyproject.toml``), so each decision is tested with plain values.
"""
