"""What the services and their clients agree on: the messages on the broker, the notification
channels, the problem details and request-body rules of the HTTP APIs."""
