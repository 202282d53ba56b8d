import { PushError } from '../domain/errors.js';
import { isValidPlatform, isValidUserId } from '../domain/ids.js';
import type { PushRequest } from '../domain/message.js';
import { isExactNumber, parseJsonKeepingNumbersAt } from './exact-json.js';
import { MAX_TARGETS, parsePushRequest } from './push-request.js';

/**
 * The push API of seed 001 (`POST /message-push/v1/push`) mapped onto a v1 push:
 * `push_method` 1 = to `audience.uids` (numeric uids are the users named by their exact
 * decimal text); `platform` "all" = no filter, else a label or labels; the message becomes
 * a `notification` with data {title, content, content_type, extras}.
 */
export function parseSeedPush(text: string, maxDataBytes: number): PushRequest {
  let body: unknown;
  try {
    body = parseJsonKeepingNumbersAt(text, ['audience', 'uids']);
  } catch {
    throw new PushError('bad_request', 'body is not valid JSON');
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new PushError('bad_request', 'body must be a JSON object');
  }
  const b = body as Record<string, unknown>;
  if (b.push_method !== 1)
    throw new PushError('bad_request', 'push_method: only 1 (to audience.uids) is supported');
  const uids = (b.audience as { uids?: unknown } | undefined)?.uids;
  if (!Array.isArray(uids) || uids.length === 0 || uids.length > MAX_TARGETS) {
    throw new PushError('bad_request', `audience.uids: 1..${MAX_TARGETS} user ids`);
  }
  const users = uids.map((u, i) => {
    const id = isExactNumber(u) ? u.exactNumber : u;
    if (isExactNumber(u) && !/^-?\d+$/.test(u.exactNumber)) {
      throw new PushError('bad_request', `audience.uids[${i}]: numeric uids must be integers`);
    }
    if (!isValidUserId(id)) throw new PushError('bad_request', `audience.uids[${i}]: not a valid user id`);
    return id;
  });
  const platforms = parsePlatform(b.platform);
  const m = b.message;
  if (m === null || typeof m !== 'object' || Array.isArray(m))
    throw new PushError('bad_request', 'message: an object');
  const { title, content, content_type, extras } = m as Record<string, unknown>;
  return parsePushRequest(
    {
      type: 'notification',
      to: { users },
      ...(platforms ? { platforms } : {}),
      data: { title, content, content_type, extras },
    },
    maxDataBytes,
  );
}

function parsePlatform(p: unknown): string[] | null {
  if (p === undefined || p === 'all') return null;
  const list = Array.isArray(p) ? p : [p];
  if (list.length === 0 || !list.every(isValidPlatform)) {
    throw new PushError('bad_request', 'platform: "all", a platform label or an array of labels');
  }
  return list as string[];
}
