"""The reconciler's steps: one module (or small package) per status the operator writes.

A step reads a :class:`~plumbob.controller.store.Snapshot`, decides through
:mod:`plumbob.controller.decisions`, and writes through
:class:`~plumbob.controller.context.Context`. Steps do not import each other (an import-linter
contract in ``pyproject.toml``); what two steps share is a decision or plumbing.
"""
