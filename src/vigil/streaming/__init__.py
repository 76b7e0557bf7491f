"""Live updates: committed samples and alert events fanned out to WebSocket clients."""
