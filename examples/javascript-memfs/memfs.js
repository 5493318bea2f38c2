// javascript-memfs: a writable in-memory file system, as an nfsgw plugin written in JavaScript.
//
// Build it with `./build.sh memfs.wasm` (componentize-js), serve it with
//
//     [[mount]]
//     name = "mem"
//     plugin = "/path/to/memfs.wasm"
//     [mount.config]
//     seed = "hello.txt=Hello from JavaScript!\n"   # optional: files to start with
//     [mount.limits]
//     instances = 1                                 # one instance: the files live in its memory
//
// The host calls the functions of `backend` below with paths relative to the mount's root (""
// is the root, "a/b" is entry "b" of directory "a"). It keeps file handles and caches, and it
// checks the caller's permissions before it calls, so this file only has to keep the tree and
// answer with POSIX semantics. A failure is `throw 'not-found'` (a case of the WIT `error`
// enum); each case is one NFS status.
//
// WIT types in JavaScript: u64 and s64 are BigInt, other numbers are Number, enums are strings,
// records are objects with camelCase fields, an absent option is undefined, a variant is
// { tag, val }, flags are an object of booleans, list<u8> is a Uint8Array.
//
// Config keys (values are strings):
//   seed         files to create at start: "path=content" entries separated by ";".
//                Parent directories are made as needed; a path ending in "/" is a directory.
//   capacity_mb  how many MiB of file data the mount holds (default 64); past it, writes fail
//                with "no space". Keep it well below the mount's `limits.memory_mb` (256).

import { log } from 'nfsgw:backend/log@0.4.0';

const CAPABILITIES = {
  write: true, create: true, mkdir: true, remove: true, rename: true, symlink: true,
  hardLink: false, specialFiles: false,
  setMode: true, setOwner: true, setTimes: true, truncate: true,
};
const DEFAULT_CAPACITY_MB = 64;
const MAX_FILES = 100000; // files, directories and symlinks, the root included
const MAX_NAME = 255; // bytes of one name
const DIR_SIZE = 4096n; // the size a directory reports
const NO_DEVICE = { major: 0, minor: 0 };
const utf8 = new TextEncoder();

/** An error of the WIT `error` enum, thrown so the binding returns it as the result's error. */
class FsError {
  constructor(code) {
    this.code = code;
  }
}
const fail = (code) => {
  throw new FsError(code);
};

/** The WASI wall clock, as a WIT timestamp. */
function now() {
  const ms = Date.now();
  return { seconds: BigInt(Math.floor(ms / 1000)), nanoseconds: (ms % 1000) * 1e6 };
}

let fs; // the file system, made by init

/** A file, directory or symlink. Every node has exactly one name (no hard links). */
class Node {
  constructor(kind, mode) {
    this.kind = kind; // 'regular' | 'directory' | 'symlink'
    this.mode = mode & 0o7777;
    this.uid = 0; // the host gives new entries to their caller with setattr
    this.gid = 0;
    this.atime = this.mtime = this.ctime = now();
    this.change = fs.nextChange();
    this.bytes = kind === 'regular' ? new Uint8Array(0) : null; // capacity; the file is [0, size)
    this.size = 0;
    this.target = ''; // a symlink's text
    this.children = kind === 'directory' ? new Map() : null;
    this.names = null; // a directory's names, sorted, while it does not change
    this.subdirs = 0; // a directory's subdirectories, for its link count
  }

  attrs() {
    const dir = this.kind === 'directory';
    return {
      kind: this.kind,
      size: dir ? DIR_SIZE : BigInt(this.size),
      mode: this.mode,
      uid: this.uid,
      gid: this.gid,
      nlink: dir ? 2 + this.subdirs : 1,
      atime: this.atime,
      mtime: this.mtime,
      ctime: this.ctime,
      rdev: NO_DEVICE,
      change: String(this.change),
    };
  }

  /** Marks a change: ctime (and mtime for content) now, and a new change token. */
  changed(content = true) {
    this.ctime = now();
    if (content) this.mtime = this.ctime;
    this.change = fs.nextChange();
    this.names = null;
  }

