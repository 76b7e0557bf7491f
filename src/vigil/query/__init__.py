"""Query model, tier planner, and the functions applied to what the store returns."""
