"""The package version, in a leaf module every stage may import (the root package is the
public API facade, above every stage)."""

__version__ = "0.1.0"
