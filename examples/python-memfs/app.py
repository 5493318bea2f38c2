"""python-memfs: a writable in-memory file system, as an nfsgw plugin written in Python.

Build it with `./build.sh memfs.wasm` (componentize-py), serve it with

    [[mount]]
    name = "mem"
    plugin = "/path/to/memfs.wasm"
    [mount.config]
    seed = "hello.txt=Hello from Python!\n"   # optional: files to start with
    [mount.limits]
    instances = 1                             # one instance: the files live in its memory

The host calls the methods of `Backend` below with paths relative to the mount's root ("" is
the root, "a/b" is entry "b" of directory "a"). It keeps file handles and caches, and it checks
the caller's permissions before it calls, so this file only has to keep the tree and answer
with POSIX semantics. A failure is `raise Err(Error.SOMETHING)`; each case is one NFS status.

Config keys (values are strings):
    seed         files to create at start: "path=content" entries separated by ";".
                 Parent directories are made as needed; a path ending in "/" is a directory.
    capacity_mb  how many MiB of file data the mount holds (default 64); past it, writes fail
                 with "no space". Keep it well below the mount's `limits.memory_mb` (256).
"""

import bisect
import functools
import time

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import log
from wit_world.imports.types import (
    Attrs,
    Capabilities,
    Data_Bytes,
    Device,
    DirEntry,
    DirPage,
    Error,
    FileKind,
    FsStats,
    Made,
    MountInfo,
    ReadResult,
    Renamed,
    SetTime_At,
    Timestamp,
)

CAPABILITIES = (
    Capabilities.WRITE
    | Capabilities.CREATE
    | Capabilities.MKDIR
    | Capabilities.REMOVE
    | Capabilities.RENAME
    | Capabilities.SYMLINK
    | Capabilities.SET_MODE
    | Capabilities.SET_OWNER
    | Capabilities.SET_TIMES
    | Capabilities.TRUNCATE
)
DEFAULT_CAPACITY_MB = 64
MAX_FILES = 100_000  # files, directories and symlinks, the root included
MAX_NAME = 255  # bytes of one name
DIR_SIZE = 4096  # the size a directory reports
NO_DEVICE = Device(major=0, minor=0)


def now_ns():
    return time.time_ns()  # the WASI wall clock


