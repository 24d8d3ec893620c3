"""The harness's foundation: the method contract, models, data, evaluation, records and the
one job runner. Imports `popdescent` and nothing else of this repository."""
