"""How a service process runs: settings, logging, the database and the broker clients, the HTTP
application shell, background loops and their errors."""
