"""Read-only views of the cluster's compliance for people: reading through the API, the web dashboard."""
