"""Recorded files: wide bar CSV, long tick CSV, JSON Lines of ticks (any of them gzip), their
timestamps, and the compiled reader of long tick CSV files."""
