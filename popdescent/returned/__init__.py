"""What a run hands back as plain Keras objects: ensembles and soups of members, learning-rate
schedules (budget, cool-down, a member's replayed lineage). Imports inputs/ and validation only."""
