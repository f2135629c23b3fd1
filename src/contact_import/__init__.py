"""contact-import: import address books from Google and Microsoft in background jobs."""

__version__ = "0.1.0"
