"""Readers and writers of instrument exports; each returns the validated tidy measurement table."""
