"""A benign demonstration: generated images, a demo bank built from some, edited copies found."""
