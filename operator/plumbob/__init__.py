"""Plumbob: continuous compliance for Kubernetes clusters."""

__version__ = "0.1.0"
