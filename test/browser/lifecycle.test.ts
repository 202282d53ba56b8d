import { rmSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWithBrowser, launchBrowser, type TestBrowser } from '../helpers/browser.js';
import { type ChildServer, startChild } from '../helpers/child-server.js';
import { startServer, type TestServer, tempDir } from '../helpers/server.js';
import { WebhookReceiver } from '../helpers/webhook-receiver.js';

const ENV = {
  PUSH_APPS: 'a:secret-a-0123456789abcdef,demo:demo-secret-0123456789abcdef',
  PUSH_DEMO_TOKENS: 'true',
};
const DEMO_AUTH = `Basic ${Buffer.from('demo:demo-secret-0123456789abcdef').toString('base64')}`;

const pushVia = (server: ChildServer, user: string, text: string) =>
  fetch(`${server.http}/v1/demo/push`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ to: { users: [user] }, data: { text } }),
  }).then((r) => r.json() as Promise<{ id: string }>);

const state = (page: Page) =>
  page.evaluate(() => {
    const d = (globalThis as any).demo;
    return { revoked: d.revoked, reads: d.reads, received: d.received.map((m: any) => m.id) };
  });

/** Recall and read sync as the demo page shows them, with the same user on two tabs (two devices). */
describeWithBrowser('demo page: recall and read sync in Chromium', () => {
  let dir: string;
  let server: ChildServer;
  let browser: TestBrowser;

  beforeAll(async () => {
    dir = tempDir();
    [server, browser] = await Promise.all([startChild(dir, ENV), launchBrowser()]);
  });
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reading on one tab clears the unread marks on the other; a recalled message is struck through on both', async () => {
    const [phone, laptop] = [await browser.page(), await browser.page()];
    for (const page of [phone, laptop]) {
      await page.goto(`${server.http}/demo?user=lena`);
      await page.waitForSelector('#status[data-state="connected"][data-transport="websocket"]', {
        timeout: 15_000,
      });
    }
    const first = await pushVia(server, 'lena', 'dinner at eight');
    const second = await pushVia(server, 'lena', 'bring wine');
    for (const page of [phone, laptop]) {
      await page.waitForSelector('li.message >> text=bring wine');
      await page.waitForSelector('#unread[data-count="2"]');
    }

    await phone.click('#mark-read');
    await phone.waitForSelector('#unread[data-count="0"]');
    // The laptop learns it from the server's read frame, not from anything it did itself.
    await laptop.waitForSelector('#unread[data-count="0"]');
    expect((await state(laptop)).reads).toEqual([2]);
    expect((await state(phone)).reads).toEqual([]);
    const unread = await fetch(`${server.http}/v1/users/lena/unread`, {
      headers: { authorization: DEMO_AUTH },
    });
    expect(await unread.json()).toEqual({ count: 0, last_read_seq: 2 });

    const recall = await fetch(`${server.http}/v1/messages/${encodeURIComponent(first.id)}`, {
      method: 'DELETE',
      headers: { authorization: DEMO_AUTH },
    });
    // The SDK acked it on arrival: the status stays acked (revoked 0), the screens still drop it.
    expect(await recall.json()).toEqual({ id: first.id, revoked: 0 });
    for (const page of [phone, laptop]) {
      await page.waitForSelector(`li.message.revoked[data-id="${first.id}"]`);
      expect((await state(page)).revoked).toEqual([{ id: first.id, seq: 1 }]);
      expect(await page.locator(`li.message[data-id="${second.id}"]`).getAttribute('class')).not.toContain(
        'revoked',
      );
    }
    await browser.screenshot(laptop, 'demo-lifecycle.png');

    // After a reload the recalled message is gone: the backlog and history leave it out.
    await laptop.reload();
    await laptop.waitForSelector('#status[data-state="connected"]', { timeout: 15_000 });
    const third = await pushVia(server, 'lena', 'see you');
    await laptop.waitForSelector('li.message >> text=see you');
    expect((await state(laptop)).received).not.toContain(first.id);
    expect((await state(laptop)).received).toContain(third.id);
  });
});

describeWithBrowser('dashboard: webhook panel in Chromium', () => {
  const ADMIN = 'lifecycle-admin-token-0001';
  let server: TestServer;
  let browser: TestBrowser;
  let rx: WebhookReceiver;

  beforeAll(async () => {
    rx = await WebhookReceiver.start();
    [server, browser] = await Promise.all([
      startServer({
        PUSH_APPS: 'demo:demo-secret-0123456789abcdef',
        PUSH_ADMIN_TOKEN: ADMIN,
        PUSH_WEBHOOK_ALLOW_PRIVATE: 'true',
        PUSH_WEBHOOK_POLL_MS: '50',
      }),
      launchBrowser(),
    ]);
  });
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
    await rx?.stop();
  });

  it('shows the app’s webhook and its hand-offs by state', async () => {
    const put = await fetch(`${server.http}/v1/webhook`, {
      method: 'PUT',
      headers: { authorization: DEMO_AUTH, 'content-type': 'application/json' },
      body: JSON.stringify({ url: rx.url, after_ms: 0 }),
    });
    expect(put.status).toBe(200);
    for (const user of ['off-1', 'off-2']) {
      const r = await fetch(`${server.http}/v1/push`, {
        method: 'POST',
        headers: { authorization: DEMO_AUTH, 'content-type': 'application/json' },
        body: JSON.stringify({ to: { users: [user] }, data: 'x' }),
      });
      expect(r.status).toBe(202);
    }
    await rx.until((r) => r.length >= 2);

    const page = await browser.page();
    await page.goto(`${server.http}/dashboard`);
    await page.fill('input[name="admin-token"]', ADMIN);
    await page.click('form.login button[type="submit"]');
    await page.waitForSelector(`[data-testid="webhook-config"] >> text=${rx.url}`);
    await page.waitForSelector('[data-testid="webhook-counts"] [data-state="delivered"] >> text=delivered 2');
    await browser.screenshot(page, 'dashboard-webhook.png');
    await page.close();
  });
});
