"""What a job is and when it runs: schedules and cron, misfire and retry policies, the decisions
taken when an occurrence ends, the state machines and the job types."""
