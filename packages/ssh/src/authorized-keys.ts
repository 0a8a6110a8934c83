/** The comment that marks the lines this server added to `authorized_keys`. */
export const authorizedKeyTag = '# added by dstack';

/** `type base64` of a public key or an `authorized_keys` line (options skipped), or null. */
export function keyIdentity(line: string): string | null {
  const words = line.trim().split(/\s+/);
  const at = words.findIndex((word) => /^(ssh-|ecdsa-|sk-)/.test(word));
  if (at < 0 || at + 1 >= words.length || line.trim().startsWith('#')) {
    return null;
  }

  return `${words[at]} ${words[at + 1]}`;
}

/**
 * The file's text with the public key appended and tagged, unless the key is already there
 * (tagged or not). `text` is null when the file does not exist.
 */
export function addAuthorizedKey(
  text: string | null,
  publicKey: string,
): { text: string; added: boolean } {
  const identity = keyIdentity(publicKey);
  if (identity === null) {
    throw new Error('the project public key is not an OpenSSH public key');
  }

  const current = text ?? '';
  if (current.split('\n').some((line) => keyIdentity(line) === identity)) {
    return { text: current, added: false };
  }

  const separator = current === '' || current.endsWith('\n') ? '' : '\n';

  return { text: `${current}${separator}${publicKey.trim()} ${authorizedKeyTag}\n`, added: true };
}

/** The file's text without the tagged lines of this key; lines the user added stay. */
export function removeAuthorizedKey(text: string, publicKey: string): string {
  const identity = keyIdentity(publicKey);
  const lines = text.split('\n');
  const kept = lines.filter(
    (line) => !(line.trimEnd().endsWith(authorizedKeyTag) && keyIdentity(line) === identity),
  );

  return kept.join('\n');
}
