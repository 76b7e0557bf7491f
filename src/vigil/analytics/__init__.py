"""Pure numerical analytics: arrays in, results out, no I/O (see DESIGN.md)."""
