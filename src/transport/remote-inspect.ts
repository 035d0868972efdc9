/**
 * The batched `inspect` of the SSH transport: one remote step per call, which
 * answers for every path at once, as LocalTransport does on this machine.
 *
 * The script runs under python3 when the host has it (/usr/bin/python3 first,
 * then PATH: see FIND_PYTHON), as a persistent helper (see `helperCommand`),
 * and otherwise under POSIX sh with coreutils (`stat`,
 * `readlink`, `base64`, `sha256sum`, `xargs -0`), once per call.
 * Paths go in on stdin, NUL-separated. The answer comes back on stdout as
 * NUL-terminated fields:
 *
 *   CAPSTAN1  <contents of /etc/passwd>  <contents of /etc/group>
 *   then one record per path, in order, with confineTo first a
 *     P  <real path>                           where the path really is (parent chain resolved)
 *   unless it escapes, then:
 *     A                                        absent
 *     E  <symlink>  <link text>  <resolves to>  <0|1 dangling>   escapes confineTo
 *     O  <st_mode octal>  <uid>  <gid>  <size>  <link text>  <-|c|h>  <payload>
 *        payload: c = the file's bytes in base64, h = hex SHA-256 (file larger than the limit)
 *     X  <errno name>  <message>               could not inspect this path
 *   END
 *
 * An empty field stands for "none" (a link's text and a path are never empty).
 * For `realpath`, the records are `R <real path>` (or `X ...`), one per path.
 *
 * The sh variant cannot open a file without following a link that replaced it
 * after `stat`: like the providers' own check-then-write (paths.ts), it guards
 * against links that exist, not against a concurrent adversary.
 */
import { createHash } from 'node:crypto';
import { formatMode, pathTypeOfMode, type PathEscape, type PathInfo } from './transport.js';

