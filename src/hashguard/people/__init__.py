"""Signing people in: password hashing, local sign-in with its rate limit, OpenID Connect."""
