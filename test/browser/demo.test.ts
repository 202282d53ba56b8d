import { rmSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWithBrowser, launchBrowser, type TestBrowser } from '../helpers/browser.js';
import { type ChildServer, startChild } from '../helpers/child-server.js';
import { tempDir } from '../helpers/server.js';

const ENV = {
  PUSH_APPS: 'a:secret-a-0123456789abcdef,demo:demo-secret-0123456789abcdef',
  PUSH_DEMO_TOKENS: 'true',
};

/** What the demo page handed to the app, as recorded by the page itself. */
const received = (page: Page): Promise<{ id: string; seq: number; data: any }[]> =>
  page.evaluate(() =>
    (globalThis as any).demo.received.map((m: any) => ({ id: m.id, seq: m.seq, data: m.data })),
  );

const pushVia = (server: ChildServer, user: string, text: string) =>
  fetch(`${server.http}/v1/demo/push`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ to: { users: [user] }, data: { text } }),
  }).then((r) => r.json() as Promise<{ id: string }>);

const connected = (page: Page, transport?: string) =>
  page.waitForSelector(
    `#status[data-state="connected"]${transport ? `[data-transport="${transport}"]` : ''}`,
    {
      timeout: 15_000,
    },
  );

describeWithBrowser('demo page in Chromium', () => {
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

  it('mints a demo token, connects over WebSocket and shows a message pushed from its form', async () => {
    const page = await browser.page();
    await page.goto(`${server.http}/demo?user=alice`);
    await connected(page, 'websocket');
    await page.fill('input[name="text"]', 'first message');
    await page.click('#push-form button[type="submit"]');
    await page.waitForSelector('li.message >> text=first message');
    expect(await page.textContent('#push-result')).toMatch(/^accepted: .+ \(1 recipient\)$/);
    await pushVia(server, 'alice', 'from the API');
    await page.waitForSelector('li.message >> text=from the API');
    expect((await received(page)).map((m) => m.seq)).toEqual([1, 2]);
    await browser.screenshot(page, 'demo.png');
    await page.close();
  });

  it('?protocol=v2: the page speaks push.v2.bin (snappy-compressed frames decoded in the browser)', async () => {
    const page = await browser.page();
    await page.goto(`${server.http}/demo?user=vera&protocol=v2`);
    await connected(page, 'websocket');
    expect(await page.textContent('#identity')).toContain('protocol v2');
    // Over the 256-byte threshold: the server compresses it with snappy, the only codec a browser offers.
    const long = `binary ${'and compressed '.repeat(40)}end`;
    const res = await pushVia(server, 'vera', long);
    await page.waitForSelector('li.message >> text=and compressed');
    expect((await received(page)).map((m) => [m.id, m.data.text])).toEqual([[res.id, long]]);
    await page.close();
  });

  it('after the server is killed and restarts, the page resumes without loss or duplicate', async () => {
    const page = await browser.page();
    await page.goto(`${server.http}/demo?user=rita`);
    await connected(page, 'websocket');
    const before = [await pushVia(server, 'rita', 'before-1'), await pushVia(server, 'rita', 'before-2')];
    await page.waitForSelector('li.message >> text=before-2');

    server.child.kill('SIGKILL');
    await server.exited();
    await page.waitForSelector('#status:not([data-state="connected"])');
    server = await startChild(dir, { ...ENV, PUSH_PORT: String(server.port) });
    // Pushed while the page is still reconnecting, or just after: both must arrive once.
    const during = await pushVia(server, 'rita', 'during-restart');
    await connected(page, 'websocket');
    const after = await pushVia(server, 'rita', 'after-restart');
    await page.waitForSelector('li.message >> text=after-restart');

    const got = await received(page);
    expect(got.map((m) => m.id)).toEqual([...before, during, after].map((r) => r.id));
    expect(got.map((m) => m.seq)).toEqual([1, 2, 3, 4]);
    expect(await page.locator('li.message').count()).toBe(4);
    await page.close();
  });

  it('with WebSocket blocked, the page connects over SSE and still receives', async () => {
    const page = await browser.page({ blockWebSocket: true });
    await page.goto(`${server.http}/demo?user=bob`);
    await connected(page, 'sse');
    await pushVia(server, 'bob', 'over the fallback');
    await page.waitForSelector('li.message >> text=over the fallback');
    expect((await received(page)).map((m) => m.data.text)).toEqual(['over the fallback']);
    await page.close();
  });
});
