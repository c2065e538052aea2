"""The private temporary files of one launch: brokered private keys handed to a
program as 0600 files (a helper's ``Launch.files``, ``{{credential.NAME.private_key_file}}``
in ``-exec`` arguments), in a 0700 directory removed on every way out.

Only a ``kill -9`` leaves a directory behind: its name carries the creating process's
id, and the next launch of the same user removes those whose process is gone
(:func:`remove_stale_dirs`).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Mapping

__all__ = ["DIR_PREFIX", "STALE_DIR_NAME", "LaunchFiles", "remove_stale_dirs"]

#: A launch's temp dir: ``bconnect-<pid>-`` and mkdtemp's 8 random characters.
DIR_PREFIX = "bconnect-"
STALE_DIR_NAME = re.compile(r"bconnect-([1-9][0-9]{0,9})-[a-z0-9_]{8}")


class LaunchFiles:
    """The private temporary directory of one launch.

    Created on the first :meth:`write` with :func:`tempfile.mkdtemp` (mode 0700) as
    ``bconnect-<pid>-<random>``; every file is created exclusively with mode 0600.
    :meth:`cleanup` removes it all and may be called any number of times.
    """

    def __init__(self, prefix: str = DIR_PREFIX) -> None:
        self.prefix = f"{prefix}{os.getpid()}-"
        self.path: str | None = None

    def write(self, files: Mapping[str, str | bytes]) -> dict[str, str]:
        """Write ``files``; returns ``{name: path}``."""
        paths: dict[str, str] = {}
        if not files:
            return paths
        if self.path is None:
            self.path = tempfile.mkdtemp(prefix=self.prefix)
            os.chmod(self.path, 0o700)
        for name, content in files.items():
            path = os.path.join(self.path, name)
            data = content.encode() if isinstance(content, str) else bytes(content)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                os.fchmod(fd, 0o600)
                with os.fdopen(fd, "wb", closefd=False) as handle:
                    handle.write(data)
            finally:
                os.close(fd)
            paths[name] = path
        return paths

    def cleanup(self) -> None:
        """Remove the directory and everything in it."""
        path, self.path = self.path, None
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)

    def __enter__(self) -> LaunchFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def _process_alive(pid: int) -> bool:
    """Whether process *pid* exists; one we may not signal (another user's) exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def remove_stale_dirs(parent: str | None = None) -> list[str]:
    """Remove the launch directories a killed bconnect left in *parent* (the temp dir).

    Only directories named exactly as :class:`LaunchFiles` names them, owned by this
    user, not symlinks (never followed), whose creating process is gone; returns the
    paths removed. A ``kill -9`` gives a helper no chance to clean up, and its directory
    may hold a brokered private key.
    """
    parent = parent or tempfile.gettempdir()
    removed: list[str] = []
    with os.scandir(parent) as entries:
        for entry in entries:
            match = STALE_DIR_NAME.fullmatch(entry.name)
            if match is None or not entry.is_dir(follow_symlinks=False):
                continue
            if entry.stat(follow_symlinks=False).st_uid != os.getuid():
                continue
            pid = int(match.group(1))
            if pid == os.getpid() or _process_alive(pid):
                continue
            shutil.rmtree(entry.path, ignore_errors=True)  # fd-based: no symlink is followed
            removed.append(entry.path)
    return removed
