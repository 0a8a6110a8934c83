import { describe, expect, it } from 'vitest';
import {
  createCipher,
  createMemoryStateStore,
  encryptedColumns,
  parseStoredValue,
  reencryptStore,
} from '@dstack/core';
import type { Cipher, ReencryptProgress, StateStore } from '@dstack/core';

const secretOf = (byte: number): string => Buffer.alloc(32, byte).toString('base64');
const key1 = { type: 'aes', name: 'key1', secret: secretOf(1) } as const;
const key2 = { type: 'aes', name: 'key2', secret: secretOf(2) } as const;

async function seed(store: StateStore, cipher: Cipher, count: number): Promise<void> {
  for (let index = 0; index < count; index += 1) {
    await store.insert('secrets', {
      id: `00000000-0000-4000-8000-${String(index).padStart(12, '0')}`,
      projectId: 'p',
      name: `s${index}`,
      value: cipher.encrypt(`value-${index}`),
      createdAt: index,
      updatedAt: index,
    });
  }

  await store.insert('backends', {
    id: 'b1', projectId: 'p', type: 'runpod', config: {}, auth: cipher.encrypt('{"k":1}'),
    sourceConfig: {}, sourceAuth: null,
  });
}

async function keysOf(store: StateStore): Promise<string[]> {
  const secrets = await store.find('secrets');
  const backends = await store.find('backends');
  const values = [
    ...secrets.map((row) => row.value),
    ...backends.flatMap((row) => [row.auth, row.sourceAuth]),
  ];

  return values
    .filter((value): value is string => value !== null)
    .map((value) => parseStoredValue(value)!.keyName);
}

describe('reencryptStore', () => {
  it('lists the encrypted columns of every table', () => {
    expect(encryptedColumns).toEqual({
      users: ['token', 'sshPrivateKey'],
      projects: ['sshPrivateKey'],
      backends: ['auth', 'sourceAuth'],
      secrets: ['value'],
      repos: ['creds'],
      repo_creds: ['creds'],
      instances: ['remoteConnectionInfo'],
    });
  });

  it('rewrites old values with the first key, reports counts and is safe to repeat', async () => {
    const store = createMemoryStateStore();
    await seed(store, createCipher([key1]), 5);
    await store.insert('secrets', {
      id: 'ffffffff-0000-4000-8000-000000000000', projectId: 'p', name: 'plain',
      value: 'enc:identity:noname:plain-value', createdAt: 9, updatedAt: 9,
    });
    const rotated = createCipher([key2, key1]);
    const progress: ReencryptProgress[] = [];

    const reports = await reencryptStore(store, rotated, {
      batchSize: 2,
      onProgress: (p) => progress.push(p),
    });

    const secrets = reports.find((report) => report.table === 'secrets')!;
    expect(secrets).toEqual({
      table: 'secrets', rows: 6, rewritten: { 'aes:key1': 5, 'identity:noname': 1 }, current: 0,
      failed: {}, conflicts: 0,
    });
    expect(reports.find((report) => report.table === 'backends')!.rewritten).toEqual({
      'aes:key1': 1,
    });
    expect(progress.filter((p) => p.table === 'secrets')).toEqual([
      { table: 'secrets', rowsDone: 2, rowsTotal: 6 },
      { table: 'secrets', rowsDone: 4, rowsTotal: 6 },
      { table: 'secrets', rowsDone: 6, rowsTotal: 6 },
    ]);
    expect(new Set(await keysOf(store))).toEqual(new Set(['key2']));

    const onlyKey2 = createCipher([key2]);
    const values = (await store.find('secrets', { orderBy: [['name', 'asc']] }))
      .map((row) => onlyKey2.decrypt(row.value));
    expect(values).toEqual(['plain-value', 'value-0', 'value-1', 'value-2', 'value-3', 'value-4']);

    const again = await reencryptStore(store, rotated);
    expect(again.find((report) => report.table === 'secrets')).toMatchObject({
      rewritten: {}, current: 6,
    });
  });

  it('counts values no key can decrypt and leaves them as they are', async () => {
    const store = createMemoryStateStore();
    await seed(store, createCipher([key1]), 2);
    const before = await store.find('secrets');

    const reports = await reencryptStore(store, createCipher([key2]));

    expect(reports.find((report) => report.table === 'secrets')).toMatchObject({
      rewritten: {}, failed: { 'aes:key1': 2 },
    });
    expect(await store.find('secrets')).toEqual(before);
  });

  it('never overwrites a value the server wrote while it ran', async () => {
    const store = createMemoryStateStore();
    const rotated = createCipher([key2, key1]);
    await seed(store, createCipher([key1]), 1);
    let raced = false;
    // A store whose first guarded update loses a race with a request that set a new value.
    const racing: StateStore = Object.create(store, {
      update: {
        value: async (...args: Parameters<StateStore['update']>) => {
          if (!raced && args[0] === 'secrets') {
            raced = true;
            await store.update('secrets', { name: 's0' }, {
              value: createCipher([key1]).encrypt('written-meanwhile'),
            });
          }

          return store.update(...args);
        },
      },
    });

    const reports = await reencryptStore(racing, rotated);

    const [row] = await store.find('secrets');
    expect(rotated.decrypt(row.value)).toBe('written-meanwhile');
    expect(parseStoredValue(row.value)!.keyName).toBe('key2');
    expect(reports.find((report) => report.table === 'secrets')).toMatchObject({
      rows: 1, rewritten: { 'aes:key1': 1 }, conflicts: 0,
    });
  });
});