const PYTHON = String.raw`
import errno, hashlib, io, os, stat, sys, base64
out, maxb, want, memo = None, 0, False, {}
def w(*fields):
    for f in fields:
        out.write(f if isinstance(f, bytes) else str(f).encode())
        out.write(b'\0')
def slurp(p):
    try:
        with open(p, 'rb') as f:
            return f.read().replace(b'\0', b'')
    except OSError:
        return b''
def join(d, b):
    return d + b if d.endswith(b'/') else d + b'/' + b
def resolve_dir(d):
    r = memo.get(d)
    if r is None:
        r = memo[d] = resolve_uncached(d)
    return r
def resolve_uncached(d):
    here = False
    try:
        if stat.S_ISDIR(os.stat(d).st_mode):
            return (d, os.path.realpath(d), None)
    except OSError as e:
        if e.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            raise
        if e.errno != errno.ENOTDIR:
            try:
                here = stat.S_ISLNK(os.lstat(d).st_mode)
            except OSError:
                pass
    if d == b'/':
        raise OSError(errno.ENOTDIR, '/ is not a directory')
    up = resolve_dir(os.path.dirname(d))
    return (up[0], join(up[1], os.path.basename(d)), up[2] if up[2] is not None else (d if here else None))
def within(p, d):
    return d == b'/' or p == d or p.startswith(d + b'/')
def readlink(p):
    try:
        return os.readlink(p)
    except OSError:
        return b''
def escape(p, root):
    parent = resolve_dir(os.path.dirname(p))
    to = join(parent[1], os.path.basename(p))
    if parent[2] is not None:
        return (parent[2], readlink(parent[2]), to, 1)
    if within(to, root):
        return to
    link, text, cur = b'', b'', b''
    for seg in parent[0].split(b'/'):
        if not seg:
            continue
        cur = cur + b'/' + seg
        if stat.S_ISLNK(os.lstat(cur).st_mode):
            link, text = cur, os.readlink(cur)
    return (link, text, to, 0)
def read_upto(fd, n):
    parts, got = [], 0
    while got < n:
        b = os.read(fd, n - got)
        if not b:
            break
        parts.append(b)
        got += len(b)
    return b''.join(parts)
def digest(fd):
    h = hashlib.sha256()
    while True:
        b = os.read(fd, 1 << 20)
        if not b:
            return h.hexdigest()
        h.update(b)
def inspect(p):
    try:
        st = os.lstat(p)
    except (FileNotFoundError, NotADirectoryError):
        return w('A')
    link, kind, payload = b'', '-', b''
    if stat.S_ISLNK(st.st_mode):
        link = os.readlink(p)
    elif stat.S_ISREG(st.st_mode) and want:
        try:
            fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                return inspect(p)
            raise
        try:
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode):
                data = read_upto(fd, maxb + 1) if st.st_size <= maxb else b''
                if st.st_size <= maxb and len(data) <= maxb and not os.read(fd, 1):
                    kind, payload = 'c', base64.b64encode(data)
                else:
                    os.lseek(fd, 0, 0)
                    kind, payload = 'h', digest(fd)
        finally:
            os.close(fd)
    w('O', '%o' % st.st_mode, st.st_uid, st.st_gid, st.st_size, link, kind, payload)
def answer(op, root, paths):
    global memo
    memo = {}
    w('CAPSTAN1', slurp('/etc/passwd'), slurp('/etc/group'))
    for p in paths:
        try:
            if op == 'realpath':
                w('R', resolve_dir(p)[1])
                continue
            e = escape(p, root) if root else None
            if isinstance(e, tuple):
                w('E', *e)
                continue
            if e is not None:
                w('P', e)
            inspect(p)
        except OSError as e:
            w('X', errno.errorcode.get(e.errno, 'EIO'), e.strerror or str(e))
    w('END')
def read_exact(f, n):
    b = b''
    while len(b) < n:
        c = f.read(n - len(b))
        if not c:
            return None
        b += c
    return b
if sys.argv[1] == 'serve':
    inp, dst = sys.stdin.buffer, sys.stdout.buffer
    dst.write(b'CAPSTAN-HELPER1\n')
    dst.flush()
    while True:
        head = read_exact(inp, 4)
        req = head and read_exact(inp, int.from_bytes(head, 'big'))
        if req is None:
            break
        f = req.split(b'\0')
        maxb, want, out = int(f[2]), f[3] == b'1', io.BytesIO()
        answer(f[0].decode(), f[1], [p for p in f[4:] if p])
        data = out.getvalue()
        dst.write(len(data).to_bytes(8, 'big'))
        dst.write(data)
        dst.flush()
else:
    maxb, want, out = int(sys.argv[3]), sys.argv[4] == '1', sys.stdout.buffer
    answer(sys.argv[1], os.fsencode(sys.argv[2]), [p for p in sys.stdin.buffer.read().split(b'\0') if p])
`;

