"""What several test modules share that is not a fixture: the tiny model, the methods' smoke
context and checks, and the scripts tests run in a subprocess (backup_run, crash_after_backup)."""
