"""User service: users, roles and service accounts."""
