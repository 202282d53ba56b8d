import type { Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWithBrowser, launchBrowser, type TestBrowser } from '../helpers/browser.js';
import { startServer, type TestServer } from '../helpers/server.js';

const ADMIN = 'dashboard-admin-token-0001';

describeWithBrowser('dashboard in Chromium', () => {
  let server: TestServer;
  let browser: TestBrowser;

  beforeAll(async () => {
    [server, browser] = await Promise.all([
      startServer({
        PUSH_APPS: 'a:secret-a-0123456789abcdef,demo:demo-secret-0123456789abcdef',
        PUSH_DEMO_TOKENS: 'true',
        PUSH_ADMIN_TOKEN: ADMIN,
      }),
      launchBrowser(),
    ]);
  });
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  const openDashboard = async (): Promise<Page> => {
    const page = await browser.page();
    await page.goto(`${server.http}/dashboard`);
    await page.fill('input[name="admin-token"]', ADMIN);
    await page.click('form.login button[type="submit"]');
    await page.waitForSelector('[data-testid="connections"]');
    return page;
  };

  it('refuses a wrong admin token', async () => {
    const page = await browser.page();
    await page.goto(`${server.http}/dashboard`);
    await page.fill('input[name="admin-token"]', 'not-the-admin-token');
    await page.click('form.login button[type="submit"]');
    await page.waitForSelector('form.login .error >> text=admin token required');
    await page.close();
  });

  it('shows the connected client, sends it a message, shows its status, and kicks it', async () => {
    const demo = await browser.page();
    await demo.goto(`${server.http}/demo?user=carol`);
    await demo.waitForSelector('#status[data-state="connected"]');

    const page = await openDashboard();
    // Live figures: the demo page's connection, by platform (demo tokens say `web`).
    await page.waitForSelector('[data-testid="connections"] li[data-platform="web"] >> text=1');

    await page.selectOption('#lookup select[name="app"]', 'demo');
    await page.fill('#lookup input[name="user"]', 'carol');
    await page.click('#lookup button[type="submit"]');
    await page.waitForSelector('[data-testid="presence"] >> text=online');
    const row = page.locator('#lookup tr.connection');
    expect(await row.count()).toBe(1);
    expect(await row.locator('td').nth(2).textContent()).toBe('web');

    await page.selectOption('#send select[name="app"]', 'demo');
    await page.fill('#send input[name="to"]', 'carol');
    await page.fill('#send textarea[name="data"]', '{"title":"sent from the dashboard"}');
    await page.click('#send button[type="submit"]');
    await page.waitForSelector('[data-testid="send-result"] >> text=accepted');
    await demo.waitForSelector('li.message >> text=sent from the dashboard');
    // Recent messages refresh every 2 s: the message shows up acked by carol's page.
    await page.waitForSelector('#recent tr.recent .status.acked[data-user="carol"]', { timeout: 10_000 });
    // Let the charts gather a few samples for the screenshot.
    await page.waitForFunction(
      () => (globalThis as any).document.querySelectorAll('.chart canvas').length === 3,
    );
    await browser.screenshot(page, 'dashboard.png');

    await page.click('#lookup tr.connection button');
    await page.waitForSelector('[data-testid="kick-result"] >> text=closed 1 connection');
    await demo.waitForSelector('#status[data-state="closed"] >> text=kicked');
    await page.waitForSelector('[data-testid="presence"] >> text=offline');
    await demo.close();
    await page.close();
  });

  it('shows the groups of an app with their sizes and its live rooms with their windows', async () => {
    const basic = server.auth();
    const put = (path: string, body: unknown) =>
      fetch(`${server.http}${path}`, {
        method: 'PUT',
        headers: { authorization: basic, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    expect((await put('/v1/groups/dash-team/members', { add: ['u1', 'u2', 'u3'] })).status).toBe(200);
    expect((await put('/v1/topics/dash-room/settings', { merge_ms: 750 })).status).toBe(200);
    const page = await openDashboard();
    await page.selectOption('#lookup select[name="app"]', 'a');
    await page.waitForSelector('#groups tr[data-group="dash-team"] >> text=3');
    await page.waitForSelector('#rooms tr[data-topic="dash-room"] >> text=750 ms');
    await page.close();
  });
});