// Run by xargs -0 with the paths as arguments, after the launcher wrote the header.
// Written with %{ for the shell's ${ (which a template literal would take as its own).
const SH = String.raw`
op=$1 confine=$2 max=$3 want=$4
shift 4
unset CDPATH
LC_ALL=C
export LC_ALL
z() { printf '%s\0' "$@"; }
# resolve DIR: sets existing, real, dangling (the highest link to a missing target).
memo_dir= memo_existing= memo_real= memo_dangling=
resolve() {
  if [ -n "$memo_dir" ] && [ "$1" = "$memo_dir" ]; then
    existing=$memo_existing real=$memo_real dangling=$memo_dangling
    return 0
  fi
  d=$1 tail= dangling=
  while ! [ -d "$d" ]; do
    if [ -L "$d" ] && ! [ -e "$d" ]; then dangling=$d; fi
    if [ "$d" = / ] || [ -z "$d" ]; then z X ENOTDIR '/ is not a directory'; return 1; fi
    tail=/%{d##*/}$tail
    d=%{d%/*}
    [ -n "$d" ] || d=/
  done
  existing=$d
  real=$(cd -P "$d" && pwd -P && echo .) || { z X EACCES "cannot resolve $d"; return 1; }
  real=%{real%.}
  real=%{real%?}
  if [ -n "$tail" ]; then
    if [ "$real" = / ]; then real=$tail; else real=$real$tail; fi
  fi
  memo_dir=$1 memo_existing=$existing memo_real=$real memo_dangling=$dangling
}
parent_of() {
  p=%{1%/*}
  [ -n "$p" ] || p=/
}
joined() {
  if [ "$1" = / ]; then to=/$2; else to=$1/$2; fi
}
# Prints an E record and returns 0 when PATH escapes; returns 1 when it may be used.
escapes() {
  parent_of "$1"
  resolve "$p" || return 0
  joined "$real" "%{1##*/}"
  if [ -n "$dangling" ]; then
    printf 'E\0%s\0' "$dangling"; readlink -n -- "$dangling" 2>/dev/null; printf '\0%s\0%s\0' "$to" 1
    return 0
  fi
  case $to in "$confine"|"$confine"/*) return 1 ;; esac
  [ "$confine" = / ] && return 1
  link= cur=
  rest=%{existing#/}
  while [ -n "$rest" ]; do
    seg=%{rest%%/*}
    case $rest in */*) rest=%{rest#*/} ;; *) rest= ;; esac
    cur=$cur/$seg
    [ -L "$cur" ] && link=$cur
  done
  printf 'E\0%s\0' "$link"
  [ -n "$link" ] && readlink -n -- "$link"
  printf '\0%s\0%s\0' "$to" 0
  return 0
}
inspect() {
  if ! s=$(stat -c '%f %u %g %s' -- "$1" 2>&1); then
    case $s in
      *'No such file or directory'*|*'Not a directory'*) z A ;;
      *'Permission denied'*) z X EACCES "$s" ;;
      *'Too many levels of symbolic links'*) z X ELOOP "$s" ;;
      *) z X EIO "$s" ;;
    esac
    return
  fi
  set -- "$1" $s
  mode=$(printf '%o' "$((0x$2))")
  type=$(( 0x$2 & 0170000 ))
  printf 'O\0%s\0%s\0%s\0%s\0' "$mode" "$3" "$4" "$5"
  if [ "$type" -eq 40960 ]; then
    readlink -n -- "$1"
    printf '\0-\0\0'
  elif [ "$type" -eq 32768 ] && [ "$want" = 1 ]; then
    if [ "$5" -le "$max" ]; then
      printf '\0c\0'; base64 < "$1"; printf '\0'
    else
      h=$(sha256sum < "$1")
      printf '\0h\0%s\0' "%{h%% *}"
    fi
  else
    printf '\0-\0\0'
  fi
}
for path in "$@"; do
  if [ "$op" = realpath ]; then
    resolve "$path" && z R "$real"
  elif [ -n "$confine" ] && escapes "$path"; then
    :
  else
    [ -n "$confine" ] && z P "$to"
    inspect "$path"
  fi
done
exit 0
`.replaceAll('%{', '${');

/**
 * Shell code that sets `py` to the host's python3, or to nothing. The system's own
 * /usr/bin/python3 comes first: a python3 found on PATH may be a version
 * manager's shim (pyenv's runs bash and pyenv itself, seconds on a loaded host)
 * or a virtualenv's, which the scripts do not need.
 */
export const FIND_PYTHON = 'if [ -x /usr/bin/python3 ]; then py=/usr/bin/python3; else py=$(command -v python3 2>/dev/null) || py=; fi';

// The command: python3 when present (and not refused), else the sh variant above.
const LAUNCHER = String.raw`
interp=$1; shift
${FIND_PYTHON}
if [ "$interp" != sh ] && [ -n "$py" ]; then exec "$py" -S -E -c "$5" "$1" "$2" "$3" "$4"; fi
if [ "$interp" = python3 ]; then echo 'capstan: python3 not found on the host' >&2; exit 127; fi
printf 'CAPSTAN1\0'
cat /etc/passwd 2>/dev/null | tr -d '\000'; printf '\0'
cat /etc/group 2>/dev/null | tr -d '\000'; printf '\0'
xargs -0 sh -c "$6" capstan-inspect "$1" "$2" "$3" "$4" || exit 1
printf 'END\0'
`;

