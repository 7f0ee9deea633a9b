"""Image sources: one module per kind, :mod:`resolve` picks one from the user's text."""
