import { join } from 'node:path';
import { homedir } from 'node:os';
import { startHostApp } from './host-app.js';

const serverDir = process.env.DSTACK_SERVER_DIR ?? join(homedir(), '.dstack', 'server');
const port = Number(process.env.PORT ?? 3000);
const app = await startHostApp({ serverDir, port });

console.log(`host app at ${app.url}/app/hello and ${app.url}/app/runs`);
console.log(`dstack API at ${app.url}/api/ (data in ${serverDir})`);
console.log(`admin token: ${app.dstack.adminToken}`);

const stop = (): void => {
  void app.close().then(() => process.exit(0));
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
