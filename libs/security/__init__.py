"""Identity and protection: tokens and their verification, scopes, passwords, opaque credentials,
throttles, reachable addresses and webhook signatures."""