export type RemoteInterpreter = 'auto' | 'python3' | 'sh';

/** The argument array that runs the inspect script; paths go on its stdin, NUL-separated. */
export function inspectCommand(
  op: 'inspect' | 'realpath',
  options: { interpreter: RemoteInterpreter; confineTo: string; maxContentBytes: number; content: boolean },
): string[] {
  return [
    'sh',
    '-c',
    LAUNCHER,
    'capstan-inspect',
    options.interpreter,
    op,
    options.confineTo,
    String(options.maxContentBytes),
    options.content ? '1' : '0',
    PYTHON,
    SH,
  ];
}

/**
 * The persistent form of the python3 script, for a transport that keeps one
 * process per connection (ssh-helper.ts): it prints `CAPSTAN-HELPER1\n`, then
 * answers requests framed as a 4-byte big-endian length and
 * `op NUL confineTo NUL maxBytes NUL 0|1 NUL path NUL path...`, each answer
 * framed as an 8-byte big-endian length and the output described above. Exits
 * 127 when the host has no python3. Prefers /usr/bin/python3, as the one-shot
 * script does.
 */
export function helperCommand(): string[] {
  return ['sh', '-c', `${FIND_PYTHON}; [ -n "$py" ] || exit 127; exec "$py" -S -E -c "$1" serve`, 'capstan-helper', PYTHON];
}

export const HELPER_HELLO = 'CAPSTAN-HELPER1\n';

/** One request for the helper, framed. */
export function encodeHelperRequest(
  op: 'inspect' | 'realpath',
  options: { confineTo: string; maxContentBytes: number; content: boolean },
  paths: readonly string[],
): Buffer {
  const body = Buffer.from([op, options.confineTo, String(options.maxContentBytes), options.content ? '1' : '0', ...paths].map((f) => `${f}\0`).join(''), 'utf8');
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length);
  return Buffer.concat([head, body]);
}

/** Paths as the script reads them on stdin. */
export function encodePaths(paths: readonly string[]): Buffer {
  return Buffer.concat(paths.map((p) => Buffer.from(`${p}\0`, 'utf8')));
}

/** An error the script reported for one path, with its errno name as `code`. */
export class RemotePathError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly path: string,
  ) {
    super(message);
    this.name = 'RemotePathError';
  }
}

interface Accounts {
  readonly users: Map<number, string>;
  readonly groups: Map<number, string>;
  readonly userIds: Map<string, number>;
  readonly groupIds: Map<string, number>;
}

/** Reads the script's answer into one PathInfo per path. Throws when it is cut short or malformed. */
export function parseInspectOutput(stdout: Buffer, paths: readonly string[], maxContentBytes: number): PathInfo[] {
  const reader = new FieldReader(stdout);
  const accounts = readHeader(reader);
  const infos: PathInfo[] = [];
  for (const path of paths) {
    let tag = reader.text();
    let realPath: string | null = null;
    if (tag === 'P') {
      realPath = reader.text();
      tag = reader.text();
    }
    if (tag === 'A') infos.push({ ...absent(path), realPath });
    else if (tag === 'E') {
      const symlink = reader.text();
      const linkTarget = reader.text();
      const resolvesTo = reader.text();
      const dangling = reader.text() === '1';
      const escape: PathEscape = { symlink: symlink || null, linkTarget: linkTarget || null, resolvesTo, dangling };
      infos.push({ ...absent(path), escape });
    } else if (tag === 'O') {
      infos.push({ ...readObject(reader, path, accounts, maxContentBytes), realPath });
    } else if (tag === 'X') {
      const code = reader.text();
      throw new RemotePathError(code, `cannot inspect ${path}: ${reader.text().trim()}`, path);
    } else {
      throw new Error(`unexpected answer from the inspect script: ${JSON.stringify(tag)}`);
    }
  }
  if (reader.text() !== 'END') throw new Error('the inspect script answered for more paths than asked, or was cut short');
  return infos;
}

