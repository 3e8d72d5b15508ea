"""The cmd2 application: parsing, completion, rendering. Thin: all work is in services."""
