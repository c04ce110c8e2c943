"""The database: its schema, its migrations, and the queries the workers share (occurrences, node
rows)."""
