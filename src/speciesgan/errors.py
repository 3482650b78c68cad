"""Errors that carry a message meant for the user, not a traceback."""


class SpeciesganError(Exception):
    """A problem the user can fix (bad config, bad file, failed download).

    The command-line tool prints the message and exits with status 1 instead of
    showing a traceback; the message must name the file, key or URL involved.
    """
