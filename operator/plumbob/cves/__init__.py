"""Kubernetes CVE exposure: which known CVEs the running component versions are exposed to."""
