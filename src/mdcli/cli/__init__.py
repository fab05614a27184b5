"""Command-line adapters: one thin module per command."""
