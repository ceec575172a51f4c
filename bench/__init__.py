"""The webhook benchmark (see README.md). Not part of the application."""
