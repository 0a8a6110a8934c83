import { describe, expect, it } from 'vitest';
import {
  clientVersionForPatches,
  effectiveRunSpec,
  isOffersOnlyPlan,
  parseFleetSpec,
  parseRunSpec,
  patchFleetSpecForClient,
  patchRunSpecForClient,
  type ServiceConfiguration,
  type TaskConfiguration,
} from '@dstack/core';

const task = parseRunSpec({
  configuration: { type: 'task', commands: ['x'], fleets: ['gpus', 'team/big'] },
  profile: { fleets: [{ project: 'team', name: 'other' }] },
});

const service = parseRunSpec({
  configuration: { type: 'service', commands: ['x'], port: 80, gateway: 'team/gw' },
});

describe('client versions', () => {
  it('skips dev, latest, missing and unparsable versions', () => {
    expect(clientVersionForPatches(undefined)).toBeNull();
    expect(clientVersionForPatches(null)).toBeNull();
    expect(clientVersionForPatches('latest')).toBeNull();
    expect(clientVersionForPatches('0.0.0')).toBeNull();
    expect(clientVersionForPatches('0.0.0.dev1')).toBeNull();
    expect(clientVersionForPatches('version1')).toBeNull();
    expect(clientVersionForPatches('0.20.14')).toEqual([0, 20, 14, 1]);
    expect(clientVersionForPatches('0.20.14rc1')).toEqual([0, 20, 14, 0]);
  });

  it('returns the spec untouched for dev clients', () => {
    expect(patchRunSpecForClient(task, 'latest')).toBe(task);
    expect(patchRunSpecForClient(task, undefined)).toBe(task);
  });
});

describe('run spec patches', () => {
  it('gives tasks without groups or nodes nodes: 1 for any versioned client', () => {
    expect((task.configuration as TaskConfiguration).nodes).toBeNull();
    const patched = patchRunSpecForClient(task, '0.21.0');
    expect((patched.configuration as TaskConfiguration).nodes).toBe(1);
    expect((task.configuration as TaskConfiguration).nodes).toBeNull();
    const groups = [{ commands: ['a'] }];
    const grouped = parseRunSpec({ configuration: { type: 'task', groups } });
    expect((patchRunSpecForClient(grouped, '0.21.0').configuration as TaskConfiguration).nodes)
      .toBeNull();
  });

  it('sends fleet references as strings to clients older than 0.20.14', () => {
    const old = patchRunSpecForClient(task, '0.20.13');
    expect(old.configuration.fleets).toEqual(['gpus', 'team/big']);
    expect(old.profile?.fleets).toEqual(['team/other']);
    const preRelease = patchRunSpecForClient(task, '0.20.14rc1');
    expect(preRelease.configuration.fleets).toEqual(['gpus', 'team/big']);
    const current = patchRunSpecForClient(task, '0.20.14');
    expect(current.configuration.fleets).toEqual([
      { project: null, name: 'gpus' },
      { project: 'team', name: 'big' },
    ]);
  });

  it('patches service probes, https and gateway for old clients', () => {
    const old = patchRunSpecForClient(service, '0.20.7').configuration as ServiceConfiguration;
    expect(old.probes).toEqual([]);
    expect(old.https).toBe(true);
    expect(old.gateway).toBe('team/gw');
    const mid = patchRunSpecForClient(service, '0.20.12').configuration as ServiceConfiguration;
    expect(mid.probes).toBeNull();
    expect(mid.https).toBeNull();
    expect(mid.gateway).toBe('team/gw');
    const current = patchRunSpecForClient(service, '0.20.20').configuration as ServiceConfiguration;
    expect(current.gateway).toEqual({ project: 'team', name: 'gw' });
  });

  it('patches fleet spec profiles', () => {
    const spec = parseFleetSpec({
      configuration: { type: 'fleet', nodes: 1 },
      profile: { fleets: ['a', 'p/b'] },
    });
    expect(patchFleetSpecForClient(spec, '0.20.0').profile.fleets).toEqual(['a', 'p/b']);
    expect(patchFleetSpecForClient(spec, '0.21.0').profile.fleets).toEqual([
      { project: null, name: 'a' },
      { project: 'p', name: 'b' },
    ]);
  });

  it('treats the ":" task of old clients as an offers-only plan', () => {
    const configuration = { type: 'task', commands: [':'] };
    const probe = effectiveRunSpec(parseRunSpec({ configuration }));
    expect(isOffersOnlyPlan(probe, false, '0.20.30')).toBe(true);
    expect(isOffersOnlyPlan(probe, false, '0.21.0')).toBe(false);
    expect(isOffersOnlyPlan(probe, false, undefined)).toBe(false);
    expect(isOffersOnlyPlan(task, true, '0.21.0')).toBe(true);
    expect(isOffersOnlyPlan(task, false, '0.20.30')).toBe(false);
  });
});
