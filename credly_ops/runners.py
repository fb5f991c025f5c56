"""Who is doing a unit of long work (a job, a sync): ``host:pid`` of a process, and whether that
process is gone. Jobs and syncs record their runner beside their heartbeat, so a process on this
machine that died (SIGKILL included) is known dead at once, without waiting for the heartbeat to
go stale; a runner on another machine is judged by its heartbeat alone."""

from __future__ import annotations

import os
import socket


def this_runner() -> str:
    """This process, as jobs and syncs record it: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def runner_is_gone(runner: str | None) -> bool:
    """True when ``runner`` (``host:pid``) was a process on this machine that no longer runs.

    A runner on another machine, or one that cannot be probed, is not known to be gone: its
    heartbeat decides."""
    if not runner:
        return False
    host, _, pid_text = runner.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid() or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False
