"""hashguard: find known CSAM on your own service with vetted hashes and lists; act; account."""

__version__ = "0.1.0"
