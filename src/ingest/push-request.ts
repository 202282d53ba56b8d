import { type Static, Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { PushError } from '../domain/errors.js';
import {
  isValidDeviceId,
  isValidGroupId,
  isValidMessageId,
  isValidPlatform,
  isValidTopic,
  isValidType,
  isValidUserId,
} from '../domain/ids.js';
import type { PushRequest, Target } from '../domain/message.js';

/** Upper bounds of docs/reference/server-api.md "Push". */
export const MAX_TARGETS = 10_000;
export const MAX_TTL_SECONDS = 2_419_200;
export const MAX_DATA_DEPTH = 64;
export const MAX_BATCH = 1000;
export const MAX_GROUPS = 100;
export const DEFAULT_TYPE = 'message';

const Strict = { additionalProperties: false } as const;

export const PushBody = Type.Object({
  id: Type.Optional(Type.String()),
  type: Type.Optional(Type.String()),
  to: Type.Union([
    Type.Object({ users: Type.Array(Type.String(), { minItems: 1, maxItems: MAX_TARGETS }) }, Strict),
    Type.Object(
      {
        devices: Type.Array(Type.Object({ user: Type.String(), device: Type.String() }, Strict), {
          minItems: 1,
          maxItems: MAX_TARGETS,
        }),
      },
      Strict,
    ),
    Type.Object({ topic: Type.String() }, Strict),
    Type.Object({ all: Type.Literal(true) }, Strict),
    Type.Object({ groups: Type.Array(Type.String(), { minItems: 1, maxItems: MAX_GROUPS }) }, Strict),
  ]),
  platforms: Type.Optional(Type.Array(Type.String(), { minItems: 1, maxItems: 32 })),
  data: Type.Optional(Type.Unknown()),
  ttl: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_TTL_SECONDS })),
});
export type PushBody = Static<typeof PushBody>;

const checkPushBody = TypeCompiler.Compile(PushBody);

/**
 * Validates a push body (HTTP `POST /v1/push`, batch items, queue payloads) into a
 * PushRequest, or throws the PushError docs/reference/server-api.md prescribes (400 / 413).
 */
export function parsePushRequest(body: unknown, maxDataBytes: number): PushRequest {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new PushError('bad_request', 'body must be a JSON object');
  }
  if (!checkPushBody.Check(body)) {
    const first = checkPushBody.Errors(body).First();
    const where = first?.path || '/';
    const hint = where.startsWith('/to')
      ? 'to must be exactly one of users, devices, topic, all, groups'
      : first?.message;
    throw new PushError('bad_request', `${where}: ${hint ?? 'invalid'}`);
  }
  const b = body as PushBody;
  if (b.id !== undefined && !isValidMessageId(b.id)) {
    throw new PushError('bad_request', 'id: 1..128 characters, no control characters');
  }
  const type = b.type ?? DEFAULT_TYPE;
  if (!isValidType(type)) throw new PushError('bad_request', 'type: 1..64 of [A-Za-z0-9._:-]');
  const to = parseTarget(b.to);
  if (b.platforms && !b.platforms.every(isValidPlatform)) {
    throw new PushError('bad_request', 'platforms: labels of 1..32 [A-Za-z0-9._-]');
  }
  const data = b.data === undefined ? null : b.data;
  if (depthExceeds(data, MAX_DATA_DEPTH)) {
    throw new PushError('bad_request', `data: nested deeper than ${MAX_DATA_DEPTH} levels`);
  }
  const dataJson = JSON.stringify(data);
  if (Buffer.byteLength(dataJson) > maxDataBytes) {
    throw new PushError('payload_too_large', `data: over ${maxDataBytes} bytes as compact JSON`);
  }
  return {
    id: b.id ?? null,
    type,
    to,
    platforms: b.platforms ?? null,
    data,
    dataJson,
    ttl: b.ttl ?? null,
  };
}

function parseTarget(to: PushBody['to']): Target {
  if ('users' in to) {
    const bad = to.users.findIndex((u) => !isValidUserId(u));
    if (bad >= 0) throw new PushError('bad_request', `to.users[${bad}]: not a valid user id`);
    return { users: to.users };
  }
  if ('devices' in to) {
    to.devices.forEach((d, i) => {
      if (!isValidUserId(d.user))
        throw new PushError('bad_request', `to.devices[${i}].user: not a valid user id`);
      if (!isValidDeviceId(d.device))
        throw new PushError('bad_request', `to.devices[${i}].device: 1..64 of [A-Za-z0-9._:-]`);
    });
    return { devices: to.devices.map((d) => ({ user: d.user, device: d.device })) };
  }
  if ('topic' in to) {
    if (!isValidTopic(to.topic)) throw new PushError('bad_request', 'to.topic: 1..128 of [A-Za-z0-9._:-]');
    return { topic: to.topic };
  }
  if ('groups' in to) {
    const bad = to.groups.findIndex((g) => !isValidGroupId(g));
    if (bad >= 0) throw new PushError('bad_request', `to.groups[${bad}]: 1..128 of [A-Za-z0-9._:-]`);
    return { groups: [...new Set(to.groups)] };
  }
  return { all: true };
}

/** Iterative, so hostile nesting cannot overflow the stack. */
function depthExceeds(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth > max) return true;
    for (const child of Object.values(v))
      if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
  }
  return false;
}
