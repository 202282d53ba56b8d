import { randomFillSync } from 'node:crypto';
import { v7 as uuidv7 } from 'uuid';

/**
 * Identifier grammar of docs/reference/server-api.md "Words". Used by every edge that accepts ids.
 */

// C0, DEL and C1 control characters.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const TOKEN_ID = /^[A-Za-z0-9._:-]+$/;

/** User and message ids: 1..128 code points, no control characters, no lone surrogates. */
export function isValidOpaqueId(value: unknown): value is string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 256) return false;
  if (CONTROL.test(value) || !value.isWellFormed()) return false;
  let codePoints = 0;
  for (const _ of value) if (++codePoints > 128) return false;
  return true;
}

export const isValidUserId = isValidOpaqueId;
export const isValidMessageId = isValidOpaqueId;

/** Device ids: 1..64 of [A-Za-z0-9._:-]. */
export function isValidDeviceId(value: unknown): value is string {
  return typeof value === 'string' && value.length >= 1 && value.length <= 64 && TOKEN_ID.test(value);
}

/** Message types: 1..64 of [A-Za-z0-9._:-]. */
export const isValidType = isValidDeviceId;

/** Topic names: 1..128 of [A-Za-z0-9._:-]; `$all` is reserved for app-wide broadcast. */
export function isValidTopic(value: unknown): value is string {
  return typeof value === 'string' && value.length >= 1 && value.length <= 128 && TOKEN_ID.test(value);
}

/** Group ids: 1..128 of [A-Za-z0-9._:-], per app (the same grammar as topics). */
export function isValidGroupId(value: unknown): value is string {
  return typeof value === 'string' && value.length >= 1 && value.length <= 128 && TOKEN_ID.test(value);
}

/** App ids: 1..64 of [A-Za-z0-9._-]. */
export function isValidAppId(value: unknown): value is string {
  return typeof value === 'string' && /^[A-Za-z0-9._-]{1,64}$/.test(value);
}

/** Platform labels from tokens: short and printable. */
export function isValidPlatform(value: unknown): value is string {
  return typeof value === 'string' && /^[A-Za-z0-9._-]{1,32}$/.test(value);
}

/**
 * Ids for messages pushed without one: UUIDv7, so consecutive ids share a prefix and append to
 * the id index instead of dirtying a random page of it per push. Random bytes come from a
 * pool: `crypto.getRandomValues` (uuid's default source) cost ~30 µs a call here.
 */
export function newMessageId(): string {
  return uuidv7({ rng: pooledRandom16 });
}

const RANDOM_POOL = Buffer.allocUnsafe(16 * 256);
let poolAt = RANDOM_POOL.length;

function pooledRandom16(): Uint8Array {
  if (poolAt === RANDOM_POOL.length) {
    randomFillSync(RANDOM_POOL);
    poolAt = 0;
  }
  poolAt += 16;
  return RANDOM_POOL.subarray(poolAt - 16, poolAt);
}
