"""Output formats: one module per format, all behind :class:`Formatter`."""
