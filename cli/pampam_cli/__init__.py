"""pampam: the command-line client of the Pampam release portal (see README.md)."""

__version__ = "0.1.0"
