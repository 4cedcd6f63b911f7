"""Files written so that a reader, or a run killed at any instant, sees the old file or the
new one, never half of one: write a temp file in the same folder, fsync it, rename it over the
target (atomic on POSIX), fsync the folder (so the rename survives a power loss)."""
import contextlib
import os
import tempfile


def fsync_dir(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path, mode="wb", prefix=None, newline=None):
    """`with atomic_write(path) as fh: ...` writes fh to `path` atomically. prefix: the temp
    file's name prefix (default ".<name>."; the checkpoint writer names its own to find the
    temps of killed writers); newline: as for open() in text mode."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=prefix or f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, mode, newline=newline) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(folder)
