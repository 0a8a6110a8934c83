/**
 * The local runner's repo checkout, as a CommonJS fragment the runner source embeds: a tar
 * extractor that writes nothing outside the repo directory, and a git clone at a commit with
 * the client's diff applied. It uses `fs`, `path`, `spawn`, `runnerLog`, `writeState` and
 * `stopRequested` of the runner around it.
 *
 * `job.repo` in `job.json`: `{ kind: "archive"|"git", dir, blob, cloneUrl, branch, hash,
 * configName, configEmail, singleBranch }`; `blob` names the archive or diff file in the job
 * directory. Credentials wait in `repo-creds.json`, which the checkout removes first.
 */
export const runnerRepoSource = String.raw`
const TAR_BLOCK = 512;
const MAX_GIT_OUTPUT_CHARS = 64 * 1024;

class RepoStopped extends Error {}

function tarText(header, start, length) {
  const field = header.subarray(start, start + length);
  const end = field.indexOf(0);
  return field.subarray(0, end === -1 ? length : end).toString('utf8');
}

function tarNumber(header, start, length) {
  const field = header.subarray(start, start + length);
  // GNU base-256: the high bit of the first byte marks a big-endian binary number.
  if (field[0] & 0x80) {
    let value = field[0] & 0x7f;
    for (let i = 1; i < length; i++) {
      value = value * 256 + field[i];
    }
    return value;
  }
  const text = field.toString('ascii').replace(/\0.*$/s, '').trim();
  return text === '' ? 0 : parseInt(text, 8);
}

function tarChecksumOk(header) {
  let sum = 0;
  for (let i = 0; i < TAR_BLOCK; i++) {
    sum += i >= 148 && i < 156 ? 32 : header[i];
  }
  return sum === tarNumber(header, 148, 8);
}

function paxRecords(data) {
  const records = {};
  let offset = 0;
  while (offset < data.length) {
    const space = data.indexOf(32, offset);
    const length = parseInt(data.subarray(offset, space).toString('ascii'), 10);
    if (space === -1 || !(length > 0)) {
      throw new Error('bad pax header in the archive');
    }
    const record = data.subarray(space + 1, offset + length - 1).toString('utf8');
    const equals = record.indexOf('=');
    records[record.slice(0, equals)] = record.slice(equals + 1);
    offset += length;
  }
  return records;
}

// The archive's entries with pax and GNU long names applied; data stays in the buffer.
function tarEntries(buffer) {
  // Too short for one header: not a tar archive (a stray text file, a small gzip).
  if (buffer.length < TAR_BLOCK) {
    throw new Error('not a tar archive (' + buffer.length + ' bytes)');
  }
  const entries = [];
  let offset = 0;
  let next = {};
  while (offset + TAR_BLOCK <= buffer.length) {
    const header = buffer.subarray(offset, offset + TAR_BLOCK);
    if (header.every((byte) => byte === 0)) {
      break;
    }
    if (!tarChecksumOk(header)) {
      throw new Error('not a tar archive (bad header checksum at byte ' + offset + ')');
    }
    const type = String.fromCharCode(header[156] || 48);
    const size = tarNumber(header, 124, 12);
    const dataStart = offset + TAR_BLOCK;
    const data = buffer.subarray(dataStart, dataStart + size);
    if (data.length < size) {
      throw new Error('the archive is truncated');
    }
    offset = dataStart + Math.ceil(size / TAR_BLOCK) * TAR_BLOCK;
    if (type === 'x') {
      Object.assign(next, paxRecords(data));
      continue;
    }
    if (type === 'g') {
      continue;
    }
    if (type === 'L' || type === 'K') {
      next[type === 'L' ? 'path' : 'linkpath'] = tarText(data, 0, data.length);
      continue;
    }
    const ustar = header.subarray(257, 263).toString('ascii') === 'ustar\0';
    const prefix = ustar ? tarText(header, 345, 155) : '';
    const name = tarText(header, 0, 100);
    entries.push({
      type,
      name: next.path !== undefined ? next.path : (prefix === '' ? name : prefix + '/' + name),
      linkName: next.linkpath !== undefined ? next.linkpath : tarText(header, 157, 100),
      mode: tarNumber(header, 100, 8),
      data,
    });
    next = {};
  }
  return entries;
}

// A relative entry path without '.' parts; absolute paths and '..' parts are refused.
function safeEntryPath(name) {
  if (name.startsWith('/')) {
    throw new Error('the archive has an absolute path: ' + name);
  }
  const parts = name.split('/').filter((part) => part !== '' && part !== '.');
  if (parts.includes('..')) {
    throw new Error('the archive has a path outside the repo: ' + name);
  }
  return parts.join('/');
}

// Writing through a link the archive made could land anywhere, so no entry may pass one.
function checkNoLinkOnPath(entryPath, links) {
  const parts = entryPath.split('/');
  for (let i = 1; i < parts.length; i++) {
    const prefix = parts.slice(0, i).join('/');
    if (links.has(prefix)) {
      throw new Error('the archive writes through the link ' + prefix + ': ' + entryPath);
    }
  }
}

function clearForEntry(target, isDir) {
  let stat = null;
  try {
    stat = fs.lstatSync(target);
  } catch {
    return;
  }
  if (stat.isDirectory()) {
    if (!isDir) {
      throw new Error('the archive replaces a directory with a file: ' + target);
    }
    return;
  }
  fs.unlinkSync(target);
}

function writeEntryFile(target, data, mode) {
  const flags = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC |
    (fs.constants.O_NOFOLLOW || 0);
  const fd = fs.openSync(target, flags, mode);
  try {
    let written = 0;
    while (written < data.length) {
      written += fs.writeSync(fd, data, written, data.length - written);
    }
    fs.fchmodSync(fd, mode);
  } finally {
    fs.closeSync(fd);
  }
}

/** Extracts a tar archive into dir; returns the number of entries written. */
function extractTar(buffer, dir) {
  const links = new Set();
  const files = new Set();
  let count = 0;
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  for (const entry of tarEntries(buffer)) {
    const entryPath = safeEntryPath(entry.name);
    if (entryPath === '') {
      continue;
    }
    checkNoLinkOnPath(entryPath, links);
    const target = path.join(dir, entryPath);
    if (!target.startsWith(dir + path.sep)) {
      throw new Error('the archive has a path outside the repo: ' + entry.name);
    }
    fs.mkdirSync(path.dirname(target), { recursive: true, mode: 0o755 });
    const mode = (entry.mode & 0o777) | 0o600;
    if (entry.type === '5') {
      clearForEntry(target, true);
      fs.mkdirSync(target, { recursive: true, mode: mode | 0o700 });
    } else if (entry.type === '0' || entry.type === '7') {
      clearForEntry(target, false);
      writeEntryFile(target, entry.data, mode);
      files.add(entryPath);
    } else if (entry.type === '2') {
      clearForEntry(target, false);
      fs.symlinkSync(entry.linkName, target);
      links.add(entryPath);
    } else if (entry.type === '1') {
      const source = safeEntryPath(entry.linkName);
      if (!files.has(source)) {
        throw new Error('the archive links ' + entryPath + ' to a file it does not hold');
      }
      clearForEntry(target, false);
      fs.copyFileSync(path.join(dir, source), target);
      files.add(entryPath);
    } else {
      throw new Error('the archive has an entry of unsupported type ' + entry.type + ': ' +
        entry.name);
    }
    count += 1;
  }
  return count;
}

function takeRepoCreds() {
  const credsPath = path.join(jobDir, 'repo-creds.json');
  try {
    return JSON.parse(fs.readFileSync(credsPath, 'utf8'));
  } catch {
    return {};
  } finally {
    fs.rmSync(credsPath, { force: true });
  }
}

// Credentials must not reach a log or a job: every secret and URL password is masked.
function redactor(secrets, cloneUrl) {
  const hidden = secrets.filter((value) => typeof value === 'string' && value.length > 0);
  try {
    const url = new URL(cloneUrl);
    if (url.password !== '') {
      hidden.push(url.password);
    }
  } catch {
    // not a URL with a password (a path or an scp-like location)
  }
  return (text) => hidden.reduce((result, value) => result.split(value).join('***'), text);
}

function displayUrl(cloneUrl) {
  try {
    const url = new URL(cloneUrl);
    url.username = '';
    url.password = '';
    return url.toString();
  } catch {
    return cloneUrl;
  }
}

// Runs git in its own process group, which a stop request ends.
function runGit(args, options) {
  return new Promise((resolve, reject) => {
    let child;
    try {
      child = spawn('git', args, {
        cwd: options.cwd,
        env: options.env,
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (error) {
      reject(new Error('cannot run git: ' + error.message));
      return;
    }
    let output = '';
    let stopped = false;
    const keep = (data) => {
      output = (output + data.toString('utf8')).slice(-MAX_GIT_OUTPUT_CHARS);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('spawn', () => {
      writeState({ status: 'running', runnerPid: process.pid, pid: child.pid });
    });
    const watch = setInterval(() => {
      if (!stopped && stopRequested() !== null) {
        stopped = true;
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }, 200);
    child.on('error', (error) => {
      clearInterval(watch);
      reject(new Error(error.code === 'ENOENT'
        ? 'git is not installed on this host'
        : 'cannot run git: ' + error.message));
    });
    child.on('close', (code, signal) => {
      clearInterval(watch);
      // The agent may have signalled git's group itself before the watch saw the request.
      if (stopped || stopRequested() !== null) {
        reject(new RepoStopped('stopped'));
      } else if (code === 0) {
        resolve(output);
      } else {
        const detail = options.redact(output.trim()).slice(-500);
        const status = code !== null ? 'status ' + code : 'signal ' + signal;
        reject(new Error('git ' + args[0] + ' exited with ' + status +
          (detail === '' ? '' : ': ' + detail)));
      }
    });
  });
}

async function checkoutGit(repo, diff, creds) {
  const secretFiles = [];
  const env = Object.assign({}, process.env, { GIT_TERMINAL_PROMPT: '0' });
  if (creds.oauthToken) {
    const askpass = path.join(jobDir, 'git-askpass.sh');
    fs.writeFileSync(askpass, '#!/bin/sh\ncase "$1" in\n  Username*) echo x-access-token ;;\n' +
      '  *) printf "%s\\n" "$DSTACK_GIT_TOKEN" ;;\nesac\n', { mode: 0o700 });
    secretFiles.push(askpass);
    env.GIT_ASKPASS = askpass;
    env.DSTACK_GIT_TOKEN = creds.oauthToken;
  }
  if (creds.privateKey) {
    const keyPath = path.join(jobDir, 'git-key');
    const key = creds.privateKey.endsWith('\n') ? creds.privateKey : creds.privateKey + '\n';
    fs.writeFileSync(keyPath, key, { mode: 0o600 });
    secretFiles.push(keyPath);
    env.GIT_SSH_COMMAND = "ssh -i '" + keyPath + "' -o IdentitiesOnly=yes -o BatchMode=yes" +
      ' -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null';
  }
  const redact = redactor([creds.oauthToken, creds.privateKey], repo.cloneUrl);
  const options = { cwd: jobDir, env, redact };
  try {
    const clone = ['clone', '--quiet', '--recurse-submodules'];
    if (repo.branch) {
      clone.push('--branch=' + repo.branch);
    }
    if (repo.singleBranch) {
      clone.push('--single-branch');
    }
    runnerLog('cloning ' + redact(displayUrl(repo.cloneUrl)) +
      (repo.branch ? ' (branch ' + repo.branch + ')' : ''));
    await runGit(clone.concat(['--', repo.cloneUrl, repo.dir]), options);
  } finally {
    for (const file of secretFiles) {
      fs.rmSync(file, { force: true });
    }
  }
  const inRepo = Object.assign({}, options, { cwd: repo.dir });
  if (repo.hash) {
    if (!/^[0-9a-fA-F]{4,64}$/.test(repo.hash)) {
      throw new Error('not a commit hash: ' + repo.hash);
    }
    const head = (await runGit(['rev-parse', 'HEAD'], inRepo)).trim();
    if (head.toLowerCase() !== repo.hash.toLowerCase()) {
      await runGit(['-c', 'advice.detachedHead=false', 'checkout', '--quiet', repo.hash], inRepo);
    }
  }
  if (repo.configName) {
    await runGit(['config', 'user.name', repo.configName], inRepo);
  }
  if (repo.configEmail) {
    await runGit(['config', 'user.email', repo.configEmail], inRepo);
  }
  if (diff.length > 0) {
    const diffPath = path.join(jobDir, repo.blob);
    await runGit(['apply', '--whitespace=nowarn', diffPath], inRepo);
    runnerLog('applied the diff (' + diff.length + ' bytes)');
  }
  runnerLog('checked out ' + (repo.hash || repo.branch || 'the default branch') + ' into ' +
    repo.dir);
}

/** Puts the job's repo in place; rejects with RepoStopped when a stop came meanwhile. */
async function setupRepo(repo) {
  const creds = takeRepoCreds();
  const blobPath = repo.blob ? path.join(jobDir, repo.blob) : null;
  try {
    const blob = blobPath === null ? Buffer.alloc(0) : fs.readFileSync(blobPath);
    if (repo.kind === 'archive') {
      const count = extractTar(blob, repo.dir);
      runnerLog('extracted ' + count + ' entries of the repo archive into ' + repo.dir);
    } else {
      await checkoutGit(repo, blob, creds);
    }
  } finally {
    if (blobPath !== null) {
      fs.rmSync(blobPath, { force: true });
    }
  }
}
`;
