import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClient } from '../helpers/client.js';
import { startServer, type TestServer } from '../helpers/server.js';

describe('smoke: push to an online user', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer();
  });
  afterAll(() => t.stop());

  it('delivers a pushed message to both devices of the user', async () => {
    const token = await t.token('alice');
    const d1 = await TestClient.open(t.ws, { app: 'a', token, device: 'phone' });
    const d2 = await TestClient.open(t.ws, { app: 'a', token, device: 'laptop' });
    const res = await t.push({ to: { users: ['alice'] }, type: 'notification', data: { title: 'hi' } });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ recipients: 1, duplicate: false });
    const [m1] = await d1.messages(1);
    const [m2] = await d2.messages(1);
    expect(m1).toMatchObject({
      op: 'message',
      seq: 1,
      id: res.body.id,
      type: 'notification',
      data: { title: 'hi' },
    });
    expect(m2).toMatchObject({ seq: 1, id: res.body.id });
    await d1.close();
    await d2.close();
  });
});
