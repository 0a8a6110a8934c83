import { parseWireTime } from '@dstack/core';
import type { KeysetQuery } from '@dstack/core';

/** The keyset fields `users/list` and `projects/list` share (§5). */
export const keysetProperties = {
  return_total_count: { type: 'boolean', default: false },
  name_pattern: { type: ['string', 'null'], pattern: '^[a-zA-Z0-9-_]*$', default: null },
  prev_created_at: { type: ['string', 'null'], format: 'date-time', default: null },
  prev_id: { type: ['string', 'null'], format: 'uuid', default: null },
  limit: { type: 'integer', minimum: 0, maximum: 2000, default: 2000 },
  ascending: { type: 'boolean', default: false },
} as const;

/** The validated keyset fields of a list body. */
export interface KeysetBody {
  return_total_count: boolean;
  name_pattern: string | null;
  prev_created_at: string | null;
  prev_id: string | null;
  limit: number;
  ascending: boolean;
}

/** The service form of a validated list body. */
export function keysetQueryOf(body: KeysetBody): KeysetQuery & {
  returnTotalCount: boolean;
  namePattern: string | null;
} {
  return {
    prevCreatedAt: body.prev_created_at === null ? null : parseWireTime(body.prev_created_at),
    prevId: body.prev_id === null ? null : body.prev_id.toLowerCase(),
    limit: body.limit,
    ascending: body.ascending,
    returnTotalCount: body.return_total_count,
    namePattern: body.name_pattern,
  };
}
