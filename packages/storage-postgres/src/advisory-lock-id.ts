import { createHash } from 'node:crypto';

const range = 2n ** 63n;

/**
 * The Postgres advisory lock id of a resource name, as the original computes it: the
 * SHA-256 of the name as an integer, modulo 2^63. Returned as a decimal string for `::bigint`.
 */
export function advisoryLockId(name: string): string {
  const digest = createHash('sha256').update(name, 'utf8').digest('hex');
  return (BigInt(`0x${digest}`) % range).toString();
}
