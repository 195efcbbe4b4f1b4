"""Read-only access to a node's file system through a host-root prefix.

Every path the agent reads is a *host* path (``/etc/kubernetes/admin.conf``), whether it comes
from a rule, a known location or a component's flag; :class:`HostRoot` maps it under the prefix
(``/host`` in a pod, ``/`` on the node) and resolves symbolic links itself, inside the root: an
absolute link target is re-rooted, ``..`` stops at the root, and a path can never lead outside
it. Nothing here writes, and nothing runs a subprocess.

In an audit Pod only some host directories are mounted under the prefix (``mounted``: ``/etc``,
``/var/lib``…, from ``PLUMBOB_HOST_PATHS``). A path outside them, symlinks resolved, cannot be
seen, which is not the same as absent: it raises :class:`NotMountedError`, so a file a component
names there is reported as unreadable rather than missing.

Errors::

    OSError                 the usual: absent, unreadable, not a directory…
     ├── EscapeError        a path that would leave the root (too many links, odd names)
     └── NotMountedError    a path outside the host directories mounted under the prefix
"""

# Host paths are POSIX strings of the node, re-rooted under a prefix: os/posixpath on strings
# is deliberate here (a pathlib.Path would suggest a local path of the agent).

# ruff: noqa: PTH100, PTH115, PTH208

from __future__ import annotations

import errno
import fnmatch
import itertools
import os
import posixpath
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MAX_LINKS = 40
MAX_READ = 4 * 1024 * 1024  # config files, manifests and kubeconfigs are small
MAX_WALK = 10_000  # entries listed below one directory


class EscapeError(OSError):
    """A path that cannot be resolved inside the host root."""


class NotMountedError(OSError):
    """A path outside the host directories mounted under the root: it may exist, but cannot be
    seen (deliberately not a :class:`FileNotFoundError`, which means absent)."""


def within(host_path: str, directories: tuple[str, ...]) -> bool:
    """Whether a host path is one of ``directories`` or lies below one."""
    return any(host_path == d or host_path.startswith(d.rstrip("/") + "/") for d in directories)


@dataclass(frozen=True)
class HostRoot:
    prefix: Path
    # the host directories mounted under the prefix; None: all of the host is there (a node's own /)
    mounted: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefix", Path(os.path.abspath(self.prefix)))

    def _not_mounted(self, host_path: str, resolved: str) -> NotMountedError | None:
        if self.mounted is None or within(resolved, self.mounted):
            return None
        link = f"resolves to {resolved}, " if resolved != posixpath.normpath("/" + host_path) else ""
        where = f"outside the host directories mounted in the audit Pod ({', '.join(self.mounted)})"
        return NotMountedError(errno.ENOENT, link + where, host_path)

    def _real(self, host_path: str) -> str:
        return str(self.prefix) + host_path if str(self.prefix) != "/" else host_path

    def resolve(self, host_path: str, follow_last: bool = True) -> str:
        """The host path with every symlink resolved inside the root (still a host path)."""
        if "\0" in host_path:
            raise EscapeError(errno.EINVAL, "NUL byte in path", host_path)
        pending = [p for p in posixpath.normpath("/" + host_path).split("/") if p]
        pending.reverse()
        done: list[str] = []
        links = 0
        while pending:
            part = pending.pop()
            if part == ".":
                continue
            if part == "..":
                if done:
                    done.pop()
                continue
            candidate = "/" + "/".join([*done, part])
            if not pending and not follow_last:
                done.append(part)
                break
            try:
                st = os.lstat(self._real(candidate))
            except FileNotFoundError:
                done.append(part)
                done.extend(reversed(pending))
                return "/" + "/".join(done)
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > MAX_LINKS:
                    raise EscapeError(errno.ELOOP, "too many levels of symbolic links", host_path)
                target = os.readlink(self._real(candidate))
                if target.startswith("/"):
                    done = []
                parts = [p for p in target.split("/") if p]
                pending.extend(reversed(parts))
            else:
                done.append(part)
        return "/" + "/".join(done)

    def real_path(self, host_path: str) -> str:
        """Where a host path lives under the prefix, symlinks resolved inside the root; raises
        :class:`NotMountedError` when it lies outside the mounted directories."""
        resolved = self.resolve(host_path)
        error = self._not_mounted(host_path, resolved)
        if error is not None:
            raise error
        return self._real(resolved)

    def lstat(self, host_path: str) -> os.stat_result:
        return os.lstat(self.real_path(host_path))

    def read_bytes(self, host_path: str, limit: int = MAX_READ) -> bytes:
        real = self.real_path(host_path)
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        fd = os.open(real, flags)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise (
                    IsADirectoryError(errno.EISDIR, "not a regular file", host_path)
                    if stat.S_ISDIR(st.st_mode)
                    else OSError(errno.EINVAL, "not a regular file", host_path)
                )
            data = os.read(fd, limit + 1)
            chunks = [data]
            while data and sum(map(len, chunks)) <= limit:
                data = os.read(fd, limit + 1)
                chunks.append(data)
        finally:
            os.close(fd)
        out = b"".join(chunks)
        if len(out) > limit:
            raise OSError(errno.EFBIG, f"larger than {limit} bytes", host_path)
        return out

    def glob(self, pattern: str) -> list[str]:
        """Host paths matching a glob (``*``, ``?``, ``[]`` per path component), sorted; raises
        :class:`NotMountedError` when the part before the first wildcard is not mounted."""
        parts = [p for p in posixpath.normpath("/" + pattern).split("/") if p]
        literal = "/" + "/".join(itertools.takewhile(lambda p: not any(c in p for c in "*?["), parts))
        error = self._not_mounted(literal, self.resolve(literal))
        if error is not None:
            raise error
        found = ["/"]
        for part in parts:
            nxt: list[str] = []
            for base in found:
                if not any(c in part for c in "*?["):
                    nxt.append(posixpath.join(base, part))
                    continue
                try:
                    names = os.listdir(self.real_path(base))
                except OSError:
                    continue
                nxt.extend(posixpath.join(base, n) for n in sorted(fnmatch.filter(names, part)))
            found = nxt
        out = []
        for path in found:
            try:
                self.lstat(path)
            except OSError:
                continue
            out.append(path)
        return sorted(out)

    def walk(self, host_dir: str) -> Iterator[str]:
        """Host paths below a directory (not following symlinked directories), at most MAX_WALK."""
        count = 0
        stack = [self.resolve(host_dir)]
        if self.mounted is not None and not within(stack[0], self.mounted):
            return
        while stack:
            base = stack.pop()
            try:
                entries = sorted(os.scandir(self._real(base)), key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                count += 1
                if count > MAX_WALK:
                    return
                path = posixpath.join(base, entry.name)
                yield path
                if entry.is_dir(follow_symlinks=False):
                    stack.append(path)
