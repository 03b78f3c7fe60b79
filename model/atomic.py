"""Atomic file writes: a reader sees the old file or the whole new one, never a half-written one.

Files are created with the permissions an ordinary ``open`` would give (``0666`` less the umask),
not the ``0600`` of a temporary file.
"""

import os
import tempfile

__all__ = ["atomic_write_bytes", "atomic_write_text", "umask_mode"]


def umask_mode(mode=0o666):
    """``mode`` less the process umask (read without changing it for good)."""
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


def atomic_write_bytes(path, data):
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, umask_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text):
    atomic_write_bytes(path, text.encode())
