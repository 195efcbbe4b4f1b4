"""Operator mode (``python -m plumbob operator``): run kopf with Plumbob's handlers."""

from __future__ import annotations

import asyncio
import logging


def run(*, peering: str | None = None, liveness: str | None = None, verbose: bool = False) -> int:
    import kopf  # noqa: PLC0415 - keep `plumbob --help` fast

    import plumbob.controller.handlers  # noqa: F401, PLC0415 - registers the handlers

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("kopf.objects", "kopf.activities.probe", "kubernetes.client.rest", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    asyncio.run(
        kopf.operator(
            clusterwide=True,
            standalone=peering is None,
            peering_name=peering,
            liveness_endpoint=liveness,
        )
    )
    return 0