/** Reads the answer of a `realpath` run: one real path per path asked. */
export function parseRealpathOutput(stdout: Buffer, count: number): string[] {
  const reader = new FieldReader(stdout);
  readHeader(reader);
  const reals: string[] = [];
  for (let i = 0; i < count; i++) {
    const tag = reader.text();
    if (tag === 'X') {
      const code = reader.text();
      throw Object.assign(new Error(reader.text().trim()), { code });
    }
    if (tag !== 'R') throw new Error(`unexpected answer from the realpath script: ${JSON.stringify(tag)}`);
    reals.push(reader.text());
  }
  if (reader.text() !== 'END') throw new Error('the realpath script was cut short');
  return reals;
}

/** `/etc/passwd` or `/etc/group` text → id ↔ name maps (the first entry wins, as LocalTransport reads them). */
export function parseIdDatabase(text: string): { ids: Map<string, number>; names: Map<number, string> } {
  const ids = new Map<string, number>();
  const names = new Map<number, string>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const [name, , idText] = line.split(':');
    if (!name || idText === undefined || !/^\d+$/.test(idText)) continue;
    const id = Number(idText);
    if (!ids.has(name)) ids.set(name, id);
    if (!names.has(id)) names.set(id, name);
  }
  return { ids, names };
}

function readHeader(reader: FieldReader): Accounts {
  if (!reader.startsWith('CAPSTAN1\0')) throw new Error(`the inspect script did not start (got ${JSON.stringify(reader.peek(80))})`);
  reader.text();
  const users = parseIdDatabase(reader.text());
  const groups = parseIdDatabase(reader.text());
  return { users: users.names, groups: groups.names, userIds: users.ids, groupIds: groups.ids };
}

function readObject(reader: FieldReader, path: string, accounts: Accounts, maxContentBytes: number): PathInfo {
  const stMode = Number.parseInt(reader.text(), 8);
  const uid = Number(reader.text());
  const gid = Number(reader.text());
  const size = Number(reader.text());
  const link = reader.text();
  const kind = reader.text();
  const payload = reader.text();
  if (!Number.isInteger(stMode) || !Number.isInteger(uid) || !Number.isInteger(gid) || !Number.isFinite(size)) {
    throw new Error(`malformed answer from the inspect script for ${path}`);
  }
  const type = pathTypeOfMode(stMode);
  let sha256: string | null = null;
  let content: Buffer | null = null;
  if (kind === 'c') {
    const bytes = Buffer.from(payload, 'base64');
    sha256 = createHash('sha256').update(bytes).digest('hex');
    content = bytes.length <= maxContentBytes ? bytes : null;
  } else if (kind === 'h') {
    if (!/^[0-9a-f]{64}$/.test(payload)) throw new Error(`malformed SHA-256 from the inspect script for ${path}`);
    sha256 = payload;
  }
  return {
    path,
    type,
    mode: formatMode(stMode),
    uid,
    gid,
    owner: accounts.users.get(uid) ?? null,
    group: accounts.groups.get(gid) ?? null,
    size,
    sha256,
    content,
    linkTarget: type === 'symlink' ? link : null,
    escape: null,
    realPath: null,
  };
}

export function absent(path: string): PathInfo {
  return {
    path,
    type: 'absent',
    mode: null,
    uid: null,
    gid: null,
    owner: null,
    group: null,
    size: null,
    sha256: null,
    content: null,
    linkTarget: null,
    escape: null,
    realPath: null,
  };
}

/** NUL-terminated fields of a buffer, decoded as UTF-8. */
class FieldReader {
  private offset = 0;
  constructor(private readonly buf: Buffer) {}

  startsWith(prefix: string): boolean {
    return this.buf.subarray(this.offset, this.offset + prefix.length).toString('latin1') === prefix;
  }

  peek(bytes: number): string {
    return this.buf.toString('utf8', this.offset, this.offset + bytes);
  }

  text(): string {
    const end = this.buf.indexOf(0, this.offset);
    if (end < 0) throw new Error('the remote script was cut short (its answer ends in the middle of a record)');
    const field = this.buf.toString('utf8', this.offset, end);
    this.offset = end + 1;
    return field;
  }
}
