"""Statements of reasons (DSA Art. 17) and their filing in the Transparency Database
(Art. 24(5))."""
