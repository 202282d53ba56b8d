import { randomBytes } from 'node:crypto';
import { PushError } from '../domain/errors.js';
import type { LifecycleStore, WebhookRecord } from '../store/store.js';
import { checkWebhookTarget, parseWebhookUrl } from './webhook-url.js';

/** Hand-off delay when none is given. */
export const DEFAULT_AFTER_MS = 30_000;
/** The longest delay: the longest ttl a message may have. */
export const MAX_AFTER_MS = 2_419_200_000;

/** What the API shows of a webhook. */
export interface WebhookView {
  readonly url: string;
  readonly after_ms: number;
  readonly secret: string;
}

/**
 * The per-app offline hand-off webhook: URL checks, a generated signing secret (256 random
 * bits; kept on update unless a rotation is asked for) and storage.
 */
export class Webhooks {
  constructor(
    private readonly store: LifecycleStore,
    private readonly allowPrivate: boolean,
  ) {}

  async get(appId: string): Promise<WebhookView | undefined> {
    const w = await this.store.getWebhook(appId);
    return w && view(w);
  }

  async set(
    appId: string,
    input: { url: string; afterMs?: number; rotateSecret?: boolean },
  ): Promise<WebhookView> {
    const url = parseWebhookUrl(input.url);
    await checkWebhookTarget(url, this.allowPrivate);
    const afterMs = input.afterMs ?? DEFAULT_AFTER_MS;
    if (!Number.isSafeInteger(afterMs) || afterMs < 0 || afterMs > MAX_AFTER_MS) {
      throw new PushError('bad_request', `after_ms: an integer 0..${MAX_AFTER_MS}`);
    }
    const now = Date.now();
    const prev = await this.store.getWebhook(appId);
    const record: WebhookRecord = {
      appId,
      url: url.toString(),
      afterMs,
      secret: prev && !input.rotateSecret ? prev.secret : newSecret(),
      createdAt: prev?.createdAt ?? now,
      updatedAt: now,
    };
    await this.store.saveWebhook(record);
    return view(record);
  }

  /** False when the app had none. */
  delete(appId: string): Promise<boolean> {
    return this.store.deleteWebhook(appId);
  }
}

export function newSecret(): string {
  return `whsec_${randomBytes(32).toString('base64url')}`;
}

function view(w: WebhookRecord): WebhookView {
  return { url: w.url, after_ms: w.afterMs, secret: w.secret };
}
