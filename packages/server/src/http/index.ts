export { createHttpApp } from './app.js';
export type { HttpAppOptions } from './app.js';
export { requireGlobalAdmin, requireProject, requireUser, bearerToken } from './auth.js';
export type { ProjectScope } from './auth.js';
export { parseBody, validateBody } from './validation.js';
export type { JsonSchema, ValidateBodyOptions } from './validation.js';
export {
  checkClientVersion,
  InvalidVersionError,
  isDevVersion,
  parseVersion,
} from './api-version.js';
export type { ParsedVersion } from './api-version.js';
export { parseJsonBody } from './json-body.js';
