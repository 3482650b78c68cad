"""Errors that carry a message meant for the user, not a traceback.

Each kind has its own exit status (the BSD ``sysexits.h`` numbers, which batch
systems and shell scripts already know), so a job log or ``sacct`` tells at a
glance that a stage stopped on something a retry cannot fix.  Training also
records such a stop beside its checkpoints (``speciesgan.runtime.fatal``), which is
how the workflow learns not to spend its retries on it.
"""


class SpeciesganError(Exception):
    """A problem the user can fix (bad config, bad file, failed download).

    The command-line tool prints the message and exits with ``exit_code``
    instead of showing a traceback; the message must name the file, key or URL
    involved.  Retrying the same command gives the same error.
    """

    exit_code = 1


class ConfigError(SpeciesganError):
    """A setting that can never work (EX_CONFIG): an unknown key, a value out of range."""

    exit_code = 78


class UnavailableError(SpeciesganError):
    """Hardware the stage was asked to use is not usable here (EX_UNAVAILABLE): a GPU
    requested but no working CUDA device, a driver that does not match torch."""

    exit_code = 69


class DataError(SpeciesganError):
    """An input file that is damaged or not what it claims to be (EX_DATAERR): a
    truncated checkpoint, one whose content hash does not match."""

    exit_code = 65
