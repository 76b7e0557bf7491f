"""Credentials (JWT, API keys), roles and scopes, rate limits: no HTTP, no SQL."""