  /** Makes the file `size` bytes long; new bytes are zeros. */
  resize(size) {
    if (size > this.bytes.length) {
      const grown = new Uint8Array(Math.max(size, Math.min(2 * this.bytes.length, size + (16 << 20))));
      grown.set(this.bytes.subarray(0, this.size));
      this.bytes = grown;
    } else if (size < this.bytes.length >> 2) {
      this.bytes = this.bytes.slice(0, size); // give most of the memory back
    } else if (size < this.size) {
      this.bytes.fill(0, size, this.size); // so growing again reads zeros
    }
    this.size = size;
  }
}

class FileSystem {
  constructor(capacity) {
    this.capacity = capacity; // bytes of file data and symlink text
    this.used = 0;
    this.files = 0;
    this.changes = 0;
    this.root = null;
  }

  nextChange() {
    return ++this.changes; // one sequence for the whole tree: a token is never reused
  }

  reserve(bytes, files = 0) {
    if (this.files + files > MAX_FILES || this.used + bytes > this.capacity) fail('no-space');
    this.used += bytes;
    this.files += files;
  }

  release(node) {
    this.files -= 1;
    this.used -= node.kind === 'directory' ? 0 : node.size;
  }

  lookup(path) {
    let node = this.root;
    if (path === '') return node;
    for (const name of path.split('/')) {
      if (node.kind !== 'directory') fail('not-dir');
      node = node.children.get(name);
      if (node === undefined) fail('not-found');
    }
    return node;
  }

  /** The directory that holds `path`, and the last name of `path`. */
  parent(path) {
    const slash = path.lastIndexOf('/');
    const dir = this.lookup(slash < 0 ? '' : path.slice(0, slash));
    const name = path.slice(slash + 1);
    if (dir.kind !== 'directory') fail('not-dir');
    if (utf8.encode(name).length > MAX_NAME) fail('name-too-long');
    return [dir, name];
  }

  /** Makes a new entry; `exists` if the name is taken. */
  add(path, kind, mode, bytes = 0) {
    if (path === '') fail('exists');
    const [dir, name] = this.parent(path);
    if (dir.children.has(name)) fail('exists');
    this.reserve(bytes, 1);
    const node = new Node(kind, mode);
    this.link(dir, name, node);
    return node;
  }

  link(dir, name, node) {
    dir.children.set(name, node);
    if (node.kind === 'directory') dir.subdirs += 1;
    dir.changed();
  }

  unlink(dir, name) {
    const node = dir.children.get(name);
    dir.children.delete(name);
    if (node.kind === 'directory') dir.subdirs -= 1;
    dir.changed();
    return node;
  }

  /** The entry at `path` with its directory and name, for remove, rmdir and rename. */
  entry(path) {
    if (path === '') fail('invalid'); // the root stays
    const [dir, name] = this.parent(path);
    const node = dir.children.get(name);
    if (node === undefined) fail('not-found');
    return [dir, name, node];
  }

  resize(node, size) {
    if (size > node.size) this.reserve(size - node.size);
    else this.used -= node.size - size;
    node.resize(size);
  }
}

/** What a call that made `node` at `path` answers: its attributes and its directory's. */
function made(path, node) {
  return { attrs: node.attrs(), dir: fs.parent(path)[0].attrs() };
}

/** What a rename answers: the attributes of the directories it left and entered. */
function renamed(fromDir, toDir) {
  return { sourceDir: fromDir.attrs(), destinationDir: toDir.attrs() };
}

/** Only regular files have content. */
function fileNode(node) {
  if (node.kind === 'directory') fail('is-dir');
  if (node.kind !== 'regular') fail('invalid');
  return node;
}

/** A u64 from the host as a Number; files this large never fit in memory anyway. */
function toNumber(big) {
  if (big > BigInt(Number.MAX_SAFE_INTEGER)) fail('too-big');
  return Number(big);
}

