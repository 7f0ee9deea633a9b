"""Secret matching: the engine that runs signature rules over bytes
(:mod:`scanner.secrets.engine`), and the heuristics that tell a real secret from a
placeholder or a documented example (:mod:`scanner.secrets.noise`).

Nothing is imported here: importing a light module of the package (the command-line
credential patterns, :mod:`scanner.secrets.cmdline`) does not load the engine and
detect-secrets.
"""
