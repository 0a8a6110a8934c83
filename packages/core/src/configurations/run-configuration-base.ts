import type {
  BaseRunConfiguration,
  FilePathMapping,
  MountPoint,
  PythonVersion,
  RepoSpec,
} from '../domain/configurations.js';
import { configurationError, type FieldPath } from './configuration-error.js';
import { parseEnv } from './env.js';
import { normaliseProfileParams } from './profile.js';
import { parseResourcesAt } from './resources.js';

type Input = Record<string, unknown>;

const PYTHON_VERSIONS: readonly PythonVersion[] = ['3.9', '3.10', '3.11', '3.12', '3.13', '3.14'];

export function textOrNull(value: unknown): string | null {
  return value == null ? null : String(value);
}

export function stringList(value: unknown): string[] {
  return Array.isArray(value) ? value.map(String) : [];
}

/** Reads `python`; YAML reads `3.10` as the number 3.1, which means "3.10". */
export function parsePython(value: unknown, path: FieldPath): PythonVersion | null {
  if (value == null) {
    return null;
  }

  let version = String(value);
  if (typeof value === 'number' && version === '3.1') {
    version = '3.10';
  }

  if (!(PYTHON_VERSIONS as readonly string[]).includes(version)) {
    throw configurationError(path, `must be one of: ${PYTHON_VERSIONS.join(', ')}`);
  }

  return version as PythonVersion;
}

/** Checks `user` in Docker's `user[:group]` form, each part a name or a non-negative id. */
function validateUnixUser(value: string, path: FieldPath): void {
  const parts = value.split(':');
  let problem: string | null = null;
  if (parts.length > 2) {
    problem = 'too many parts';
  } else if (parts[0] === '') {
    problem = 'empty user name or id';
  } else if (/^-\d+$/.test(parts[0])) {
    problem = `negative uid ${parts[0]}`;
  } else if (parts.length === 2 && parts[1] === '') {
    problem = 'empty group name or id';
  } else if (parts.length === 2 && /^-\d+$/.test(parts[1])) {
    problem = `negative gid ${parts[1]}`;
  }

  if (problem !== null) {
    throw configurationError(path, `invalid user format: ${problem}`);
  }
}

function validateShell(value: string, path: FieldPath): void {
  if (value !== 'sh' && value !== 'bash' && !value.startsWith('/')) {
    throw configurationError(path, 'the value must be `sh`, `bash`, or an absolute path');
  }
}

/** Normalises an absolute container or host path the way a POSIX path object prints it. */
function mountPath(value: string, path: FieldPath): string {
  if (value === '') {
    throw configurationError(path, 'empty path');
  }

  if (!value.startsWith('/')) {
    throw configurationError(path, `path must be absolute: ${value}`);
  }

  const parts = value.split('/').filter((part) => part !== '' && part !== '.');
  if (parts.includes('..')) {
    throw configurationError(path, `.. are not allowed: ${value}`);
  }

  return `/${parts.join('/')}`;
}

function parseMountPoint(value: unknown, path: FieldPath): MountPoint {
  if (typeof value === 'string') {
    const parts = value.split(':');
    if (parts.length !== 2) {
      throw configurationError(path, `invalid mount point format: ${value}`);
    }

    const [source, target] = parts;
    if (source.includes('/')) {
      return {
        instance_path: mountPath(source, path),
        path: mountPath(target, path),
        optional: false,
      };
    }

    return { name: source, path: mountPath(target, path) };
  }

  const mount = value as Input;
  if ('instance_path' in mount) {
    return {
      instance_path: mountPath(String(mount.instance_path), [...path, 'instance_path']),
      path: mountPath(String(mount.path), [...path, 'path']),
      optional: mount.optional === true,
    };
  }

  return {
    name: Array.isArray(mount.name) ? mount.name.map(String) : String(mount.name),
    path: mountPath(String(mount.path), [...path, 'path']),
  };
}

function isWindowsDrivePath(parts: string[]): boolean {
  return parts.length > 1 && /^[a-zA-Z]$/.test(parts[0]) && /^[\\/]/.test(parts[1]);
}

function parseRepoShorthand(value: string, path: FieldPath): Input {
  let parts = value.split(':');
  let isUrl = false;
  if (parts.length > 1) {
    if (parts[0].includes('@') || parts[1].startsWith('//')) {
      parts = [`${parts[0]}:${parts[1]}`, ...parts.slice(2)];
      isUrl = true;
    } else if (isWindowsDrivePath(parts)) {
      parts = [`${parts[0]}:${parts[1]}`, ...parts.slice(2)];
    }
  }

  if (parts.length > 2) {
    throw configurationError(path, `invalid repo: ${value}`);
  }

  const repo: Input = isUrl ? { url: parts[0] } : { local_path: parts[0] };
  if (parts.length === 2) {
    repo.path = parts[1];
  }

  return repo;
}

