"""prefstack application: settings, auth, services, JSON API and CLI."""

__version__ = "0.1.0"
