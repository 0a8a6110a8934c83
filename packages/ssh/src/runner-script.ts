import { createHash } from 'node:crypto';

/**
 * The agent that runs jobs on an SSH fleet host: one Python 3 file, standard library only,
 * uploaded over SFTP. Each job gets a detached supervisor in its own session, so the job
 * outlives the SSH connection and the server; everything it knows lives in the job's directory.
 *
 * Job directory `jobs/<id>/`: `spec.json` (what to run), `events` (append-only JSON lines
 * `{"t": ms, "s": "o"|"e"|"r", "m": text}` with strictly increasing `t`), `state.json`
 * (replaced atomically; the final state is written only after the last event), `stop`
 * (`term` or `kill`, written by `stop`), `work/` (the job's own directory, where the repo is
 * checked out), and until the checkout `repo.blob` (moved in from `incoming/<id>.blob`) and
 * `repo-creds.json`.
 *
 * `metrics <id>` samples a running job's process group from /proc: CPU time (the processes'
 * own and their reaped children's), resident memory, and as the working set the resident
 * memory less its file-backed pages (the original subtracts its cgroup's inactive file cache,
 * which a process does not show); GPUs from `nvidia-smi` where there is one.
 */
export const runnerScript = String.raw`#!/usr/bin/env python3
# Job runner of a dstack server on an SSH fleet host. Standard library only.
import codecs
import hashlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import traceback

MAX_CHUNK_CHARS = 8192
PARTIAL_FLUSH_SECONDS = 0.5
LOOP_SECONDS = 0.2
AFTER_EXIT_DRAIN_SECONDS = 1.0
MAX_LEAD_MILLIS = 200
# When the streams alternate too fast for joining, reading pauses at this lead.
PAUSE_LEAD_MILLIS = 1000
# Output starts after this marker, so a login shell that prints a banner cannot confuse it.
MARKER = '@@dstack-runner@@'
STOPPED = 'terminated_by_user'
MAX_DURATION = 'max_duration_exceeded'


def reply(value):
    sys.stdout.write(MARKER + json.dumps(value) + '\n')
    sys.stdout.flush()


def agent_dir():
    return os.path.dirname(os.path.abspath(__file__))


def job_dir(job_id):
    if not re.match(r'^[A-Za-z0-9_-]{1,100}$', job_id):
        raise SystemExit('bad job id')
    return os.path.join(agent_dir(), 'jobs', job_id)


def now_millis():
    return int(time.time() * 1000)


def boot_id():
    try:
        with open('/proc/sys/kernel/random/boot_id') as f:
            return f.read().strip()
    except OSError:
        return None


def read_json(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def write_json_atomic(path, value):
    tmp = path + '.tmp'
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as f:
        json.dump(value, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Events:
    """The job's append-only event file; one writer, one os.write per line.

    Stamps are whole milliseconds and strictly increase, so a burst of lines would run one
    millisecond per line ahead of the clock. Past a small lead, text joins the newest event
    of its stream (up to a chunk's size) instead, and that event is held until flush().
    """

    def __init__(self, path):
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.last = 0
        self.held = None

    def lead_millis(self):
        return self.last - now_millis()

    def emit(self, source, text):
        held = self.held
        if (held is not None and held['s'] == source and self.lead_millis() >= MAX_LEAD_MILLIS
                and len(held['m']) + len(text) <= MAX_CHUNK_CHARS):
            held['m'] += text
            return
        self.flush()
        stamp = max(now_millis(), self.last + 1)
        self.last = stamp
        self.held = {'t': stamp, 's': source, 'm': text}
        if self.lead_millis() < MAX_LEAD_MILLIS:
            self.flush()

    def flush(self):
        if self.held is None:
            return
        line = json.dumps(self.held, separators=(',', ':'))
        self.held = None
        data = (line + '\n').encode('ascii')
        while data:
            data = data[os.write(self.fd, data):]


class Stream:
    """Turns a pipe's bytes into events: lines, or chunks of long or stalled lines."""

    def __init__(self, source, events):
        self.source = source
        self.events = events
        self.decoder = codecs.getincrementaldecoder('utf-8')('replace')
        self.buf = ''
        self.partial_since = None

    def feed(self, data):
        self.buf += self.decoder.decode(data, final=not data)
        while self.buf:
            end = self.buf.find('\n', 0, MAX_CHUNK_CHARS)
            if end >= 0:
                self.take(end + 1)
            elif len(self.buf) >= MAX_CHUNK_CHARS:
                self.take(MAX_CHUNK_CHARS)
            else:
                break
        if not data and self.buf:
            self.take(len(self.buf))
        if self.buf and self.partial_since is None:
            self.partial_since = time.monotonic()

    def flush_stalled(self):
        if self.buf and time.monotonic() - self.partial_since >= PARTIAL_FLUSH_SECONDS:
            self.take(len(self.buf))

    def take(self, count):
        self.events.emit(self.source, self.buf[:count])
        self.buf = self.buf[count:]
        self.partial_since = None


def pick_shell(shell):
    if shell and os.path.isabs(shell):
        return shell
    for name in ([shell] if shell else ['bash', 'sh']):
        found = shutil.which(name)
        if found:
            return found
    return '/bin/sh'


def signal_group(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class RepoError(Exception):
    pass


class RepoStopped(Exception):
    pass


def safe_entry_path(name):
    # A relative path without '.' parts; absolute paths and '..' parts are refused.
    if name.startswith('/'):
        raise RepoError('the archive has an absolute path: %s' % name)
    parts = [part for part in name.split('/') if part not in ('', '.')]
    if '..' in parts:
        raise RepoError('the archive has a path outside the repo: %s' % name)
    return '/'.join(parts)


def clear_for_entry(target, is_dir):
    try:
        mode = os.lstat(target).st_mode
    except FileNotFoundError:
        return
    if stat_is_dir(mode):
        if not is_dir:
            raise RepoError('the archive replaces a directory with a file: %s' % target)
        return
    os.unlink(target)


def stat_is_dir(mode):
    return (mode & 0o170000) == 0o040000


def extract_tar(path, dest):
    os.makedirs(dest, exist_ok=True)
    if os.path.getsize(path) == 0:
        return 0
    links, files, count = set(), set(), 0
    try:
        tar = tarfile.open(path, 'r:')
    except tarfile.TarError as error:
        raise RepoError('not a tar archive: %s' % error)
    with tar:
        for member in tar:
            entry = safe_entry_path(member.name)
            if not entry:
                continue
            parts = entry.split('/')
            for i in range(1, len(parts)):
                # Writing through a link the archive made could land anywhere.
                if '/'.join(parts[:i]) in links:
                    raise RepoError('the archive writes through the link %s: %s'
                                    % ('/'.join(parts[:i]), entry))
            target = os.path.join(dest, entry)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            mode = (member.mode & 0o777) | 0o600
            if member.isdir():
                clear_for_entry(target, True)
                os.makedirs(target, mode | 0o700, exist_ok=True)
            elif member.isreg():
                clear_for_entry(target, False)
                flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, 'O_NOFOLLOW', 0)
                source = tar.extractfile(member)
                with os.fdopen(os.open(target, flags, mode), 'wb') as out:
                    shutil.copyfileobj(source, out)
                    os.fchmod(out.fileno(), mode)
                files.add(entry)
            elif member.issym():
                clear_for_entry(target, False)
                os.symlink(member.linkname, target)
                links.add(entry)
            elif member.islnk():
                source = safe_entry_path(member.linkname)
                if source not in files:
                    raise RepoError('the archive links %s to a file it does not hold' % entry)
                clear_for_entry(target, False)
                shutil.copyfile(os.path.join(dest, source), target)
                files.add(entry)
            else:
                raise RepoError('the archive has an entry of unsupported type: %s' % member.name)
            count += 1
    return count


def take_repo_creds(d):
    path = os.path.join(d, 'repo-creds.json')
    creds = read_json(path, {})
    try:
        os.unlink(path)
    except OSError:
        pass
    return creds


def redactor(secrets, clone_url):
    # Credentials must not reach a log or a job: every secret and URL password is masked.
    hidden = [value for value in secrets if value]
    match = re.match(r'^[a-z][a-z0-9+.-]*://[^/@:]*:([^/@]+)@', clone_url, re.I)
    if match:
        hidden.append(match.group(1))

    def redact(text):
        for value in hidden:
            text = text.replace(value, '***')
        return text
    return redact


def display_url(clone_url):
    return re.sub(r'^([a-z][a-z0-9+.-]*://)[^/@]*@', r'\1', clone_url, flags=re.I)


def stop_requested(d):
    return os.path.exists(os.path.join(d, 'stop'))


def run_git(d, args, cwd, env, redact):
    try:
        proc = subprocess.Popen(
            ['git'] + args, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    except FileNotFoundError:
        raise RepoError('git is not installed on this host')
    stopped = False
    while True:
        try:
            out, _ = proc.communicate(timeout=LOOP_SECONDS)
            break
        except subprocess.TimeoutExpired:
            if not stopped and stop_requested(d):
                stopped = True
                signal_group(proc.pid, signal.SIGKILL)
    if stopped or stop_requested(d):
        raise RepoStopped()
    text = out.decode('utf-8', 'replace')
    if proc.returncode != 0:
        detail = redact(text.strip())[-500:]
        status = ('status %d' % proc.returncode if proc.returncode >= 0
                  else 'signal %d' % -proc.returncode)
        raise RepoError('git %s exited with %s%s'
                        % (args[0], status, ': ' + detail if detail else ''))
    return text


def checkout_git(d, repo, blob, creds, events):
    env = {k: v for k, v in os.environ.items() if not k.startswith('SSH_')}
    env['GIT_TERMINAL_PROMPT'] = '0'
    secret_files = []
    if creds.get('oauth_token'):
        askpass = os.path.join(d, 'git-askpass.sh')
        fd = os.open(askpass, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o700)
        with os.fdopen(fd, 'w') as f:
            f.write('#!/bin/sh\ncase "$1" in\n  Username*) echo x-access-token ;;\n'
                    '  *) printf "%s\\n" "$DSTACK_GIT_TOKEN" ;;\nesac\n')
        secret_files.append(askpass)
        env['GIT_ASKPASS'] = askpass
        env['DSTACK_GIT_TOKEN'] = creds['oauth_token']
    if creds.get('private_key'):
        key_path = os.path.join(d, 'git-key')
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'w') as f:
            f.write(creds['private_key'].rstrip('\n') + '\n')
        secret_files.append(key_path)
        env['GIT_SSH_COMMAND'] = (
            "ssh -i '%s' -o IdentitiesOnly=yes -o BatchMode=yes"
            ' -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null' % key_path)
    redact = redactor([creds.get('oauth_token'), creds.get('private_key')], repo['clone_url'])
    try:
        clone = ['clone', '--quiet', '--recurse-submodules']
        if repo.get('branch'):
            clone.append('--branch=' + repo['branch'])
        if repo.get('single_branch'):
            clone.append('--single-branch')
        events.emit('r', 'cloning %s%s\n' % (redact(display_url(repo['clone_url'])),
                    ' (branch %s)' % repo['branch'] if repo.get('branch') else ''))
        events.flush()
        run_git(d, clone + ['--', repo['clone_url'], repo['dir']], d, env, redact)
    finally:
        for path in secret_files:
            try:
                os.unlink(path)
            except OSError:
                pass
    commit = repo.get('hash')
    if commit:
        if not re.match(r'^[0-9a-fA-F]{4,64}$', commit):
            raise RepoError('not a commit hash: %s' % commit)
        head = run_git(d, ['rev-parse', 'HEAD'], repo['dir'], env, redact).strip()
        if head.lower() != commit.lower():
            run_git(d, ['-c', 'advice.detachedHead=false', 'checkout', '--quiet', commit],
                    repo['dir'], env, redact)
    if repo.get('config_name'):
        run_git(d, ['config', 'user.name', repo['config_name']], repo['dir'], env, redact)
    if repo.get('config_email'):
        run_git(d, ['config', 'user.email', repo['config_email']], repo['dir'], env, redact)
    if os.path.exists(blob) and os.path.getsize(blob) > 0:
        run_git(d, ['apply', '--whitespace=nowarn', blob], repo['dir'], env, redact)
        events.emit('r', 'applied the diff (%d bytes)\n' % os.path.getsize(blob))


def setup_repo(d, repo, events):
    creds = take_repo_creds(d)
    blob = os.path.join(d, 'repo.blob')
    try:
        if repo.get('blob') and not os.path.exists(blob):
            raise RepoError('the repo code did not reach the host')
        if repo['kind'] == 'archive':
            count = extract_tar(blob, repo['dir']) if os.path.exists(blob) else 0
            events.emit('r', 'extracted %d entries of the repo archive into %s\n'
                        % (count, repo['dir']))
        else:
            checkout_git(d, repo, blob, creds, events)
            events.emit('r', 'checked out %s into %s\n'
                        % (repo.get('hash') or repo.get('branch') or 'the default branch',
                           repo['dir']))
    finally:
        try:
            os.unlink(blob)
        except OSError:
            pass


def finish_early(d, events, status, reason, message):
    events.emit('r', message + '\n')
    events.flush()
    write_json_atomic(os.path.join(d, 'state.json'), {
        'status': status, 'exit_status': None, 'termination_reason': reason,
        'message': message, 'finished_at': now_millis()})


def supervise(job_id):
    d = job_dir(job_id)
    spec = read_json(os.path.join(d, 'spec.json'))
    events = Events(os.path.join(d, 'events'))
    own_dir = os.path.join(d, 'work')
    working_dir = os.path.normpath(os.path.join(own_dir, spec.get('working_dir') or '.'))
    repo = spec.get('repo')
    repo_dir = own_dir
    if repo:
        repo_dir = os.path.normpath(os.path.join(own_dir, repo.get('path') or '.'))
        repo['dir'] = repo_dir
        # Running while the checkout takes its time; stop requests are honoured meanwhile.
        write_json_atomic(os.path.join(d, 'state.json'), {
            'status': 'running', 'supervisor_pid': os.getpid(), 'boot_id': boot_id(),
            'started_at': now_millis()})
        try:
            if repo_dir != own_dir and not repo_dir.startswith(own_dir + os.sep):
                raise RepoError("the repo path %s is outside the job's directory" % repo['path'])
            setup_repo(d, repo, events)
        except RepoStopped:
            finish_early(d, events, 'terminated', STOPPED, 'the job was stopped before it started')
            return
        except (RepoError, OSError) as error:
            message = 'Failed to set up the repo (%s)' % error
            finish_early(d, events, 'failed', 'container_exited_with_error', message)
            return
        if stop_requested(d):
            finish_early(d, events, 'terminated', STOPPED, 'the job was stopped before it started')
            return
    os.makedirs(working_dir, exist_ok=True)
    script = os.path.join(d, 'script.sh')
    with open(script, 'w') as f:
        for command in spec['commands']:
            f.write(command + '\n_rc=$?; [ "$_rc" -eq 0 ] || exit "$_rc"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith('SSH_')}
    env['PYTHONUNBUFFERED'] = '1'
    env.update(read_json(os.path.join(agent_dir(), 'host-env.json'), {}))
    env.update(spec.get('env') or {})
    env['DSTACK_REPO_DIR'] = repo_dir
    env['DSTACK_WORKING_DIR'] = working_dir
    shell = pick_shell(spec.get('shell'))
    try:
        proc = subprocess.Popen(
            [shell, script], cwd=working_dir, env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True)
    except OSError as error:
        message = 'cannot start the shell %s: %s' % (shell, error.strerror or error)
        events.emit('r', message + '\n')
        events.flush()
        write_json_atomic(os.path.join(d, 'state.json'), {
            'status': 'failed', 'exit_status': None, 'termination_reason': 'executor_error',
            'message': message, 'finished_at': now_millis()})
        return
    started = time.time()
    state = {'status': 'running', 'pgid': proc.pid, 'supervisor_pid': os.getpid(),
             'boot_id': boot_id(), 'started_at': now_millis()}
    write_json_atomic(os.path.join(d, 'state.json'), state)
    events.emit('r', 'job started in %s\n' % working_dir)
    streams = {proc.stdout.fileno(): Stream('o', events), proc.stderr.fileno(): Stream('e', events)}
    poller = select.poll()
    for fd in streams:
        os.set_blocking(fd, False)
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    max_duration = spec.get('max_duration')
    grace = spec.get('stop_grace_seconds') or 10
    reason = None
    term_sent_at = None
    exited_at = None
    while streams:
        for fd, _ in poller.poll(LOOP_SECONDS * 1000):
            stream = streams.get(fd)
            if stream is None:
                continue
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                continue
            stream.feed(data)
            if not data:
                poller.unregister(fd)
                del streams[fd]
        for stream in streams.values():
            stream.flush_stalled()
        events.flush()
        lead = events.lead_millis()
        if lead >= PAUSE_LEAD_MILLIS:
            time.sleep((lead - MAX_LEAD_MILLIS) / 1000.0)
        now = time.time()
        request = ''
        try:
            with open(os.path.join(d, 'stop')) as f:
                request = f.read().strip()
        except OSError:
            pass
        if request and reason is None:
            reason = STOPPED
        if request == 'kill':
            signal_group(proc.pid, signal.SIGKILL)
        elif request == 'term' and term_sent_at is None:
            signal_group(proc.pid, signal.SIGTERM)
            term_sent_at = now
        if max_duration and reason is None and now - started > max_duration:
            reason = MAX_DURATION
            events.emit('r', 'max_duration of %ss exceeded, stopping the job\n' % max_duration)
            signal_group(proc.pid, signal.SIGTERM)
            term_sent_at = now
        if reason == MAX_DURATION and now - term_sent_at > grace:
            signal_group(proc.pid, signal.SIGKILL)
        if exited_at is None and proc.poll() is not None:
            exited_at = now
        # Background children that keep the pipes open end with the job.
        if exited_at is not None and now - exited_at > AFTER_EXIT_DRAIN_SECONDS:
            signal_group(proc.pid, signal.SIGKILL)
            for fd, stream in list(streams.items()):
                stream.feed(b'')
                poller.unregister(fd)
                del streams[fd]
    code = proc.wait()
    exit_status = code if code >= 0 else 128 - code
    if reason is not None:
        status, message = 'terminated', None
    elif exit_status == 0:
        status, reason, message = 'done', 'done_by_runner', None
    else:
        status, reason = 'failed', 'container_exited_with_error'
        message = 'exit status %d' % exit_status
    events.emit('r', 'job exited with status %d\n' % exit_status)
    events.flush()
    state.update({'status': status, 'exit_status': exit_status, 'termination_reason': reason,
                  'message': message, 'finished_at': now_millis()})
    write_json_atomic(os.path.join(d, 'state.json'), state)


def cmd_submit(job_id):
    spec = json.load(sys.stdin)
    os.makedirs(os.path.join(agent_dir(), 'jobs'), mode=0o700, exist_ok=True)
    d = job_dir(job_id)
    incoming = os.path.join(agent_dir(), 'incoming', job_id + '.blob')
    creds = spec.pop('repo_creds', None)
    try:
        os.mkdir(d, 0o700)
    except FileExistsError:
        try:
            os.unlink(incoming)
        except OSError:
            pass
        reply({'submitted': False})
        return
    if os.path.exists(incoming):
        os.replace(incoming, os.path.join(d, 'repo.blob'))
    if creds:
        write_json_atomic(os.path.join(d, 'repo-creds.json'), creds)
    write_json_atomic(os.path.join(d, 'spec.json'), spec)
    os.mkdir(os.path.join(d, 'work'), 0o700)
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork() > 0:
            os._exit(0)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        null = os.open(os.devnull, os.O_RDONLY)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        log = os.open(os.path.join(d, 'supervisor.log'), flags, 0o600)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        try:
            supervise(job_id)
        except BaseException as error:
            traceback.print_exc()
            write_json_atomic(os.path.join(d, 'state.json'), {
                'status': 'failed', 'exit_status': None, 'termination_reason': 'executor_error',
                'message': 'the runner failed: %s' % error, 'finished_at': now_millis()})
        os._exit(0)
    os.waitpid(pid, 0)
    deadline = time.time() + 10
    while not os.path.exists(os.path.join(d, 'state.json')) and time.time() < deadline:
        time.sleep(0.02)
    reply({'submitted': True})


def current_state(d):
    state = read_json(os.path.join(d, 'state.json'))
    if state is None:
        return None
    if state['status'] == 'running':
        gone = state.get('boot_id') != boot_id() or not alive(state['supervisor_pid'])
        # Read again: the supervisor may have finished between the two reads.
        state = read_json(os.path.join(d, 'state.json'))
        if gone and state['status'] == 'running':
            state.update({'status': 'failed', 'exit_status': None,
                          'termination_reason': 'executor_error',
                          'message': 'the job supervisor is gone (host restarted or killed)'})
    return state


def cmd_pull(job_id, offset, max_bytes):
    d = job_dir(job_id)
    if not os.path.isdir(d):
        reply({'known': False})
        return
    # The state first: a final state guarantees that every event is already in the file.
    state = current_state(d)
    data = b''
    size = 0
    try:
        with open(os.path.join(d, 'events'), 'rb') as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(offset)
            data = f.read(max_bytes)
            if data and b'\n' not in data:
                # One event larger than a page still goes out whole.
                data += f.readline()
    except OSError:
        pass
    data = data[:data.rfind(b'\n') + 1]
    header = {'known': True, 'state': state, 'next': offset + len(data),
              'has_more': offset + len(data) < size}
    out = sys.stdout.buffer
    out.write(MARKER.encode('ascii') + json.dumps(header).encode('ascii') + b'\n')
    out.write(data)
    out.flush()


def request_stop(d, kind):
    state = read_json(os.path.join(d, 'state.json'))
    if state is not None and state['status'] != 'running':
        return
    path = os.path.join(d, 'stop')
    try:
        with open(path) as f:
            if f.read().strip() == 'kill':
                return
    except OSError:
        pass
    with open(path + '.tmp', 'w') as f:
        f.write(kind)
    os.replace(path + '.tmp', path)


def wait_finished(d, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        state = current_state(d)
        if state is None or state['status'] != 'running':
            return
        time.sleep(0.05)


def cmd_stop(job_id, kind):
    d = job_dir(job_id)
    if os.path.isdir(d):
        request_stop(d, 'kill' if kind == 'kill' else 'term')
    reply({'ok': True})


def cmd_remove(job_id):
    d = job_dir(job_id)
    try:
        # Code uploaded for a submit that never reached the host.
        os.unlink(os.path.join(agent_dir(), 'incoming', job_id + '.blob'))
    except OSError:
        pass
    if os.path.isdir(d):
        request_stop(d, 'kill')
        wait_finished(d, 10)
        shutil.rmtree(d, ignore_errors=True)
    reply({'ok': True})


def cmd_stop_all():
    jobs = os.path.join(agent_dir(), 'jobs')
    names = os.listdir(jobs) if os.path.isdir(jobs) else []
    for name in names:
        request_stop(os.path.join(jobs, name), 'kill')
    for name in names:
        wait_finished(os.path.join(jobs, name), 10)
    reply({'ok': True, 'jobs': len(names)})


def status_kib(status, name):
    match = re.search(r'^%s:\s+(\d+)' % name, status, re.M)
    return int(match.group(1)) if match else 0


def group_usage(pgid):
    # Every process of the group: CPU ticks (its own and its reaped children's), resident
    # and file-backed resident memory in bytes.
    pids, ticks, rss, file_backed = set(), 0, 0, 0
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % name) as f:
                stat = f.read()
            fields = stat[stat.rindex(')') + 2:].split(' ')
            if int(fields[2]) != pgid:
                continue
            cpu = sum(int(fields[i]) for i in (11, 12, 13, 14))
            with open('/proc/%s/status' % name) as f:
                status = f.read()
        except (OSError, ValueError, IndexError):
            continue
        pids.add(int(name))
        ticks += cpu
        rss += status_kib(status, 'VmRSS') * 1024
        file_backed += status_kib(status, 'RssFile') * 1024
    return pids, ticks, rss, file_backed


def csv_rows(args):
    out = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, timeout=5, check=True).stdout
    lines = out.decode('utf-8', 'replace').splitlines()
    return [[field.strip() for field in line.split(',')] for line in lines if line.strip()]


def nvidia_gpus(pids):
    # Each GPU in nvidia-smi's order: the memory the group's processes hold on it and the
    # whole GPU's utilization. Empty without nvidia-smi or when it fails.
    smi = shutil.which('nvidia-smi')
    if not smi:
        return []
    csv = '--format=csv,noheader,nounits'
    try:
        gpus = csv_rows([smi, '--query-gpu=uuid,utilization.gpu', csv])
        apps = csv_rows([smi, '--query-compute-apps=pid,gpu_uuid,used_memory', csv])
    except (OSError, subprocess.SubprocessError):
        return []
    used = {}
    for row in apps:
        if len(row) >= 3 and row[0].isdigit() and int(row[0]) in pids and row[2].isdigit():
            used[row[1]] = used.get(row[1], 0) + int(row[2])
    result = []
    for row in gpus:
        if len(row) < 2 or not row[1].isdigit():
            # "[N/A]" and the like: half a list would number the GPUs wrongly.
            return []
        result.append({'gpu_memory_usage_bytes': used.get(row[0], 0) * 1024 * 1024,
                       'gpu_util_percent': int(row[1])})
    return result


def cmd_metrics(job_id):
    d = job_dir(job_id)
    state = current_state(d) if os.path.isdir(d) else None
    if state is None or state['status'] != 'running' or not state.get('pgid'):
        reply({'available': False})
        return
    stamp = int(time.time() * 1000000)
    pids, ticks, rss, file_backed = group_usage(state['pgid'])
    if not pids:
        reply({'available': False})
        return
    reply({'available': True, 'timestamp_micro': stamp,
           'cpu_usage_micro': ticks * 1000000 // os.sysconf('SC_CLK_TCK'),
           'memory_usage_bytes': rss, 'memory_working_set_bytes': max(0, rss - file_backed),
           'gpus': nvidia_gpus(pids)})


def cmd_health():
    with open(os.path.abspath(__file__), 'rb') as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    reply({'ok': True, 'sha256': digest, 'python': sys.version.split()[0]})


def main(argv):
    command = argv[1] if len(argv) > 1 else ''
    if command == 'submit':
        cmd_submit(argv[2])
    elif command == 'pull':
        cmd_pull(argv[2], int(argv[3]), int(argv[4]))
    elif command == 'stop':
        cmd_stop(argv[2], argv[3])
    elif command == 'remove':
        cmd_remove(argv[2])
    elif command == 'stop-all':
        cmd_stop_all()
    elif command == 'metrics':
        cmd_metrics(argv[2])
    elif command == 'health':
        cmd_health()
    else:
        raise SystemExit('usage: runner.py submit|pull|stop|remove|stop-all|metrics|health ...')


if __name__ == '__main__':
    main(sys.argv)
`;

/** SHA-256 of the runner as uploaded; the agent re-uploads a runner whose digest differs. */
export const runnerScriptSha256 = createHash('sha256').update(runnerScript).digest('hex');
