"""DSA Art. 16 notices: intake (API and public form) and resolution to the platform's content."""
