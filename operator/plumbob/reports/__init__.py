"""Rendering of audit results (text, JSON, JUnit XML) and exports. No Kubernetes client here."""
