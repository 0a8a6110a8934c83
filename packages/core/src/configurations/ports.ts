import type { PortMapping } from '../domain/configurations.js';
import { configurationError, isPlainObject, type FieldPath } from './configuration-error.js';

function checkPort(port: number, path: FieldPath): number {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw configurationError(path, 'must be a port number from 1 to 65535');
  }

  return port;
}

/**
 * Reads a port mapping: `8080` (the same port on both sides), `"80:8080"`, `"*:8080"` (any
 * local port) or `{local_port?, container_port}`.
 */
export function parsePortMapping(value: unknown, path: FieldPath): PortMapping {
  if (typeof value === 'number') {
    return { local_port: checkPort(value, path), container_port: checkPort(value, path) };
  }

  if (typeof value === 'string') {
    const match = /^(?:(\d+|\*):)?(\d+)$/.exec(value);
    if (!match) {
      throw configurationError(path, `invalid port mapping: '${value}'`);
    }

    const containerPort = checkPort(Number(match[2]), path);
    const local = match[1];
    const localPort = local === undefined ? containerPort : local === '*' ? null : Number(local);

    return {
      local_port: localPort === null ? null : checkPort(localPort, path),
      container_port: containerPort,
    };
  }

  if (!isPlainObject(value)) {
    throw configurationError(path, 'invalid port mapping');
  }

  return {
    local_port:
      value.local_port == null
        ? null
        : checkPort(Number(value.local_port), [...path, 'local_port']),
    container_port: checkPort(Number(value.container_port), [...path, 'container_port']),
  };
}

/** A service's `port`: a bare number N is the container port, published on port 80. */
export function parseServicePort(value: unknown, path: FieldPath): PortMapping {
  if (typeof value === 'number') {
    return { local_port: 80, container_port: checkPort(value, path) };
  }

  return parsePortMapping(value, path);
}
