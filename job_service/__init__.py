"""Job service: the jobs API (create, read, change and observe jobs)."""
