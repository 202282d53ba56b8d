import { createHash } from 'node:crypto';
import { getOrCreate } from '../util/maps.js';

/**
 * Messages, per-recipient deliveries and their states. Pure values and functions: no I/O.
 *
 *   pending ──written to a socket──► sent ──ack──► acked
 *      │                              │
 *      │                              └─resends ran out──► failed ──ack──► acked
 *      └──────────── ttl passed before any ack ──────────► expired
 *   pending | sent | failed ──recalled (DELETE /v1/messages/{id})──► revoked
 *
 * A status never goes back. `failed` messages are still replayed on the next connection.
 * `revoked` is final like `expired` and `acked`: a recalled message is never delivered again.
 */
export type DeliveryStatus = 'pending' | 'sent' | 'acked' | 'failed' | 'expired' | 'revoked';

export const STATUS_CODE: Readonly<Record<DeliveryStatus, number>> = {
  pending: 0,
  sent: 1,
  acked: 2,
  failed: 3,
  expired: 4,
  revoked: 5,
};
export const STATUS_NAME: readonly DeliveryStatus[] = [
  'pending',
  'sent',
  'acked',
  'failed',
  'expired',
  'revoked',
];

export type Target =
  | { readonly users: readonly string[] }
  | { readonly devices: readonly { readonly user: string; readonly device: string }[] }
  | { readonly topic: string }
  | { readonly all: true }
  /** Server-managed groups: the union of their members when the push is accepted. */
  | { readonly groups: readonly string[] };

/** A push that passed validation at an edge (HTTP or queue). */
export interface PushRequest {
  /** Producer-given idempotency key; generated when absent. */
  readonly id: string | null;
  readonly type: string;
  readonly to: Target;
  readonly platforms: readonly string[] | null;
  readonly data: unknown;
  /** `data` as compact JSON, computed once at the edge and reused for storage and frames. */
  readonly dataJson: string;
  /** Seconds; null = until retention. 0 = only connections online right now. */
  readonly ttl: number | null;
}

/** One stored message, as routing and frames need it. */
export interface StoredMessage {
  readonly appId: string;
  readonly id: string;
  readonly type: string;
  readonly timestamp: number;
  readonly ttl: number | null;
  /** Absolute expiry in ms; null = none. For ttl 0 it is the accept time. */
  readonly expiresAt: number | null;
  readonly dataJson: string;
  readonly platforms: readonly string[] | null;
  readonly topic: string | null;
  readonly offset: number | null;
}

/** One user's copy of a message: the seq it got and, for device-targeted pushes, which devices. */
export interface Recipient {
  readonly user: string;
  readonly seq: number;
  readonly devices: readonly string[] | null;
}

export interface PushResult {
  readonly id: string;
  readonly recipients: number;
  readonly duplicate: boolean;
}

/** The users a target addresses, deduplicated, with device filters merged per user. */
export function recipientsOf(to: Target): { user: string; devices: string[] | null }[] {
  if ('users' in to) return [...new Set(to.users)].map((user) => ({ user, devices: null }));
  if ('devices' in to) {
    const byUser = new Map<string, Set<string>>();
    for (const { user, device } of to.devices) {
      getOrCreate(byUser, user, () => new Set()).add(device);
    }
    return [...byUser].map(([user, devices]) => ({ user, devices: [...devices] }));
  }
  return [];
}

export function topicOf(to: Target): string | null {
  if ('topic' in to) return to.topic;
  if ('all' in to) return ALL_TOPIC;
  return null;
}

/** The reserved topic every connection of an app receives. */
export const ALL_TOPIC = '$all';

/**
 * Idempotency fingerprint: "the same body" compares type, to, platforms, data and ttl as
 * JSON values with key order ignored (docs/reference/server-api.md "Push").
 */
export function fingerprintPush(req: PushRequest): string {
  const canonical = canonicalJson({
    type: req.type,
    to: req.to,
    platforms: req.platforms,
    data: req.data,
    ttl: req.ttl,
  });
  return createHash('sha256').update(canonical).digest('base64url');
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const keys = Object.keys(value).sort();
    const obj = value as Record<string, unknown>;
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

export function expiresAtOf(timestamp: number, ttl: number | null): number | null {
  return ttl === null ? null : timestamp + ttl * 1000;
}

export function isExpired(expiresAt: number | null, now: number): boolean {
  return expiresAt !== null && expiresAt <= now;
}

/** The status the API shows: expiry is visible as soon as the ttl has passed, before the sweeper runs. */
export function visibleStatus(
  status: DeliveryStatus,
  expiresAt: number | null,
  ttl: number | null,
  now: number,
): DeliveryStatus {
  // ttl 0 deliveries that reached a live connection keep sent/acked: they simply never replay.
  if (ttl === 0) return status;
  if ((status === 'pending' || status === 'sent' || status === 'failed') && isExpired(expiresAt, now)) {
    return 'expired';
  }
  return status;
}

/** Whether a connection with this platform and device is addressed by the message. */
export function isAddressed(
  platforms: readonly string[] | null,
  devices: readonly string[] | null,
  platform: string,
  device: string,
): boolean {
  if (platforms !== null && !platforms.includes(platform)) return false;
  if (devices !== null && !devices.includes(device)) return false;
  return true;
}
