"""Data: the record format and its validation, the torch dataset, the built-in generator."""
