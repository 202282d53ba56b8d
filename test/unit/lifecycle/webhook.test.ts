import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../../../src/config.js';
import { decodeClientFrame } from '../../../src/gateway/protocol/json-codec.js';
import { backoffMs } from '../../../src/lifecycle/handoff-sender.js';
import { webhookCommand } from '../../../src/lifecycle/webhook-command.js';
import { checkWebhookTarget, isPublicAddress, parseWebhookUrl } from '../../../src/lifecycle/webhook-url.js';
import { createSqliteStore } from '../../../src/store/sqlite/sqlite-store.js';
import { tempDir } from '../../helpers/server.js';

describe('webhook URL checks', () => {
  it('only public unicast addresses are public', () => {
    for (const ip of ['93.184.216.34', '8.8.8.8', '2606:4700:4700::1111'])
      expect(isPublicAddress(ip), ip).toBe(true);
    for (const ip of [
      '127.0.0.1',
      '10.0.0.1',
      '172.16.5.4',
      '192.168.1.1',
      '169.254.169.254',
      '100.64.0.1',
      '0.0.0.0',
      '224.0.0.1',
      '255.255.255.255',
      '::1',
      '::',
      'fe80::1',
      'fd00::1',
      '::ffff:10.0.0.1',
      '::ffff:127.0.0.1',
      'not-an-ip',
    ]) {
      expect(isPublicAddress(ip), ip).toBe(false);
    }
  });

  it('http(s) only, no credentials; literal private hosts refused unless allowed', async () => {
    expect(parseWebhookUrl('https://example.com/x').hostname).toBe('example.com');
    for (const bad of [
      'ftp://example.com/',
      'file:///etc/passwd',
      'gopher://x',
      'https://u:p@example.com/',
      '//x',
    ]) {
      expect(() => parseWebhookUrl(bad), bad).toThrow(/url:/);
    }
    await expect(checkWebhookTarget(new URL('http://[::1]:8080/'), false)).rejects.toThrow(/not allowed/);
    await expect(checkWebhookTarget(new URL('http://127.0.0.1/'), true)).resolves.toBeUndefined();
    await expect(checkWebhookTarget(new URL('http://93.184.216.34/'), false)).resolves.toBeUndefined();
    await expect(checkWebhookTarget(new URL('http://localhost/'), false)).rejects.toThrow();
  });

  it('backoff doubles from 1 s to a 10 min cap, jittered between half and all of it', () => {
    expect(backoffMs(0, 0)).toBe(500);
    expect(backoffMs(0, 1)).toBe(1000);
    expect(backoffMs(3, 0.5)).toBe(6000);
    expect(backoffMs(40, 1)).toBe(600_000);
    expect(backoffMs(40, 0)).toBe(300_000);
  });

  it('subscribe frames take a boolean presence flag', () => {
    expect(decodeClientFrame('{"op":"subscribe","topic":"room:1","presence":true}')).toEqual({
      op: 'subscribe',
      topic: 'room:1',
      since: null,
      presence: true,
      ref: undefined,
    });
    expect(decodeClientFrame('{"op":"subscribe","topic":"room:1","presence":false}')).not.toHaveProperty(
      'presence',
    );
    expect(decodeClientFrame('{"op":"subscribe","topic":"room:1","presence":1}')).toMatchObject({
      op: 'error',
      code: 'bad_request',
    });
  });
});

describe('message-push webhook (CLI)', () => {
  const dir = tempDir('mp-webhook-cli-');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('set, get, rotate and delete an app’s webhook', async () => {
    const env = {
      PUSH_DB_URL: `sqlite:${join(dir, 'push.db')}`,
      PUSH_APPS: 'app1:secret-0123456789abcdefghij',
      PUSH_WEBHOOK_ALLOW_PRIVATE: 'true',
    };
    const config = loadConfig({ env });
    const store = await createSqliteStore(config.store);
    await store.saveApp({
      appId: 'app1',
      secretHash: 'h',
      secretSalt: 's',
      jwtAlg: 'HS256',
      jwtKey: 'k',
      createdAt: 1,
      updatedAt: 1,
    });
    await store.close();
    const out: string[] = [];
    const log = vi.spyOn(console, 'log').mockImplementation((line: string) => void out.push(line));
    vi.spyOn(console, 'error').mockImplementation(() => {});
    try {
      expect(await webhookCommand(config, 'get', 'app1', {})).toBe(1);
      expect(await webhookCommand(config, 'set', 'app1', { url: 'http://127.0.0.1:9/h', after: '5s' })).toBe(
        0,
      );
      const secret = /secret: +(\S+)/.exec(out.at(-1)!)![1]!;
      expect(out.at(-1)).toContain('after_ms: 5000');
      expect(await webhookCommand(config, 'rotate', 'app1', {})).toBe(0);
      const rotated = /secret: +(\S+)/.exec(out.at(-1)!)![1]!;
      expect(rotated).not.toBe(secret);
      expect(out.at(-1)).toContain('url:      http://127.0.0.1:9/h');
      expect(await webhookCommand(config, 'delete', 'app1', {})).toBe(0);
      expect(await webhookCommand(config, 'get', 'app1', {})).toBe(1);
      await expect(webhookCommand(config, 'set', 'nope', { url: 'http://127.0.0.1/' })).rejects.toThrow(
        /no app/,
      );
      await expect(webhookCommand(config, 'frob', 'app1', {})).rejects.toThrow(/webhook set/);
    } finally {
      log.mockRestore();
      vi.restoreAllMocks();
    }
  });
});
