import type { BackendProvider } from './ports/backend-provider.js';
import type { Cipher } from './ports/cipher.js';
import type { LogStore } from './ports/log-store.js';
import type { Logger } from './ports/logger.js';
import type { StateStore } from './ports/state-store.js';
import type { CoreSettings } from './settings.js';

/** Everything a domain service needs: the ports, already built, and the settings. */
export interface CoreContext {
  store: StateStore;
  logs: LogStore;
  cipher: Cipher;
  /** Backend providers by type. */
  providers: ReadonlyMap<string, BackendProvider>;
  logger: Logger;
  settings: CoreSettings;
  /** The current time in epoch milliseconds; tests pass a fake one. */
  now: () => number;
  /** Wakes the background pipelines of a table early (after an API write). */
  hint?: (table: string) => void;
}