function parseConfig(config) {
  let seed = '';
  let capacityMb = DEFAULT_CAPACITY_MB;
  for (const [key, value] of config) {
    if (key === 'seed') {
      seed = value;
    } else if (key === 'capacity_mb') {
      capacityMb = /^\d+$/.test(value.trim()) ? Number(value) : 0;
      if (capacityMb <= 0) throw `capacity_mb: expected a positive number of MiB, got "${value}"`;
    } else {
      throw `unknown config key "${key}" (javascript-memfs knows: seed, capacity_mb)`;
    }
  }
  fs = new FileSystem(capacityMb * 1048576);
  fs.reserve(0, 1);
  fs.root = new Node('directory', 0o1777); // like /tmp: anyone may add, owners remove
  for (const entry of seed.split(';')) {
    const eq = entry.indexOf('=');
    const path = (eq < 0 ? entry : entry.slice(0, eq)).trim();
    if (path === '') continue;
    const isDir = path.endsWith('/');
    const names = path.replace(/^\/+|\/+$/g, '').split('/');
    if ((eq < 0 && !isDir) || names.some((n) => n === '' || n === '.' || n === '..')) {
      throw `seed: "${entry.trim()}" is not path=content (or dir/)`;
    }
    names.forEach((_, i) => {
      const sub = names.slice(0, i + 1).join('/');
      try {
        if (i < names.length - 1 || isDir) {
          if (!isDirectory(sub)) fs.add(sub, 'directory', 0o755);
        } else {
          const data = utf8.encode(entry.slice(eq + 1));
          const node = fs.add(sub, 'regular', 0o644, data.length);
          node.resize(data.length);
          node.bytes.set(data);
        }
      } catch (e) {
        throw `seed: cannot make "${sub}": ${e instanceof FsError ? e.code : e}`;
      }
    });
  }
}

function isDirectory(path) {
  try {
    return fs.lookup(path).kind === 'directory';
  } catch {
    return false;
  }
}

