import type { OfferAvailability } from './resources.js';

/** How `gpus/list` may group its rows. */
export type GpuGroupBy = 'backend' | 'region' | 'count';

/**
 * One row of `gpus/list`. The grouping decides which of `backends`, `backend`, `regions`
 * and `region` are present; the others are left out of the response.
 */
export interface WireGpuGroup {
  name: string;
  memory_mib: number;
  vendor: string;
  availability: OfferAvailability[];
  spot: ('spot' | 'on-demand')[];
  count: { min: number; max: number };
  price: { min: number; max: number };
  backends?: string[];
  backend?: string;
  regions?: string[];
  region?: string;
}

/** The `gpus/list` response. */
export interface WireGpusList {
  gpus: WireGpuGroup[];
}
