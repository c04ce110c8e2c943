"""Scheduler service: finds due jobs, claims them under row locks and publishes them."""
