"""The built-in strategies of the executor, one module per job type (see `executor_service.
strategy` for what a strategy is)."""
