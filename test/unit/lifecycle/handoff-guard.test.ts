import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HandoffSender } from '../../../src/lifecycle/handoff-sender.js';
import { createLogger } from '../../../src/observability/logger.js';
import { createSqliteStore, type SqliteStore } from '../../../src/store/sqlite/sqlite-store.js';
import { tempDir } from '../../helpers/server.js';
import { WebhookReceiver } from '../../helpers/webhook-receiver.js';

/**
 * The sender checks addresses again when it connects: a webhook stored with a private
 * address (set while private addresses were allowed, or a name that now resolves to one)
 * is never called unless PUSH_WEBHOOK_ALLOW_PRIVATE is on.
 */
describe('hand-off sender address guard', () => {
  const dir = tempDir('mp-guard-');
  let store: SqliteStore;
  let rx: WebhookReceiver;

  beforeAll(async () => {
    store = await createSqliteStore({ url: `sqlite:${join(dir, 'g.db')}`, sqliteSync: 'normal' });
    rx = await WebhookReceiver.start();
  });
  afterAll(async () => {
    await store.close();
    await rx.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const run = async (app: string, url: string, allowPrivate: boolean) => {
    const t = Date.now();
    await store.saveWebhook({ appId: app, url, afterMs: 0, secret: 's', createdAt: t, updatedAt: t });
    const request = {
      id: null,
      type: 'message',
      to: { users: ['u'] },
      platforms: null,
      data: 1,
      dataJson: '1',
      ttl: 60,
    };
    await store.persistPushes([
      {
        appId: app,
        request,
        fingerprint: '',
        messageId: `${app}-m`,
        timestamp: t,
        onlineUsers: null,
        connectionCount: 0,
      },
    ]);
    const registry = new Registry();
    const sender = new HandoffSender(
      store,
      async () => false,
      { nodeId: 'n', pollMs: 1000, timeoutMs: 2000, allowPrivate },
      registry,
      createLogger('silent'),
    );
    await sender.poll();
    await sender.stop();
    const failed = (await registry.getSingleMetric('push_webhook_failed_total')!.get()).values[0]?.value ?? 0;
    const status = await store.getMessageStatus(app, `${app}-m`, Date.now());
    return { failed, webhook: status!.recipients[0]!.webhook };
  };

  it('refuses a loopback literal and a name resolving to loopback; sends when allowed', async () => {
    const port = new URL(rx.url).port;
    expect(await run('g1', `http://127.0.0.1:${port}/hook`, false)).toEqual({
      failed: 1,
      webhook: 'pending',
    });
    expect(await run('g2', `http://localhost:${port}/hook`, false)).toEqual({
      failed: 1,
      webhook: 'pending',
    });
    expect(rx.received).toHaveLength(0);
    expect(await run('g3', `http://localhost:${port}/hook`, true)).toEqual({
      failed: 0,
      webhook: 'delivered',
    });
    expect(rx.received).toHaveLength(1);
  });
});
