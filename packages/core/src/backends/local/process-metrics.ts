import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import type { AgentGpuMetrics, AgentMetricsSample } from '../../ports/backend-provider.js';

export interface ProcessMetricsOptions {
  /** The `nvidia-smi` asked for GPU use; a missing one means no GPUs. */
  nvidiaSmiPath?: string;
  timeoutMillis?: number;
}

interface ProcessUsage {
  pid: number;
  cpuTicks: number;
  rssBytes: number;
  fileBytes: number;
}

const mib = 1024 * 1024;

/**
 * A metrics sample of every process in a process group, read from `/proc`; null when the
 * group has no process left or there is no procfs. CPU time counts each process's own time
 * and that of the children it reaped, so it only grows while the group lives. Memory use is
 * the sum of the resident sets (shared pages count once per process). The original's working
 * set is its cgroup's memory less the inactive file cache; a process tells no active from
 * inactive file pages, so here it is the resident set less every file-backed page, a lower
 * bound of the original's figure.
 */
export async function sampleProcessGroup(
  pgid: number,
  options: ProcessMetricsOptions = {},
): Promise<AgentMetricsSample | null> {
  const timestampMicro = Math.round((performance.timeOrigin + performance.now()) * 1000);
  const processes = await groupProcesses(pgid);

  if (processes.length === 0) {
    return null;
  }

  const ticksPerSecond = await clockTicksPerSecond();
  let cpuTicks = 0;
  let rssBytes = 0;
  let fileBytes = 0;

  for (const usage of processes) {
    cpuTicks += usage.cpuTicks;
    rssBytes += usage.rssBytes;
    fileBytes += usage.fileBytes;
  }

  const pids = new Set(processes.map((usage) => usage.pid));

  return {
    timestampMicro,
    cpuUsageMicro: Math.round((cpuTicks * 1_000_000) / ticksPerSecond),
    memoryUsageBytes: rssBytes,
    memoryWorkingSetBytes: Math.max(0, rssBytes - fileBytes),
    gpus: await nvidiaGpuUsage(pids, options),
  };
}

async function groupProcesses(pgid: number): Promise<ProcessUsage[]> {
  let names: string[];

  try {
    names = await readdir('/proc');
  } catch {
    return [];
  }

  const found = await Promise.all(names
    .filter((name) => /^\d+$/.test(name))
    .map((name) => processUsage(Number(name), pgid)));

  return found.filter((usage): usage is ProcessUsage => usage !== null);
}

/** One process's usage when it belongs to the group; null otherwise or once it is gone. */
async function processUsage(pid: number, pgid: number): Promise<ProcessUsage | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces and parentheses; the fields start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');

    if (Number(fields[2]) !== pgid) {
      return null;
    }

    // utime, stime, cutime and cstime, in clock ticks.
    const cpuTicks = [11, 12, 13, 14].reduce((sum, index) => sum + Number(fields[index]), 0);
    const status = await readFile(`/proc/${pid}/status`, 'utf8');

    return {
      pid,
      cpuTicks,
      rssBytes: statusKib(status, 'VmRSS') * 1024,
      fileBytes: statusKib(status, 'RssFile') * 1024,
    };
  } catch {
    return null;
  }
}

function statusKib(status: string, name: string): number {
  const match = new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status);
  return match === null ? 0 : Number(match[1]);
}

let ticks: Promise<number> | null = null;

/** `getconf CLK_TCK`, asked once; Linux reports 100 nearly everywhere. */
function clockTicksPerSecond(): Promise<number> {
  ticks ??= new Promise((resolve) => {
    execFile('getconf', ['CLK_TCK'], { timeout: 5000 }, (error, stdout) => {
      const value = Number.parseInt(stdout, 10);
      resolve(error === null && value > 0 ? value : 100);
    });
  });

  return ticks;
}

function run(path: string, args: string[], timeoutMillis: number): Promise<string | null> {
  return new Promise((resolve) => {
    execFile(path, args, { timeout: timeoutMillis }, (error, stdout) => {
      resolve(error === null ? stdout : null);
    });
  });
}

/**
 * Every GPU `nvidia-smi` lists, in its order: the memory the group's processes hold on it,
 * and the GPU's utilization. Local jobs are not confined to their GPUs, so utilization is the
 * whole GPU's, other programs' work included. Empty without `nvidia-smi` or on any failure.
 */
async function nvidiaGpuUsage(
  pids: ReadonlySet<number>,
  options: ProcessMetricsOptions,
): Promise<AgentGpuMetrics[]> {
  const path = options.nvidiaSmiPath ?? 'nvidia-smi';
  const timeoutMillis = options.timeoutMillis ?? 5000;
  const format = '--format=csv,noheader,nounits';
  const gpuText = await run(path, ['--query-gpu=uuid,utilization.gpu', format], timeoutMillis);

  if (gpuText === null) {
    return [];
  }

  const appsText = await run(
    path,
    ['--query-compute-apps=pid,gpu_uuid,used_memory', format],
    timeoutMillis,
  );

  if (appsText === null) {
    return [];
  }

  const usedMib = new Map<string, number>();

  for (const [pid, uuid, memory] of csvRows(appsText)) {
    const mibUsed = Number(memory);

    if (pids.has(Number(pid)) && Number.isFinite(mibUsed)) {
      usedMib.set(uuid, (usedMib.get(uuid) ?? 0) + mibUsed);
    }
  }

  const gpus: AgentGpuMetrics[] = [];

  for (const [uuid, util] of csvRows(gpuText)) {
    const utilPercent = Number(util);

    if (uuid === undefined || util === undefined || !Number.isFinite(utilPercent)) {
      // "[N/A]" and the like: half a list would number the GPUs wrongly.
      return [];
    }

    gpus.push({ memoryUsageBytes: (usedMib.get(uuid) ?? 0) * mib, utilPercent });
  }

  return gpus;
}

function csvRows(text: string): string[][] {
  return text
    .split(/\r?\n/)
    .filter((line) => line.trim() !== '')
    .map((line) => line.split(',').map((field) => field.trim()));
}
