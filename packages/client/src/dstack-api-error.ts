/** An error answer of the server: its status, its body and the message the server gave. */
export class DstackApiError extends Error {
  readonly status: number;
  readonly body: unknown;
  /** The `code` of a 400 item, when the server sent one. */
  readonly code: string | null;

  constructor(status: number, body: unknown, path: string) {
    const { message, code } = describeBody(body);
    super(`${path}: ${status} ${message}`);
    this.name = 'DstackApiError';
    this.status = status;
    this.body = body;
    this.code = code;
  }
}

/** The message in any of the server's error shapes (400 list, 403 object, 422, bare string). */
function describeBody(body: unknown): { message: string; code: string | null } {
  const detail = isObject(body) && 'detail' in body ? body.detail : body;

  if (typeof detail === 'string') {
    return { message: detail, code: null };
  }

  if (Array.isArray(detail)) {
    const items = detail.filter(isObject);
    const messages = items.map((item) => {
      const location = Array.isArray(item.loc) ? `${item.loc.join('.')}: ` : '';
      const fields = Array.isArray(item.fields) ? ` (${item.fields.join('.')})` : '';
      return `${location}${String(item.msg ?? JSON.stringify(item))}${fields}`;
    });
    const code = items.length > 0 && typeof items[0].code === 'string' ? items[0].code : null;
    return { message: messages.join('; '), code };
  }

  if (isObject(detail) && typeof detail.msg === 'string') {
    return { message: detail.msg, code: typeof detail.code === 'string' ? detail.code : null };
  }

  return { message: JSON.stringify(body) ?? 'no body', code: null };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}
