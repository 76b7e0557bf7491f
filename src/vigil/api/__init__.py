"""The ASGI app: one router per area; errors mapped to HTTP in ``errors``."""
