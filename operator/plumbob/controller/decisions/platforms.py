"""Which platform a profile's benchmark is for: the profile's explicit choice, or (``auto``) the
platform the cluster shows (:mod:`plumbob.benchmarks.detection`: the API server's version, each
Node's labels, provider id and kubelet version); and whether that platform has a benchmark of its
own or is audited with the generic one, which the profile's status says.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from plumbob.benchmarks.detection import NodeSignals, detect_platform
from plumbob.benchmarks.versions import has_platform_benchmark
from plumbob.controller.decisions.digests import NodeDigest


@dataclass(frozen=True)
class PlatformChoice:
    platform: str  # the platform the cluster runs on (never "auto")
    reason: str  # why: explicit in the profile, or what detection saw
    has_benchmark: bool  # False: no benchmark of its own, the generic one is used


def choose_platform(requested: str, nodes: Iterable[NodeDigest], server_version: str) -> PlatformChoice:
    if requested != "auto":
        platform, reason = requested, "set in the profile"
    else:
        signals = [NodeSignals(n.name, n.labels, n.provider_id, n.kubelet_version) for n in nodes]
        detected = detect_platform(signals, server_version)
        platform, reason = detected.platform, f"detected: {detected.reason}"
    return PlatformChoice(platform, reason, has_platform_benchmark(platform))


def condition(choice: PlatformChoice, benchmark_id: str) -> tuple[bool, str, str]:
    """The profile's ``PlatformSupported`` condition: (status, reason, message)."""
    if choice.has_benchmark:
        return (
            True,
            "PlatformBenchmark",
            f"platform {choice.platform} ({choice.reason}): benchmark {benchmark_id}",
        )
    return (
        False,
        "NoPlatformBenchmark",
        f"platform {choice.platform} ({choice.reason}) has no benchmark of its own: audited with the "
        f"generic {benchmark_id}, whose paths and defaults may not match it",
    )
