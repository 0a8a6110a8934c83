import { runnerRepoSource } from './runner-repo-source.js';

/**
 * The local backend's runner: a small detached CommonJS program that runs one job and
 * records what it does in the job's directory. It ships as a string so that it runs the
 * same from sources and from `dist`; the agent writes it to disk before the first job.
 *
 * Files in the job directory (`argv[2]`):
 * - `job.json`      read: `{ shell, script, env, cwd, createCwd, maxDurationSeconds, repo }`
 * - `repo.blob`, `repo-creds.json`  read and removed: the repo's code and clone credentials
 * - `job.sh`        written: the script, which the shell runs from the file
 * - `events.jsonl`  appended: `{"t":ms,"p":"job"|"runner","s":"stdout"|"stderr","m":text}`,
 *                   one event per line, `t` strictly increasing over the whole file
 * - `state.json`    replaced atomically: running (with pids), then the final state
 * - `stop.json`     written by the agent before it signals the job's process group
 */
export const localRunnerSource = String.raw`'use strict';
const fs = require('node:fs');
const path = require('node:path');
const os = require('node:os');
const { spawn } = require('node:child_process');

const jobDir = process.argv[2];
const eventsPath = path.join(jobDir, 'events.jsonl');
const statePath = path.join(jobDir, 'state.json');
const stopPath = path.join(jobDir, 'stop.json');
const PARTIAL_FLUSH_MILLIS = 200;
const WRITE_FLUSH_MILLIS = 20;
const MAX_PENDING_LINE_BYTES = 8 * 1024 * 1024;
const MAX_PENDING_WRITE_BYTES = 1024 * 1024;
const KILL_GRACE_MILLIS = 10000;
const DRAIN_MILLIS = 2000;
const MAX_LEAD_MILLIS = 200;
const PAUSE_LEAD_MILLIS = 1000;
const MAX_JOINED_CHARS = 64 * 1024;
const MAX_TIMER_MILLIS = 2147483647;

const eventsFd = fs.openSync(eventsPath, 'a', 0o600);
let lastTimestamp = 0;
let pendingWrite = [];
let pendingWriteBytes = 0;
let writeTimer = null;
let openEvent = null;
let readingPaused = false;
let child = null;
let finished = false;
let terminationReason = null;
let terminationMessage = null;

// Stamps are whole milliseconds, strictly increasing, so a burst of lines would run one
// millisecond per line ahead of the clock. Past a small lead, a line joins the newest event
// of its stream instead (original dstack logs are chunks of output too); when the streams
// alternate too fast for that, reading pauses until the clock catches up.
function emit(producer, source, message) {
  if (message.length === 0) {
    return;
  }
  const lead = lastTimestamp - Date.now();
  if (lead >= MAX_LEAD_MILLIS && openEvent !== null && openEvent.p === producer &&
      openEvent.s === source && openEvent.m.length + message.length <= MAX_JOINED_CHARS) {
    openEvent.m += message;
    return;
  }
  if (lead >= PAUSE_LEAD_MILLIS) {
    pauseReading(lead - MAX_LEAD_MILLIS);
  }
  closeEvent();
  openEvent = { t: nextTimestamp(), p: producer, s: source, m: message };
  if (writeTimer === null) {
    writeTimer = setTimeout(flushWrites, WRITE_FLUSH_MILLIS);
  }
}

function nextTimestamp() {
  const now = Date.now();
  lastTimestamp = now > lastTimestamp ? now : lastTimestamp + 1;
  return lastTimestamp;
}

function closeEvent() {
  if (openEvent === null) {
    return;
  }
  const event = openEvent;
  openEvent = null;
  const line = '{"t":' + event.t + ',"p":' + JSON.stringify(event.p) + ',"s":' +
    JSON.stringify(event.s) + ',"m":' + JSON.stringify(event.m) + '}\n';
  pendingWrite.push(line);
  pendingWriteBytes += line.length;
  if (pendingWriteBytes >= MAX_PENDING_WRITE_BYTES) {
    flushWrites();
  }
}

function flushWrites() {
  if (writeTimer !== null) {
    clearTimeout(writeTimer);
    writeTimer = null;
  }
  closeEvent();
  if (pendingWrite.length === 0) {
    return;
  }
  const data = Buffer.from(pendingWrite.join(''), 'utf8');
  pendingWrite = [];
  pendingWriteBytes = 0;
  let offset = 0;
  while (offset < data.length) {
    offset += fs.writeSync(eventsFd, data, offset, data.length - offset);
  }
}

function pauseReading(millis) {
  if (readingPaused || child === null) {
    return;
  }
  readingPaused = true;
  child.stdout.pause();
  child.stderr.pause();
  setTimeout(() => {
    readingPaused = false;
    child.stdout.resume();
    child.stderr.resume();
  }, millis);
}

function runnerLog(message) {
  emit('runner', 'stdout', new Date().toISOString() + ' ' + message + '\n');
}

function writeState(state) {
  const tmp = statePath + '.tmp';
  fs.writeFileSync(tmp, JSON.stringify(state), { mode: 0o600 });
  fs.renameSync(tmp, statePath);
}

// Length of the longest prefix that does not end inside a UTF-8 sequence.
function completeUtf8Length(buffer) {
  const end = buffer.length;
  for (let back = 1; back <= 3 && back <= end; back++) {
    const byte = buffer[end - back];
    if ((byte & 0xc0) === 0x80) {
      continue;
    }
    if (byte >= 0xc0) {
      const needed = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : 2;
      return needed > back ? end - back : end;
    }
    return end;
  }
  return end;
}

function createLineSplitter(source) {
  let chunks = [];
  let size = 0;
  let timer = null;

  function takePending() {
    const buffer = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size);
    chunks = [];
    size = 0;
    return buffer;
  }

  function keep(buffer) {
    if (buffer.length > 0) {
      chunks = [buffer];
      size = buffer.length;
    }
  }

  function flushPartial(all) {
    if (timer !== null) {
      clearTimeout(timer);
      timer = null;
    }
    if (size === 0) {
      return;
    }
    const buffer = takePending();
    const cut = all ? buffer.length : completeUtf8Length(buffer);
    emit('job', source, buffer.subarray(0, cut).toString('utf8'));
    keep(buffer.subarray(cut));
  }

  function push(data) {
    let start = 0;
    let newline = data.indexOf(10, start);
    while (newline !== -1) {
      const piece = data.subarray(start, newline + 1);
      if (size > 0) {
        chunks.push(piece);
        size += piece.length;
        emit('job', source, takePending().toString('utf8'));
      } else {
        emit('job', source, piece.toString('utf8'));
      }
      start = newline + 1;
      newline = data.indexOf(10, start);
    }
    if (start < data.length) {
      const rest = Buffer.from(data.subarray(start));
      chunks.push(rest);
      size += rest.length;
    }
    if (size >= MAX_PENDING_LINE_BYTES) {
      flushPartial(false);
    }
    if (size === 0 && timer !== null) {
      clearTimeout(timer);
      timer = null;
    } else if (size > 0 && timer === null) {
      timer = setTimeout(() => {
        timer = null;
        flushPartial(false);
      }, PARTIAL_FLUSH_MILLIS);
    }
  }

  return { push, end: () => flushPartial(true) };
}

// Node runs a timer of more than 2^31-1 ms after 1 ms, so a far deadline is reached by
// re-arming in steps that it takes as given.
function atDeadline(deadline, action) {
  const remaining = deadline - Date.now();
  if (remaining <= 0) {
    action();
    return;
  }
  setTimeout(() => atDeadline(deadline, action), Math.min(remaining, MAX_TIMER_MILLIS)).unref();
}

function signalGroup(signal) {
  if (child === null || child.pid === undefined) {
    return;
  }
  try {
    process.kill(-child.pid, signal);
  } catch (error) {
    if (error.code !== 'ESRCH') {
      runnerLog('cannot send ' + signal + ': ' + error.message);
    }
  }
}

function stopRequested() {
  try {
    return JSON.parse(fs.readFileSync(stopPath, 'utf8'));
  } catch {
    return null;
  }
}

function finish(state) {
  if (finished) {
    return;
  }
  finished = true;
  runnerLog(state.message || ('job finished: ' + state.status));
  flushWrites();
  fs.closeSync(eventsFd);
  writeState(Object.assign({ finishedAt: Date.now() }, state));
  process.exit(0);
}

function finalState(code, signal) {
  const exitStatus = code !== null ? code : 128 + (os.constants.signals[signal] || 0);
  if (terminationReason !== null) {
    return { status: 'terminated', exitStatus, terminationReason, message: terminationMessage };
  }
  if (stopRequested() !== null) {
    return {
      status: 'terminated',
      exitStatus,
      terminationReason: 'terminated_by_user',
      message: 'the job was stopped' + (signal ? ' (' + signal + ')' : ''),
    };
  }
  if (exitStatus === 0) {
    return { status: 'done', exitStatus, terminationReason: 'done_by_runner', message: null };
  }
  return {
    status: 'failed',
    exitStatus,
    terminationReason: 'container_exited_with_error',
    message: signal
      ? 'the job was killed by ' + signal
      : 'the job exited with status ' + exitStatus,
  };
}

function failToStart(reason) {
  finish({
    status: 'failed',
    exitStatus: null,
    terminationReason: 'executor_error',
    message: 'failed to start the job: ' + reason,
  });
}

${runnerRepoSource}
function failRepo(error) {
  if (error instanceof RepoStopped) {
    finish({
      status: 'terminated',
      exitStatus: null,
      terminationReason: 'terminated_by_user',
      message: 'the job was stopped before it started',
    });
    return;
  }
  runnerLog('repo setup failed: ' + error.message);
  finish({
    status: 'failed',
    exitStatus: null,
    terminationReason: 'container_exited_with_error',
    message: 'Failed to set up the repo (' + error.message + ')',
  });
}

function main() {
  let job;
  try {
    job = JSON.parse(fs.readFileSync(path.join(jobDir, 'job.json'), 'utf8'));
  } catch (error) {
    failToStart('cannot read job.json: ' + error.message);
    return;
  }
  if (stopRequested() !== null) {
    finish({
      status: 'terminated',
      exitStatus: null,
      terminationReason: 'terminated_by_user',
      message: 'the job was stopped before it started',
    });
    return;
  }
  if (job.repo) {
    setupRepo(job.repo).then(() => startJob(job), failRepo);
    return;
  }
  startJob(job);
}

function startJob(job) {
  if (stopRequested() !== null) {
    finish({
      status: 'terminated',
      exitStatus: null,
      terminationReason: 'terminated_by_user',
      message: 'the job was stopped before it started',
    });
    return;
  }
  if (job.createCwd) {
    try {
      fs.mkdirSync(job.cwd, { recursive: true });
    } catch (error) {
      failToStart('cannot create the working directory ' + job.cwd + ': ' + error.message);
      return;
    }
  }
  if (!fs.existsSync(job.cwd) || !fs.statSync(job.cwd).isDirectory()) {
    failToStart('working directory ' + job.cwd + ' does not exist');
    return;
  }
  runnerLog('starting ' + job.shell + ' in ' + job.cwd);
  const stdout = createLineSplitter('stdout');
  const stderr = createLineSplitter('stderr');
  // A file, not a '-c' argument: the kernel refuses a single argument over 128 KiB.
  const scriptPath = path.join(jobDir, 'job.sh');
  try {
    fs.writeFileSync(scriptPath, job.script + '\n', { mode: 0o600 });
  } catch (error) {
    failToStart('cannot write ' + scriptPath + ': ' + error.message);
    return;
  }
  try {
    child = spawn(job.shell, [scriptPath], {
      cwd: job.cwd,
      env: job.env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (error) {
    failToStart(job.shell + ': ' + error.message);
    return;
  }
  let started = false;
  let exited = null;
  let openPipes = 2;
  child.on('spawn', () => {
    started = true;
    writeState({
      status: 'running',
      runnerPid: process.pid,
      pid: child.pid,
      startedAt: Date.now(),
    });
    // A stop that came while the job was starting has no process group to signal yet.
    const stop = stopRequested();
    if (stop !== null) {
      signalGroup(stop.force ? 'SIGKILL' : 'SIGTERM');
    }
    if (job.maxDurationSeconds !== null && job.maxDurationSeconds !== undefined) {
      atDeadline(Date.now() + job.maxDurationSeconds * 1000, () => {
        terminationReason = 'max_duration_exceeded';
        terminationMessage = 'max_duration of ' + job.maxDurationSeconds + 's exceeded';
        runnerLog(terminationMessage + ', stopping the job');
        signalGroup('SIGTERM');
        setTimeout(() => signalGroup('SIGKILL'), KILL_GRACE_MILLIS).unref();
      });
    }
  });
  child.on('error', (error) => {
    if (!started) {
      failToStart(job.shell + ': ' + error.message);
    } else {
      runnerLog('job process error: ' + error.message);
    }
  });
  function maybeFinish() {
    if (exited !== null && openPipes === 0) {
      finish(finalState(exited.code, exited.signal));
    }
  }
  function onPipeClosed(splitter) {
    splitter.end();
    openPipes -= 1;
    maybeFinish();
  }
  child.stdout.on('data', (data) => stdout.push(data));
  child.stderr.on('data', (data) => stderr.push(data));
  child.stdout.on('close', () => onPipeClosed(stdout));
  child.stderr.on('close', () => onPipeClosed(stderr));
  child.on('exit', (code, signal) => {
    exited = { code, signal };
    // Like a container: processes the job left behind end with it.
    signalGroup('SIGTERM');
    setTimeout(() => {
      signalGroup('SIGKILL');
      setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
      }, DRAIN_MILLIS).unref();
    }, DRAIN_MILLIS).unref();
    maybeFinish();
  });
  const forward = (signal) => {
    if (child !== null) {
      signalGroup(signal);
    }
  };
  process.on('SIGTERM', () => forward('SIGTERM'));
  process.on('SIGINT', () => forward('SIGINT'));
  process.on('SIGHUP', () => undefined);
}

process.on('uncaughtException', (error) => {
  if (finished) {
    process.exit(1);
  }
  try {
    runnerLog('runner error: ' + (error && error.stack ? error.stack : String(error)));
    signalGroup('SIGKILL');
    finish({
      status: 'failed',
      exitStatus: null,
      terminationReason: 'executor_error',
      message: 'runner error: ' + (error && error.message ? error.message : String(error)),
    });
  } catch {
    process.exit(1);
  }
});

main();
`;
