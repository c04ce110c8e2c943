"""Auth service: logins, access and refresh tokens, signing keys and JWKS."""
