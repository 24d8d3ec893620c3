"""What a run hands back as plain Keras objects: ensembles, soups, learning-rate schedules (budget,
cool-down, a member's replayed lineage). May import inputs/ and validation, never a strategy."""
