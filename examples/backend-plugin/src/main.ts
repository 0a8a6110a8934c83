import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runSandboxDemo } from './demo.js';

const serverDir = await mkdtemp(join(tmpdir(), 'dstack-plugin-'));

try {
  const result = await runSandboxDemo(serverDir, (text) => process.stdout.write(text));
  console.log(`run ${result.runName} on backend ${result.backend}: ${result.status}`);
  process.exitCode = result.status === 'done' ? 0 : 1;
} finally {
  await rm(serverDir, { recursive: true, force: true });
}
