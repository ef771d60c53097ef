"""hashguard: find known CSAM on your own service with vetted hashes and lists, act on it, account for it."""

__version__ = "0.1.0"
