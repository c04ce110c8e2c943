"""Executor service: consumes dispatched jobs and runs them through the strategy registry."""
