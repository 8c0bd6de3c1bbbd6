"""Dataset builders (judged items -> TRL rows) and streaming writers."""
