"""Which files each process of a workflow run opens: a ``sitecustomize`` audit hook.

``install(folder)`` writes a ``sitecustomize.py`` into ``folder``; with ``folder``
first on ``PYTHONPATH`` and ``SPECIESGAN_OPEN_AUDIT`` naming a log file, every
Python process started under that environment (Snakemake, each job's
``speciesgan`` command and their children) appends one JSON line per file it opens
(Python's ``open`` audit event, and the pyarrow readers, which open files in C++),
per folder it lists, and per file it renames into place.  ``read_log`` groups the
lines by process.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

ENV = "SPECIESGAN_OPEN_AUDIT"

SITECUSTOMIZE = """
import json as _json
import os as _os
import sys as _sys

_LOG = _os.environ.get("SPECIESGAN_OPEN_AUDIT")
if _LOG:
    _fd = _os.open(_LOG, _os.O_WRONLY | _os.O_APPEND | _os.O_CREAT, 0o644)
    _busy = [False]
    _introduced = set()

    def _line(kind, path):
        if _busy[0] or path is None or isinstance(path, int):
            return
        _busy[0] = True
        try:
            pid = _os.getpid()
            record = {"pid": pid, kind: _os.path.abspath(_os.fsdecode(path))}
            if pid not in _introduced:
                _introduced.add(pid)
                record.update(ppid=_os.getppid(), argv=list(_sys.argv))
            _os.write(_fd, (_json.dumps(record) + "\\n").encode())
        except Exception:
            pass
        finally:
            _busy[0] = False

    def _hook(event, args):
        if event == "open":
            path, mode, flags = args
            if mode is not None:
                writing = any(c in mode for c in "wax")
            else:
                writing = (flags & 3) != _os.O_RDONLY
            _line("write" if writing else "read", path)
        elif event in ("os.listdir", "os.scandir"):
            _line("list", args[0] if args else ".")
        elif event in ("os.rename", "os.replace", "shutil.move", "shutil.copyfile"):
            _line("write", args[1])

    _sys.addaudithook(_hook)

    try:
        import pyarrow.parquet as _pq

        def _reader(function):
            def wrapped(source, *args, **kwargs):
                if isinstance(source, (str, _os.PathLike)):
                    _line("read", source)
                return function(source, *args, **kwargs)

            return wrapped

        for _name in ("read_table", "read_schema", "read_metadata", "ParquetFile"):
            setattr(_pq, _name, _reader(getattr(_pq, _name)))
    except ImportError:
        pass
"""


def install(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return folder


@dataclass
class Process:
    pid: int
    ppid: int = 0
    argv: list[str] = field(default_factory=list)
    read: set[str] = field(default_factory=set)
    written: set[str] = field(default_factory=set)
    listed: set[str] = field(default_factory=set)


def read_log(path: Path) -> dict[int, Process]:
    processes: dict[int, Process] = {}
    for text in path.read_text().splitlines():
        record = json.loads(text)
        process = processes.setdefault(record["pid"], Process(record["pid"]))
        if "argv" in record:
            process.argv, process.ppid = record["argv"], record["ppid"]
        for kind, into in (("read", process.read), ("write", process.written)):
            if kind in record:
                into.add(record[kind])
        if "list" in record:
            process.listed.add(record["list"])
    return processes


def command_of(pid: int, processes: dict[int, Process], commands: set[str]) -> int | None:
    """The nearest process, ``pid`` or an ancestor, that runs one of ``commands``."""
    seen = set()
    while pid in processes and pid not in seen:
        seen.add(pid)
        argv = processes[pid].argv
        if len(argv) > 1 and Path(argv[0]).name == "speciesgan" and argv[1] in commands:
            return pid
        pid = processes[pid].ppid
    return None
