import { execFile, spawn, spawnSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { pathToFileURL } from 'node:url';

const run = promisify(execFile);

/** One entry of a tar archive made by `createTarArchive`. */
export interface TarEntry {
  name: string;
  type?: 'file' | 'dir' | 'symlink' | 'hardlink';
  content?: string | Uint8Array;
  /** The target of a symlink or hardlink. */
  linkName?: string;
  mode?: number;
}

const block = 512;

function writeText(header: Buffer, offset: number, length: number, text: string): void {
  header.write(text, offset, Math.min(length, Buffer.byteLength(text)), 'utf8');
}

function writeOctal(header: Buffer, offset: number, length: number, value: number): void {
  writeText(header, offset, length - 1, value.toString(8).padStart(length - 1, '0'));
}

function padded(data: Buffer): Buffer {
  const rest = data.length % block;
  return rest === 0 ? data : Buffer.concat([data, Buffer.alloc(block - rest)]);
}

function headerBlock(name: string, typeFlag: string, size: number, mode: number,
  linkName: string): Buffer {
  const header = Buffer.alloc(block);
  writeText(header, 0, 100, name);
  writeOctal(header, 100, 8, mode);
  writeOctal(header, 108, 8, 0);
  writeOctal(header, 116, 8, 0);
  writeOctal(header, 124, 12, size);
  writeOctal(header, 136, 12, Math.floor(Date.now() / 1000));
  header.fill(32, 148, 156);
  header.write(typeFlag, 156, 'ascii');
  writeText(header, 157, 100, linkName);
  header.write('ustar\u000000', 257, 'binary');
  let sum = 0;

  for (const byte of header) {
    sum += byte;
  }

  writeText(header, 148, 7, sum.toString(8).padStart(6, '0') + '\u0000');
  return header;
}

function paxHeader(records: Record<string, string>): Buffer {
  let body = '';

  for (const [key, value] of Object.entries(records)) {
    const record = ` ${key}=${value}\n`;
    let length = Buffer.byteLength(record);
    length += String(length + String(length).length).length;
    body += `${length}${record}`;
  }

  const data = Buffer.from(body, 'utf8');
  return Buffer.concat([headerBlock('PaxHeader', 'x', data.length, 0o644, ''), padded(data)]);
}

/**
 * An uncompressed POSIX tar archive of the entries, as the CLI uploads a local repo. Names
 * over 100 bytes go into a pax header. Nothing checks the names: tests build unsafe ones too.
 */
export function createTarArchive(entries: readonly TarEntry[]): Uint8Array {
  const parts: Buffer[] = [];
  const flags = { file: '0', hardlink: '1', symlink: '2', dir: '5' } as const;

  for (const entry of entries) {
    const type = entry.type ?? 'file';
    const data = type === 'file' ? Buffer.from(entry.content ?? '') : Buffer.alloc(0);
    const linkName = entry.linkName ?? '';
    const records: Record<string, string> = {};

    if (Buffer.byteLength(entry.name) > 100) {
      records.path = entry.name;
    }

    if (Buffer.byteLength(linkName) > 100) {
      records.linkpath = linkName;
    }

    if (Object.keys(records).length > 0) {
      parts.push(paxHeader(records));
    }

    const mode = entry.mode ?? (type === 'dir' ? 0o755 : 0o644);
    parts.push(headerBlock(entry.name.slice(0, 100), flags[type], data.length, mode, linkName));
    parts.push(padded(data));
  }

  parts.push(Buffer.alloc(block * 2));
  return new Uint8Array(Buffer.concat(parts));
}

/** A git repo made for a test: a bare origin to clone and the client's diff against it. */
export interface GitRepoFixture {
  /** `file://` URL of the bare origin. */
  cloneUrl: string;
  branch: string;
  /** The commit the diff is taken against. */
  hash: string;
  /** `git diff --binary` of the changes plus the untracked files, as the CLI sends it. */
  diff: Uint8Array;
}

async function git(cwd: string, args: string[]): Promise<string> {
  const identity = ['-c', 'user.name=Fixture', '-c', 'user.email=fixture@example.com',
    '-c', 'commit.gpgsign=false'];
  const { stdout } = await run('git', [...identity, ...args], { cwd });
  return stdout;
}

async function writeFiles(root: string, files: Record<string, string>): Promise<void> {
  for (const [name, content] of Object.entries(files)) {
    await mkdir(dirname(join(root, name)), { recursive: true });
    await writeFile(join(root, name), content);
  }
}

/** Whether a `git` binary runs on this machine. */
export function gitAvailable(): boolean {
  return spawnSync('git', ['--version']).status === 0;
}

/**
 * Makes `<dir>/origin.git` with a commit of `committed` on branch `main`, then a work tree
 * where `changed` files are written over it (tracked or not) and diffed the way the CLI does.
 * `later` files, when given, land in a newer commit on `main`, so the fixture's hash is no
 * longer the branch head.
 */
export async function createGitRepoFixture(
  dir: string,
  committed: Record<string, string>,
  changed: Record<string, string>,
  later: Record<string, string> = {},
): Promise<GitRepoFixture> {
  const work = join(dir, 'work');
  await mkdir(work, { recursive: true });
  await git(work, ['init', '--quiet']);
  await git(work, ['symbolic-ref', 'HEAD', 'refs/heads/main']);
  await writeFiles(work, committed);
  await git(work, ['add', '--all']);
  await git(work, ['commit', '--quiet', '-m', 'fixture']);
  await git(dir, ['clone', '--quiet', '--bare', work, join(dir, 'origin.git')]);
  const hash = (await git(work, ['rev-parse', 'HEAD'])).trim();

  if (Object.keys(later).length > 0) {
    const next = join(dir, 'later');
    await git(dir, ['clone', '--quiet', join(dir, 'origin.git'), next]);
    await writeFiles(next, later);
    await git(next, ['commit', '--quiet', '--all', '-m', 'later']);
    await git(next, ['push', '--quiet', 'origin', 'HEAD:main']);
  }

  await writeFiles(work, changed);
  const parts = [await git(work, ['diff', '--binary', hash])];
  const untracked = (await git(work, ['ls-files', '--others', '--exclude-standard']))
    .split('\n')
    .filter((name) => name !== '');

  for (const name of untracked) {
    // `--no-index` exits 1 when the files differ, which they always do here.
    const result = await run('git', ['diff', '--binary', '--no-index', '/dev/null', name],
      { cwd: work }).catch((error: { stdout?: string }) => ({ stdout: error.stdout ?? '' }));
    parts.push(result.stdout);
  }

  return {
    cloneUrl: pathToFileURL(join(dir, 'origin.git')).href,
    branch: 'main',
    hash,
    diff: new Uint8Array(Buffer.from(parts.join(''))),
  };
}

/** A git server over HTTP on loopback that wants a token, as a hosted git service does. */
export interface GitHttpServer {
  /** The clone URL of `<root>/<name>` (no credentials in it). */
  urlOf(name: string): string;
  /** The passwords clients sent, in order (empty before a client authenticated). */
  passwords: string[];
  close(): Promise<void>;
}

/**
 * Serves the bare repos under `root` through `git http-backend` on 127.0.0.1, answering 401
 * to any request whose Basic password is not `token`.
 */
export async function startGitHttpServer(root: string, token: string): Promise<GitHttpServer> {
  const { stdout: execPath } = await run('git', ['--exec-path']);
  const backend = join(execPath.trim(), 'git-http-backend');
  const passwords: string[] = [];
  const server = createServer((request, response) => {
    const auth = /^Basic (.+)$/.exec(request.headers.authorization ?? '')?.[1];
    const password = auth === undefined
      ? null
      : Buffer.from(auth, 'base64').toString().split(':').slice(1).join(':');

    if (password !== null) {
      passwords.push(password);
    }

    if (password !== token) {
      response.writeHead(401, { 'www-authenticate': 'Basic realm="git"' }).end();
      return;
    }

    const url = new URL(request.url ?? '/', 'http://127.0.0.1');
    const child = spawn(backend, [], {
      env: {
        PATH: process.env.PATH,
        GIT_PROJECT_ROOT: root,
        GIT_HTTP_EXPORT_ALL: '1',
        REQUEST_METHOD: request.method,
        PATH_INFO: decodeURIComponent(url.pathname),
        QUERY_STRING: url.search.slice(1),
        CONTENT_TYPE: request.headers['content-type'] ?? '',
        HTTP_CONTENT_ENCODING: request.headers['content-encoding'] ?? '',
        REMOTE_USER: 'fixture',
        REMOTE_ADDR: '127.0.0.1',
      },
    });
    const chunks: Buffer[] = [];
    request.pipe(child.stdin);
    child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    child.on('close', () => {
      const output = Buffer.concat(chunks);
      const split = output.indexOf('\r\n\r\n');
      const headers: Record<string, string> = {};
      let status = 200;

      for (const line of output.subarray(0, split).toString().split('\r\n')) {
        const [name, ...rest] = line.split(':');
        const value = rest.join(':').trim();

        if (name!.toLowerCase() === 'status') {
          status = Number.parseInt(value, 10);
        } else if (name !== '') {
          headers[name!] = value;
        }
      }

      response.writeHead(status, headers).end(output.subarray(split + 4));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    urlOf: (name) => `http://127.0.0.1:${port}/${name}`,
    passwords,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
