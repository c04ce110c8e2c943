"""The web console: server-rendered pages over the platform's public APIs (ADR 0015)."""
