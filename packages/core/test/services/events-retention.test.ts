import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { deleteExpiredEvents, eventTarget, recordEvent, startScheduler } from '@dstack/core';
import type { Scheduler, UserRecord } from '@dstack/core';
import { addUser, createTestContext } from '../crypto/test-context.js';
import type { TestContext } from '../crypto/test-context.js';

const day = 24 * 3600 * 1000;
const now = 1_800_000_000_000;
let ctx: TestContext;
let admin: UserRecord;

async function addEventAt(recordedAt: number, message: string): Promise<void> {
  await ctx.store.insert('events', {
    id: crypto.randomUUID(), message, recordedAt, actorUserId: null,
    targets: [eventTarget.user(admin)],
  });
}

async function messages(): Promise<string[]> {
  const rows = await ctx.store.find('events', { orderBy: [['recordedAt', 'asc']] });
  return rows.map((row) => row.message);
}

beforeEach(async () => {
  ctx = { ...createTestContext(), now: () => now };
  admin = await addUser(ctx, 'admin', 'admin');
});

describe('deleteExpiredEvents', () => {
  it('keeps 30 days of events when no TTL is set', async () => {
    await addEventAt(now - 31 * day, 'a month and a day old');
    await addEventAt(now - 30 * day - 1, 'just past 30 days');
    await addEventAt(now - 30 * day + 1, 'just inside 30 days');
    await addEventAt(now - 1000, 'recent');

    expect(await deleteExpiredEvents(ctx)).toBe(2);
    expect(await messages()).toEqual(['just inside 30 days', 'recent']);
  });

  it('applies the configured TTL, and twice in a row deletes nothing more', async () => {
    ctx.settings.eventsTtlSeconds = 3600;
    await addEventAt(now - 2 * 3600 * 1000, 'two hours old');
    await addEventAt(now - 1800 * 1000, 'half an hour old');

    expect(await deleteExpiredEvents(ctx)).toBe(1);
    expect(await deleteExpiredEvents(ctx)).toBe(0);
    expect(await messages()).toEqual(['half an hour old']);
  });
});

describe('recordEvent with a TTL of 0', () => {
  it('stores no event, as the original turns event storage off', async () => {
    ctx.settings.eventsTtlSeconds = 0;
    await recordEvent(ctx, ctx.store, 'Run stopped', admin, [eventTarget.user(admin)]);

    expect(await messages()).toEqual([]);
  });
});

describe('the scheduler', () => {
  let scheduler: Scheduler | null = null;

  afterEach(async () => {
    await scheduler?.stop();
    scheduler = null;
  });

  it('deletes expired events on its cleanup interval', async () => {
    ctx.settings.eventsTtlSeconds = 60;
    await addEventAt(now - 120_000, 'expired');
    await addEventAt(now - 30_000, 'fresh');
    scheduler = startScheduler(ctx, { eventsCleanupMillis: 20, maxIdleMillis: 20 });
    const deadline = Date.now() + 10_000;

    while ((await messages()).length > 1 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }

    expect(await messages()).toEqual(['fresh']);
  });
});