/** Position of the first name after `cursor` in sorted `names` (binary search). */
function after(names, cursor) {
  let lo = 0;
  let hi = names.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (names[mid] <= cursor) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function timeOf(setTime, at) {
  return setTime.tag === 'at' ? setTime.val : at;
}

const ops = {
  init(config) {
    parseConfig(config);
    log('info', `javascript-memfs ready: capacity ${fs.capacity / 1048576} MiB, entries seeded: ${fs.files - 1}`);
    // The tree lives in this instance's memory: one instance serves every call.
    return { capabilities: CAPABILITIES, immutable: false, attrTtlMs: undefined, maxInstances: 1, stagedWrites: false, pinnedConfig: [] };
  },

  stat(path) {
    return fs.lookup(path).attrs();
  },

  listDir(path, cursor, limit) {
    const dir = fs.lookup(path);
    if (dir.kind !== 'directory') fail('not-dir');
    if (dir.names === null) dir.names = [...dir.children.keys()].sort();
    // The cursor is the last name of the previous page, so a page resumes correctly even when
    // entries come and go between pages.
    const start = cursor === undefined || cursor === null ? 0 : after(dir.names, cursor);
    const names = dir.names.slice(start, start + Math.max(limit, 1));
    const entries = names.map((name) => ({ name, attrs: dir.children.get(name).attrs() }));
    const more = start + names.length < dir.names.length;
    return { entries, next: more ? names[names.length - 1] : undefined };
  },

  read(path, offset, len) {
    const node = fileNode(fs.lookup(path));
    const start = Math.min(toNumber(offset), node.size);
    const end = Math.min(start + len, node.size);
    // A copy: the host gets a snapshot even if the file changes before it is sent.
    const bytes = node.bytes.slice(start, end);
    return { data: { tag: 'bytes', val: bytes }, eof: toNumber(offset) + len >= node.size };
  },

  write(path, offset, data) {
    const node = fileNode(fs.lookup(path));
    if (data.length === 0) return node.attrs(); // writing nothing changes nothing, even past the end
    const at = toNumber(offset);
    const end = at + data.length;
    if (end > node.size) fs.resize(node, end); // a hole reads as zeros
    node.bytes.set(data, at);
    node.changed();
    return node.attrs();
  },

  create(path, mode, exclusive) {
    try {
      return made(path, fs.add(path, 'regular', mode));
    } catch (e) {
      if (!(e instanceof FsError) || e.code !== 'exists' || exclusive) throw e;
    }
    // Not exclusive: an existing file is used as it is (open with O_CREAT).
    const node = fs.lookup(path);
    if (node.kind === 'directory') fail('is-dir');
    return made(path, node);
  },

  mkdir(path, mode) {
    return made(path, fs.add(path, 'directory', mode));
  },

  remove(path) {
    if (path === '') fail('is-dir');
    const [dir, name, node] = fs.entry(path);
    if (node.kind === 'directory') fail('is-dir');
    fs.release(fs.unlink(dir, name));
    return dir.attrs();
  },

  rmdir(path) {
    const [dir, name, node] = fs.entry(path);
    if (node.kind !== 'directory') fail('not-dir');
    if (node.children.size > 0) fail('not-empty');
    fs.release(fs.unlink(dir, name));
    return dir.attrs();
  },

  rename(source, destination) {
    const [fromDir, fromName, node] = fs.entry(source);
    if (destination === '') fail('invalid');
    const [toDir, toName] = fs.parent(destination);
    if (destination.startsWith(source + '/')) fail('invalid'); // a directory into itself
    const old = toDir.children.get(toName);
    if (old === node) return renamed(fromDir, toDir); // the same entry: nothing to do
    if (old !== undefined) {
      // POSIX: a directory replaces only an empty directory, a file only a non-directory.
      if (node.kind === 'directory') {
        if (old.kind !== 'directory') fail('not-dir');
        if (old.children.size > 0) fail('not-empty');
      } else if (old.kind === 'directory') {
        fail('is-dir');
      }
      fs.release(fs.unlink(toDir, toName));
    }
    fs.unlink(fromDir, fromName);
    fs.link(toDir, toName, node);
    node.changed(false);
    return renamed(fromDir, toDir);
  },

  symlink(path, target) {
    const length = utf8.encode(target).length;
    const node = fs.add(path, 'symlink', 0o777, length);
    node.target = target;
    node.size = length;
    return made(path, node);
  },

  readlink(path) {
    const node = fs.lookup(path);
    if (node.kind !== 'symlink') fail('invalid');
    return node.target;
  },

  link() {
    fail('not-supported'); // no hard-link capability: the host never calls this
  },

  mknod() {
    fail('not-supported'); // no special-files capability either
  },

  setattr(path, changes) {
    const node = fs.lookup(path);
    if (changes.size !== undefined) fs.resize(fileNode(node), toNumber(changes.size)); // checks first
    if (changes.mode !== undefined) node.mode = changes.mode & 0o7777;
    if (changes.uid !== undefined) node.uid = changes.uid;
    if (changes.gid !== undefined) node.gid = changes.gid;
    node.changed(changes.size !== undefined); // truncate sets mtime too
    if (changes.atime !== undefined) node.atime = timeOf(changes.atime, node.ctime);
    if (changes.mtime !== undefined) node.mtime = timeOf(changes.mtime, node.ctime);
    return node.attrs();
  },

  sync(path) {
    fs.lookup(path); // memory is as durable as this file system gets
  },

  commit(path, staged) {
    fail('not-supported'); // staged-writes is off: the host never calls this
  },

  statfs() {
    const free = BigInt(fs.capacity - fs.used);
    const freeFiles = BigInt(MAX_FILES - fs.files);
    return {
      totalBytes: BigInt(fs.capacity),
      freeBytes: free,
      availableBytes: free,
      totalFiles: BigInt(MAX_FILES),
      freeFiles,
      availableFiles: freeFiles,
    };
  },
};

// An exception a function does not expect would trap, and the host would replace the
// instance, which throws every file away: answer with an error (`io`) instead.
function guarded(name, op) {
  return (...args) => {
    try {
      return op(...args);
    } catch (e) {
      if (e instanceof FsError) throw e.code;
      if (typeof e === 'string') throw e; // init's message for the user
      if (e instanceof RangeError) throw 'no-space'; // out of memory for an array
      log('error', `${name}: ${e}${e && e.stack ? `\n${e.stack}` : ''}`);
      throw name === 'init' ? `javascript-memfs: ${e}` : 'io';
    }
  };
}

export const backend = Object.fromEntries(
  Object.entries(ops).map(([name, op]) => [name, guarded(name, op)]),
);
