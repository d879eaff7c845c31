"""Feeds: everything that turns outside data (files, venues, buses) into prices for hedger.

Parsing happens here and only here; a bad row or message becomes a counted reject, never an
exception that escapes the feed. A file that cannot be read at all is a
:class:`hedger.errors.DataFileError`.
"""
