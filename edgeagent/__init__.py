"""edgeagent: a vendor-neutral video edge agent for roadside traffic cameras."""

# The one place the version is written: pyproject.toml reads it from here (setuptools dynamic version).
__version__ = "0.1.0"
