import { decodeRow, decodeValue, encodeRow, toSnakeCase } from '@dstack/storage-sql';
import type { SqlDialect } from '@dstack/storage-sql';
import { describe, expect, it } from 'vitest';

const zeroOne = {
  encodeBoolean: (value: boolean) => (value ? 1 : 0),
  encodeTime: (millis: number) => millis,
} as SqlDialect;

const native = {
  encodeBoolean: (value: boolean) => value,
  encodeTime: (millis: number) => new Date(millis),
} as SqlDialect;

describe('column codec', () => {
  it('maps record names to snake_case', () => {
    expect(toSnakeCase('lastProcessedAt')).toBe('last_processed_at');
    expect(toSnakeCase('id')).toBe('id');
    expect(toSnakeCase('sshPrivateKey')).toBe('ssh_private_key');
  });

  it('encodes by column kind for each dialect and drops undefined', () => {
    const patch = {
      unreachable: true,
      lastProcessedAt: 1_700_000_000_123,
      instanceType: { name: 'x', resources: [1] },
      price: 0.5,
      region: undefined,
      offer: null,
    };

    expect(encodeRow(zeroOne, 'instances', patch)).toEqual({
      unreachable: 1,
      last_processed_at: 1_700_000_000_123,
      instance_type: '{"name":"x","resources":[1]}',
      price: 0.5,
      offer: null,
    });
    expect(encodeRow(native, 'instances', patch).last_processed_at).toEqual(
      new Date(1_700_000_000_123),
    );
    expect(encodeRow(native, 'instances', patch).unreachable).toBe(true);
  });

  it('rejects a column the table does not have', () => {
    expect(() => encodeRow(zeroOne, 'runs', { nope: 1 })).toThrow(
      'unknown column nope on table runs',
    );
  });

  it('decodes what either driver returns', () => {
    expect(decodeValue('integer', '9007199254740991')).toBe(9007199254740991);
    expect(decodeValue('time', new Date(5))).toBe(5);
    expect(decodeValue('time', '1700000000000')).toBe(1_700_000_000_000);
    expect(decodeValue('boolean', 0)).toBe(false);
    expect(decodeValue('boolean', 1)).toBe(true);
    expect(decodeValue('boolean', false)).toBe(false);
    expect(decodeValue('json', '{"a":[1,null]}')).toEqual({ a: [1, null] });
    expect(decodeValue('json', null)).toBeNull();
    expect(decodeValue('real', '1.5')).toBe(1.5);
  });

  it('fills every record column when decoding a row', () => {
    const row = decodeRow('members', {
      id: 'm',
      project_id: 'p',
      user_id: 'u',
      project_role: 'admin',
      member_num: '3',
    });

    expect(row).toEqual({
      id: 'm',
      projectId: 'p',
      userId: 'u',
      projectRole: 'admin',
      memberNum: 3,
    });
  });
});
