import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { describe } from 'vitest';
import { ROOT } from './child-server.js';

/** Debian's Chromium (`apt-get install chromium`; .ci/browser.sh installs it in CI). */
export const CHROMIUM = process.env.PUSH_TEST_CHROMIUM || '/usr/bin/chromium';

/** Screenshots of the pages go here (gitignored). */
export const SCREENSHOTS = join(ROOT, 'test-results');

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * `describe` for a suite that needs the real browser: skipped (and says so) when Chromium
 * is not installed, except in CI (`CI=true` or PUSH_TEST_REQUIRE_SERVICES=1), where that fails.
 */
export function describeWithBrowser(title: string, body: () => void): void {
  const required = process.env.CI === 'true' || process.env.PUSH_TEST_REQUIRE_SERVICES === '1';
  if (existsSync(CHROMIUM)) describe(`${title} [chromium]`, body);
  else if (required) {
    describe(`${title} [chromium]`, () => {
      throw new Error(`Chromium is required here but missing at ${CHROMIUM} (apt-get install chromium)`);
    });
  } else describe.skip(`${title} [chromium: not installed at ${CHROMIUM}, skipped]`, body);
}

export interface TestBrowser {
  readonly context: BrowserContext;
  /** A new tab; `blockWebSocket` makes every WebSocket fail to open, as behind a proxy that drops upgrades. */
  page(options?: { blockWebSocket?: boolean }): Promise<Page>;
  screenshot(page: Page, name: string): Promise<string>;
  close(): Promise<void>;
}

/** Headless Chromium with a fresh profile, so no storage leaks between runs. */
export async function launchBrowser(): Promise<TestBrowser> {
  const profile = mkdtempSync(join(tmpdir(), 'mp-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport: { width: 1360, height: 900 },
  });
  const pageErrors: string[] = [];
  return {
    context,
    async page(options = {}) {
      const page = await context.newPage();
      page.on('pageerror', (err) => pageErrors.push(String(err)));
      if (options.blockWebSocket) {
        await page.addInitScript(() => {
          // Opens nothing: fails like a blocked upgrade (error, then close 1006), after a tick.
          class BlockedWebSocket {
            readyState = 0;
            onopen: unknown = null;
            onmessage: unknown = null;
            onerror: ((ev: unknown) => void) | null = null;
            onclose: ((ev: unknown) => void) | null = null;
            constructor() {
              setTimeout(() => {
                this.readyState = 3;
                this.onerror?.({ type: 'error' });
                this.onclose?.({ code: 1006, reason: '', wasClean: false });
              }, 5);
            }
            send(): void {}
            close(): void {}
          }
          (globalThis as any).WebSocket = BlockedWebSocket;
        });
      }
      return page;
    },
    async screenshot(page, name) {
      mkdirSync(SCREENSHOTS, { recursive: true });
      const path = join(SCREENSHOTS, name);
      await page.screenshot({ path, fullPage: true });
      return path;
    },
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
      if (pageErrors.length > 0) throw new Error(`errors in the pages: ${pageErrors.join('; ')}`);
    },
  };
}
