import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClient } from '../helpers/client.js';
import { RawSocket } from '../helpers/raw-socket.js';
import { startServer, type TestServer } from '../helpers/server.js';

/**
 * API.md "Socket": a client silent for two heartbeat intervals is dropped without a close
 * frame, between 2·H and 2·H + 5 s after its last sign of life. The raw socket never answers
 * the server's pings (a library client would pong on its own).
 */
describe.each([400, 2500])('heartbeat bound with heartbeat_ms = %i', (intervalMs) => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer({ PUSH_HEARTBEAT_MS: String(intervalMs) });
  });
  afterAll(() => t.stop());

  it('a client silent after its handshake is gone between 2·H and 2·H + 5 s, and one that answers pings stays', async () => {
    const token = await t.token('silent');
    const answering = await TestClient.open(t.ws, { app: 'a', token: await t.token('answering') });
    const raws = await Promise.all([0, 1, 2].map(() => RawSocket.open(t.port)));
    const opened = await Promise.all(raws.map((r) => r.upgrade(`/v1/ws?app=a&token=${token}`)));
    const closedAt = await Promise.all(raws.map((r) => r.whenClosed()));
    for (let i = 0; i < raws.length; i++) {
      const silentFor = closedAt[i]! - opened[i]!;
      // The server took its last sign of life just before it sent the 101.
      expect(silentFor).toBeGreaterThanOrEqual(2 * intervalMs - 25);
      expect(silentFor).toBeLessThanOrEqual(2 * intervalMs + 5000);
      // Dropped, not closed: no close frame (opcode 0x8) after the upgrade's frames.
      expect(closeFrameSeen(raws[i]!.received)).toBe(false);
    }
    expect(answering.closeCode).toBeNull();
    answering.ws.close();
  });

  it('the bound counts from the last frame the client sent, not from its handshake', async () => {
    const raw = await RawSocket.open(t.port);
    await raw.upgrade(`/v1/ws?app=a&token=${await t.token('late-ping')}`);
    await raw.until('"welcome"');
    // One sign of life a heartbeat after the handshake, then silence.
    await new Promise((r) => setTimeout(r, intervalMs));
    raw.sendFrame('{"op":"ping"}');
    const lastSign = Date.now();
    await raw.until('"pong"');
    const closedAt = await raw.whenClosed();
    expect(closedAt - lastSign).toBeGreaterThanOrEqual(2 * intervalMs - 25);
    expect(closedAt - lastSign).toBeLessThanOrEqual(2 * intervalMs + 5000);
  });
});

/** Walks the server's unmasked frames after the 101 and reports whether any is a close frame. */
function closeFrameSeen(received: Buffer): boolean {
  let i = received.indexOf('\r\n\r\n') + 4;
  while (i + 2 <= received.length) {
    const opcode = received[i]! & 0x0f;
    let len = received[i + 1]! & 0x7f;
    let head = 2;
    if (len === 126) {
      len = received.readUInt16BE(i + 2);
      head = 4;
    } else if (len === 127) {
      len = Number(received.readBigUInt64BE(i + 2));
      head = 10;
    }
    if (opcode === 0x8) return true;
    i += head + len;
  }
  return false;
}
