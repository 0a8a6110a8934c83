import { beforeEach, describe, expect, it } from 'vitest';
import { eventTarget, listEvents, recordEvent } from '@dstack/core';
import type { ListEventsRequest, ProjectRecord, UserRecord } from '@dstack/core';
import {
  addProject,
  addUser,
  createCapturingLogger,
  createTestContext,
} from '../crypto/test-context.js';
import type { TestContext } from '../crypto/test-context.js';

let ctx: TestContext;
let admin: UserRecord;
let member: UserRecord;
let busy: ProjectRecord;
let quiet: ProjectRecord;
let clock: number;

const request = (overrides: Partial<ListEventsRequest> = {}): ListEventsRequest => ({
  targetProjects: null, targetUsers: null, targetFleets: null, targetInstances: null,
  targetRuns: null, targetJobs: null, withinProjects: null, withinFleets: null,
  withinRuns: null, includeTargetTypes: null, actors: null, prevRecordedAt: null,
  prevId: null, limit: 100, ascending: false, ...overrides,
});

beforeEach(async () => {
  clock = 1_700_000_000_000;
  ctx = { ...createTestContext(), now: () => (clock += 1) };
  admin = await addUser(ctx, 'admin', 'admin');
  member = await addUser(ctx, 'member', 'user');
  busy = await addProject(ctx, 'busy', admin);
  quiet = await addProject(ctx, 'quiet', admin);
  await ctx.store.insert('members', {
    id: crypto.randomUUID(), projectId: quiet.id, userId: member.id, projectRole: 'user',
    memberNum: 1,
  });
});

describe('recordEvent', () => {
  it('trims the message and its trailing dot, and logs it', async () => {
    const lines: string[] = [];
    const logged = { ...ctx, logger: createCapturingLogger(lines) };
    await recordEvent(logged, ctx.store, ' Run stopped.\n', admin, [eventTarget.project(busy)]);

    const [event] = await ctx.store.find('events', {});
    expect(event).toMatchObject({ message: 'Run stopped', actorUserId: admin.id });
    expect(lines.some((line) => line.includes('Run stopped'))).toBe(true);
  });

  it('refuses an event without targets or message', async () => {
    await expect(recordEvent(ctx, ctx.store, 'X', null, [])).rejects.toThrow();
    await expect(recordEvent(ctx, ctx.store, ' . ', null, [eventTarget.user(admin)]))
      .rejects.toThrow();
  });
});

describe('listEvents over many events', () => {
  beforeEach(async () => {
    // Far more events than one scan batch, most of them in a project the member cannot see.
    const rows = Array.from({ length: 1300 }, (_, index) => ({
      id: crypto.randomUUID(),
      message: `Event ${index}`,
      recordedAt: clock + index,
      actorUserId: null,
      targets: [index % 100 === 0 ? eventTarget.project(quiet) : eventTarget.project(busy)],
    }));
    await ctx.store.insert('events', rows);
  });

  it('finds the few visible events past several batches of hidden ones', async () => {
    const seen = await listEvents(ctx, member, request());
    expect(seen.map((event) => event.message)).toEqual(
      [1200, 1100, 1000, 900, 800, 700, 600, 500, 400, 300, 200, 100, 0]
        .map((index) => `Event ${index}`),
    );
  });

  it('pages the filtered events with their own cursor', async () => {
    const first = await listEvents(ctx, member, request({ limit: 5, ascending: true }));
    expect(first.map((event) => event.message)).toEqual(
      ['Event 0', 'Event 100', 'Event 200', 'Event 300', 'Event 400'],
    );

    const last = first[4]!;
    const next = await listEvents(ctx, member, request({
      limit: 5,
      ascending: true,
      prevRecordedAt: Date.parse(last.recorded_at),
      prevId: last.id,
    }));
    expect(next.map((event) => event.message)).toEqual(
      ['Event 500', 'Event 600', 'Event 700', 'Event 800', 'Event 900'],
    );
  });

  it('lets a global admin see all of them', async () => {
    const page = await listEvents(ctx, admin, request({ limit: 100 }));
    expect(page).toHaveLength(100);
    expect(page[0]!.message).toBe('Event 1299');
  });
});