function parseRepo(value: unknown, path: FieldPath): RepoSpec {
  const repo = typeof value === 'string' ? parseRepoShorthand(value, path) : (value as Input);
  const localPath = textOrNull(repo.local_path);
  const url = textOrNull(repo.url);
  if (localPath && url) {
    throw configurationError(path, '`local_path` and `url` are mutually exclusive');
  }

  if (!localPath && !url) {
    throw configurationError(path, 'either `local_path` or `url` must be specified');
  }

  const repoPath = repo.path == null ? '.' : String(repo.path);
  if (repoPath.startsWith('~') && repoPath.split('/')[0] !== '~') {
    throw configurationError([...path, 'path'], '`~username` syntax is not supported');
  }

  return {
    local_path: localPath,
    url,
    branch: textOrNull(repo.branch),
    hash: textOrNull(repo.hash),
    path: repoPath,
    if_exists: repo.if_exists === 'skip' ? 'skip' : 'error',
  };
}

function parseFileMapping(value: unknown, path: FieldPath): FilePathMapping {
  let mapping: FilePathMapping;
  if (typeof value === 'string') {
    let parts = value.split(':');
    if (isWindowsDrivePath(parts)) {
      parts = [`${parts[0]}:${parts[1]}`, ...parts.slice(2)];
    }

    if (parts.length > 2) {
      throw configurationError(path, `invalid file path mapping: ${value}`);
    }

    mapping = { local_path: parts[0], path: parts[parts.length - 1] };
  } else {
    const object = value as Input;
    mapping = { local_path: String(object.local_path), path: String(object.path) };
  }

  if (/^[a-zA-Z]:[\\/]/.test(mapping.path) || /^\\\\[^\\]+\\[^\\]+/.test(mapping.path)) {
    throw configurationError(path, `path must be a Unix file path: ${mapping.path}`);
  }

  return mapping;
}

function checkImageSources(input: Input, path: FieldPath): void {
  const image = input.image != null && input.image !== '';
  const python = input.python != null;
  if (python && image) {
    throw configurationError(
      [...path, 'python'],
      '`image` and `python` are mutually exclusive fields',
    );
  }

  if (input.nvcc === true && image) {
    throw configurationError(
      [...path, 'nvcc'],
      '`image` and `nvcc` are mutually exclusive fields',
    );
  }

  if (input.docker === true) {
    const other = image ? 'image' : python ? 'python' : input.nvcc === true ? 'nvcc' : null;
    if (other !== null) {
      throw configurationError(
        [...path, 'docker'],
        `\`${other}\` and \`docker\` are mutually exclusive fields`,
      );
    }
  }
}

/** Normalises the fields every run configuration shares, profile parameters included. */
export function normaliseBaseRunConfiguration(
  input: Input,
  path: FieldPath,
): BaseRunConfiguration {
  const at = (key: string): FieldPath => [...path, key];
  checkImageSources(input, path);
  const user = textOrNull(input.user);
  if (user !== null) {
    validateUnixUser(user, at('user'));
  }

  const shell = textOrNull(input.shell);
  if (shell !== null) {
    validateShell(shell, at('shell'));
  }

  const repos = Array.isArray(input.repos) ? input.repos : [];
  if (repos.length > 1) {
    throw configurationError(at('repos'), 'a maximum of one repo is currently supported');
  }

  const registryAuth = input.registry_auth as Input | null | undefined;

  return {
    name: textOrNull(input.name),
    image: textOrNull(input.image),
    user,
    privileged: input.privileged === true,
    entrypoint: textOrNull(input.entrypoint),
    working_dir: textOrNull(input.working_dir),
    home_dir: input.home_dir == null ? '/root' : String(input.home_dir),
    registry_auth:
      registryAuth == null
        ? null
        : { username: String(registryAuth.username), password: String(registryAuth.password) },
    python: parsePython(input.python, at('python')),
    nvcc: (input.nvcc ?? null) as boolean | null,
    single_branch: (input.single_branch ?? null) as boolean | null,
    env: input.env === undefined ? {} : parseEnv(input.env, at('env')),
    shell,
    resources: parseResourcesAt(input.resources, at('resources')),
    priority: (input.priority ?? null) as number | null,
    volumes: (Array.isArray(input.volumes) ? input.volumes : []).map((volume, index) =>
      parseMountPoint(volume, [...at('volumes'), index]),
    ),
    docker: (input.docker ?? null) as boolean | null,
    repos: repos.map((repo, index) => parseRepo(repo, [...at('repos'), index])),
    files: (Array.isArray(input.files) ? input.files : []).map((file, index) =>
      parseFileMapping(file, [...at('files'), index]),
    ),
    dstack: input.dstack === true,
    setup: stringList(input.setup),
    ...normaliseProfileParams(input, path),
  };
}
