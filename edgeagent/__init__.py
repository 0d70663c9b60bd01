"""edgeagent: a vendor-neutral video edge agent for roadside traffic cameras."""

__version__ = "0.1.0"