def stamp(ns):
    """Nanoseconds since the epoch as a WIT timestamp (nanoseconds always 0..1e9)."""
    return Timestamp(seconds=ns // 1_000_000_000, nanoseconds=ns % 1_000_000_000)


class Node:
    """A file, directory or symlink. Every node has exactly one name (no hard links)."""

    __slots__ = ("kind", "mode", "uid", "gid", "atime", "mtime", "ctime", "change",
                 "data", "target", "children", "names", "subdirs")

    def __init__(self, kind, mode):
        self.kind = kind
        self.mode = mode & 0o7777
        self.uid = self.gid = 0  # the host gives new entries to their caller with setattr
        self.atime = self.mtime = self.ctime = now_ns()
        self.change = FS.next_change()
        self.data = bytearray() if kind == FileKind.REGULAR else None
        self.target = ""  # a symlink's text
        self.children = {} if kind == FileKind.DIRECTORY else None
        self.names = None  # a directory's names, sorted, while it does not change
        self.subdirs = 0  # a directory's subdirectories, for its link count

    def size(self):
        if self.kind == FileKind.REGULAR:
            return len(self.data)
        if self.kind == FileKind.SYMLINK:
            return len(self.target.encode())
        return DIR_SIZE

    def attrs(self):
        is_dir = self.kind == FileKind.DIRECTORY
        return Attrs(
            kind=self.kind,
            size=self.size(),
            mode=self.mode,
            uid=self.uid,
            gid=self.gid,
            nlink=2 + self.subdirs if is_dir else 1,
            atime=stamp(self.atime),
            mtime=stamp(self.mtime),
            ctime=stamp(self.ctime),
            rdev=NO_DEVICE,
            change=str(self.change),
        )

    def changed(self, content=True):
        """Marks a change: ctime (and mtime for content) now, and a new change token."""
        t = now_ns()
        self.ctime = t
        if content:
            self.mtime = t
        self.change = FS.next_change()
        if self.kind == FileKind.DIRECTORY:
            self.names = None


class FileSystem:
    def __init__(self, capacity):
        self.capacity = capacity  # bytes of file data and symlink text
        self.used = 0
        self.files = 0
        self.changes = 0
        self.root = None

    def next_change(self):
        self.changes += 1  # one sequence for the whole tree: a token is never reused
        return self.changes

    def reserve(self, nbytes=0, nfiles=0):
        if self.files + nfiles > MAX_FILES:
            raise Err(Error.NO_SPACE)
        if self.used + nbytes > self.capacity:
            raise Err(Error.NO_SPACE)
        self.used += nbytes
        self.files += nfiles

    def release(self, node):
        self.files -= 1
        if node.kind != FileKind.DIRECTORY:
            self.used -= node.size()

    def lookup(self, path):
        node = self.root
        if path:
            for name in path.split("/"):
                if node.kind != FileKind.DIRECTORY:
                    raise Err(Error.NOT_DIR)
                node = node.children.get(name)
                if node is None:
                    raise Err(Error.NOT_FOUND)
        return node

    def parent(self, path):
        """The directory that holds `path`, and the last name of `path`."""
        dir_path, _, name = path.rpartition("/")
        parent = self.lookup(dir_path)
        if parent.kind != FileKind.DIRECTORY:
            raise Err(Error.NOT_DIR)
        if len(name.encode()) > MAX_NAME:
            raise Err(Error.NAME_TOO_LONG)
        return parent, name

    def add(self, path, kind, mode, nbytes=0):
        """Makes a new entry; `exists` if the name is taken."""
        if path == "":
            raise Err(Error.EXISTS)
        parent, name = self.parent(path)
        if name in parent.children:
            raise Err(Error.EXISTS)
        self.reserve(nbytes, 1)
        node = Node(kind, mode)
        self.link(parent, name, node)
        return node

    def link(self, parent, name, node):
        parent.children[name] = node
        if node.kind == FileKind.DIRECTORY:
            parent.subdirs += 1
        parent.changed()

    def unlink(self, parent, name):
        node = parent.children.pop(name)
        if node.kind == FileKind.DIRECTORY:
            parent.subdirs -= 1
        parent.changed()
        return node

    def resize(self, node, size):
        old = len(node.data)
        if size > old:
            self.reserve(size - old)
            node.data.extend(bytes(size - old))  # a hole reads as zeros
        else:
            del node.data[size:]
            self.used -= old - size


FS = FileSystem(DEFAULT_CAPACITY_MB << 20)


def file_node(node):
    """Only regular files have content."""
    if node.kind == FileKind.DIRECTORY:
        raise Err(Error.IS_DIR)
    if node.kind != FileKind.REGULAR:
        raise Err(Error.INVALID)
    return node


def made(path, node):
    """What a call that made `node` at `path` answers: its attributes and its directory's,
    which the host then need not ask for."""
    return Made(attrs=node.attrs(), dir=FS.parent(path)[0].attrs())


def time_of(set_time, now):
    if isinstance(set_time, SetTime_At):
        return set_time.value.seconds * 1_000_000_000 + set_time.value.nanoseconds
    return now


def guarded(method):
    """An uncaught Python exception would trap and the host would replace the instance, which
    throws every file away; answer with an error instead."""

    @functools.wraps(method)
    def call(self, *args):
        try:
            return method(self, *args)
        except Err:
            raise
        except MemoryError:
            raise Err(Error.NO_SPACE)
        except Exception as e:  # a bug: say so, and fail only this call
            log.log(log.Level.ERROR, f"{method.__name__}{args!r:.200}: {e!r}")
            raise Err(Error.IO)

    return call


def parse_config(config):
    global FS
    seed, capacity_mb = "", DEFAULT_CAPACITY_MB
    for key, value in config:
        if key == "seed":
            seed = value
        elif key == "capacity_mb":
            try:
                capacity_mb = int(value)
            except ValueError:
                capacity_mb = -1
            if capacity_mb <= 0:
                raise Err(f'capacity_mb: expected a positive number of MiB, got "{value}"')
        else:
            raise Err(f'unknown config key "{key}" (python-memfs knows: seed, capacity_mb)')
    FS = FileSystem(capacity_mb << 20)
    FS.reserve(0, 1)
    FS.root = Node(FileKind.DIRECTORY, 0o1777)  # like /tmp: anyone may add, owners remove
    for entry in seed.split(";"):
        path, sep, content = entry.partition("=")
        path = path.strip()
        if not path:
            continue
        is_dir = path.endswith("/")
        names = path.strip("/").split("/")
        if (not sep and not is_dir) or any(n in ("", ".", "..") for n in names):
            raise Err(f'seed: "{entry.strip()}" is not path=content (or dir/)')
        for i in range(len(names)):
            sub = "/".join(names[: i + 1])
            try:
                if i < len(names) - 1 or is_dir:
                    if not is_directory(sub):
                        FS.add(sub, FileKind.DIRECTORY, 0o755)
                else:
                    data = content.encode()
                    FS.add(sub, FileKind.REGULAR, 0o644, len(data)).data[:] = data
            except Err as e:
                error = e.value.name.lower().replace("_", "-")
                raise Err(f'seed: cannot make "{sub}": {error}')


def is_directory(path):
    try:
        return FS.lookup(path).kind == FileKind.DIRECTORY
    except Err:
        return False


class Backend(exports.Backend):
    def init(self, config):
        parse_config(config)
        log.log(log.Level.INFO,
                f"python-memfs ready: capacity {FS.capacity >> 20} MiB, entries seeded: {FS.files - 1}")
        return MountInfo(
            capabilities=CAPABILITIES, immutable=False, attr_ttl_ms=None,
            # The tree lives in this instance's memory: one instance serves every call.
            max_instances=1,
            # Writes change the tree in place: nothing for the host to stage.
            staged_writes=False,
            pinned_config=[],
        )

    @guarded
    def stat(self, path):
        return FS.lookup(path).attrs()

    @guarded
    def list_dir(self, path, cursor, limit):
        node = FS.lookup(path)
        if node.kind != FileKind.DIRECTORY:
            raise Err(Error.NOT_DIR)
        if node.names is None:
            node.names = sorted(node.children)
        # The cursor is the last name of the previous page, so a page resumes correctly even
        # when entries come and go between pages.
        start = 0 if cursor is None else bisect.bisect_right(node.names, cursor)
        names = node.names[start : start + max(limit, 1)]
        entries = [DirEntry(name=n, attrs=node.children[n].attrs()) for n in names]
        more = start + len(names) < len(node.names)
        return DirPage(entries=entries, next=names[-1] if more else None)

    @guarded
    def read(self, path, offset, count):
        data = file_node(FS.lookup(path)).data
        chunk = bytes(data[offset : offset + count])
        return ReadResult(data=Data_Bytes(chunk), eof=offset + count >= len(data))

    @guarded
    def write(self, path, offset, data):
        node = file_node(FS.lookup(path))
        if not data:
            return node.attrs()  # writing nothing changes nothing, even past the end
        old, end = len(node.data), offset + len(data)
        if end > old:
            FS.reserve(end - old)
            if offset > old:
                node.data.extend(bytes(offset - old))  # a hole reads as zeros
        node.data[offset:end] = data
        node.changed()
        return node.attrs()

    @guarded
    def create(self, path, mode, exclusive):
        try:
            return made(path, FS.add(path, FileKind.REGULAR, mode))
        except Err as e:
            if e.value != Error.EXISTS or exclusive:
                raise
        # Not exclusive: an existing file is used as it is (open with O_CREAT).
        node = FS.lookup(path)
        if node.kind == FileKind.DIRECTORY:
            raise Err(Error.IS_DIR)
        return made(path, node)

    @guarded
    def mkdir(self, path, mode):
        return made(path, FS.add(path, FileKind.DIRECTORY, mode))

    @guarded
    def remove(self, path):
        if path == "":
            raise Err(Error.IS_DIR)
        parent, name = FS.parent(path)
        node = parent.children.get(name)
        if node is None:
            raise Err(Error.NOT_FOUND)
        if node.kind == FileKind.DIRECTORY:
            raise Err(Error.IS_DIR)
        FS.release(FS.unlink(parent, name))
        return parent.attrs()

    @guarded
    def rmdir(self, path):
        if path == "":
            raise Err(Error.INVALID)  # the root stays
        parent, name = FS.parent(path)
        node = parent.children.get(name)
        if node is None:
            raise Err(Error.NOT_FOUND)
        if node.kind != FileKind.DIRECTORY:
            raise Err(Error.NOT_DIR)
        if node.children:
            raise Err(Error.NOT_EMPTY)
        FS.release(FS.unlink(parent, name))
        return parent.attrs()

    @guarded
    def rename(self, source, destination):
        if source == "" or destination == "":
            raise Err(Error.INVALID)
        from_dir, from_name = FS.parent(source)
        node = from_dir.children.get(from_name)
        if node is None:
            raise Err(Error.NOT_FOUND)
        to_dir, to_name = FS.parent(destination)
        if destination.startswith(source + "/"):
            raise Err(Error.INVALID)  # a directory cannot move into itself
        old = to_dir.children.get(to_name)
        if old is node:  # the same entry: nothing to do
            return Renamed(source_dir=from_dir.attrs(), destination_dir=to_dir.attrs())
        if old is not None:
            # POSIX: a directory replaces only an empty directory, a file only a non-directory.
            if node.kind == FileKind.DIRECTORY:
                if old.kind != FileKind.DIRECTORY:
                    raise Err(Error.NOT_DIR)
                if old.children:
                    raise Err(Error.NOT_EMPTY)
            elif old.kind == FileKind.DIRECTORY:
                raise Err(Error.IS_DIR)
            FS.release(FS.unlink(to_dir, to_name))
        FS.unlink(from_dir, from_name)
        FS.link(to_dir, to_name, node)
        node.changed(content=False)
        return Renamed(source_dir=from_dir.attrs(), destination_dir=to_dir.attrs())

    @guarded
    def symlink(self, path, target):
        node = FS.add(path, FileKind.SYMLINK, 0o777, len(target.encode()))
        node.target = target
        return made(path, node)

    @guarded
    def readlink(self, path):
        node = FS.lookup(path)
        if node.kind != FileKind.SYMLINK:
            raise Err(Error.INVALID)
        return node.target

    def link(self, existing, path):
        raise Err(Error.NOT_SUPPORTED)  # no hard-link capability: the host never calls this

    def mknod(self, path, kind, mode, device):
        raise Err(Error.NOT_SUPPORTED)  # no special-files capability either

    @guarded
    def setattr(self, path, changes):
        node = FS.lookup(path)
        if changes.size is not None:
            FS.resize(file_node(node), changes.size)  # checks everything before changing
        if changes.mode is not None:
            node.mode = changes.mode & 0o7777
        if changes.uid is not None:
            node.uid = changes.uid
        if changes.gid is not None:
            node.gid = changes.gid
        node.changed(content=changes.size is not None)  # truncate sets mtime too
        if changes.atime is not None:
            node.atime = time_of(changes.atime, node.ctime)
        if changes.mtime is not None:
            node.mtime = time_of(changes.mtime, node.ctime)
        return node.attrs()

    @guarded
    def sync(self, path):
        FS.lookup(path)  # memory is as durable as this file system gets

    def commit(self, path, staged):
        raise Err(Error.NOT_SUPPORTED)  # staged-writes is off: the host never calls this

    @guarded
    def statfs(self):
        free = FS.capacity - FS.used
        return FsStats(
            total_bytes=FS.capacity,
            free_bytes=free,
            available_bytes=free,
            total_files=MAX_FILES,
            free_files=MAX_FILES - FS.files,
            available_files=MAX_FILES - FS.files,
        )
