import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClient } from '../helpers/client.js';
import { startServer, type TestServer } from '../helpers/server.js';

describe('seed 001 push API: POST /message-push/v1/push', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer({ PUSH_RESEND_MS: '60000' });
  });
  afterAll(() => t.stop());

  const seedPush = (body: unknown) => t.api('POST', '/message-push/v1/push', body);

  it('maps numeric uids (also past 2^53, exactly) to users and the message to a notification', async () => {
    const big = '12345678901234567890';
    const a = await TestClient.open(t.ws, { app: 'a', token: await t.token('57098049') });
    const b = await TestClient.open(t.ws, { app: 'a', token: await t.token(big) });
    // Raw text: a JS number would lose the digits of the big uid.
    const res = await seedPush(
      `{"push_method":1,"platform":"all","audience":{"uids":[57098049, ${big}]},` +
        '"message":{"title":"title1","content":"content1","content_type":"content_type1","extras":"123extras"}}',
    );
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ code: 0, message: 'ok', data: { recipients: 2 } });
    expect(typeof res.body.data.id).toBe('string');
    for (const c of [a, b]) {
      const [m] = await c.messages(1);
      expect(m).toMatchObject({
        type: 'notification',
        id: res.body.data.id,
        data: { title: 'title1', content: 'content1', content_type: 'content_type1', extras: '123extras' },
      });
    }
    // 12345678901234567000 (what a double makes of it) is another user and got nothing.
    const status = await t.api('GET', `/v1/messages/${res.body.data.id}`);
    expect(status.body.recipients.map((r: { user: string }) => r.user).sort()).toEqual(
      [big, '57098049'].sort(),
    );
    await a.close();
    await b.close();
  });

  it('filters by platform label or labels', async () => {
    const pc = await TestClient.open(t.ws, { app: 'a', token: await t.token('777', { platform: 'pc' }) });
    const mobile = await TestClient.open(t.ws, {
      app: 'a',
      token: await t.token('777', { platform: 'mobile' }),
    });
    const r1 = await seedPush({
      push_method: 1,
      platform: 'pc',
      audience: { uids: [777] },
      message: { title: 'only pc' },
    });
    expect(r1.status).toBe(200);
    const r2 = await seedPush({
      push_method: 1,
      platform: ['pc', 'mobile'],
      audience: { uids: ['777'] },
      message: { title: 'both' },
    });
    expect(r2.status).toBe(200);
    expect((await pc.messages(2)).map((m) => m.data.title)).toEqual(['only pc', 'both']);
    expect((await mobile.messages(1)).map((m) => m.data.title)).toEqual(['both']);
    await pc.close();
    await mobile.close();
  });

  it.each([
    [{ push_method: 2, platform: 'all', audience: { uids: [1] }, message: {} }, 'push_method'],
    [{ push_method: 1, platform: 'all', audience: { uids: [] }, message: {} }, 'audience.uids'],
    [{ push_method: 1, platform: 'all', audience: { uids: [1.5] }, message: {} }, 'audience.uids[0]'],
    [{ push_method: 1, platform: 'all', audience: { uids: [1] } }, 'message'],
    [{ push_method: 1, platform: 'bad label!', audience: { uids: [1] }, message: {} }, 'platform'],
  ])('refuses %j with 400 in the usual error shape', async (body, field) => {
    const res = await seedPush(body);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('bad_request');
    expect(res.body.error.message).toContain(field);
  });

  it('needs the app credentials like /v1/push', async () => {
    const res = await fetch(`${t.http}/message-push/v1/push`, { method: 'POST', body: '{}' });
    expect(res.status).toBe(401);
    expect(((await res.json()) as any).error.code).toBe('unauthorized');
  });
});
