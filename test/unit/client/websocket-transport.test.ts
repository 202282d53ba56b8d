import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { CloseInfo } from '../../../client/src/transports/transport.js';
import { type WebSocketConstructor, WebSocketTransport } from '../../../client/src/transports/websocket.js';

/**
 * The SDK's WebSocket transport on Node's `ws`, against a server that accepts TCP and never
 * answers the upgrade. Closing a socket that is still connecting makes `ws` emit `error` on
 * the next tick; with no handler left that error is uncaught and takes the process down.
 */
describe('client WebSocket transport: closed while still connecting', () => {
  let server: Server;
  const sockets: Socket[] = [];
  afterEach(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });

  async function silentServer(): Promise<string> {
    server = createServer((s) => void sockets.push(s)); // accepts, never answers
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as { port: number };
    return `http://127.0.0.1:${port}`;
  }

  function open(baseUrl: string, openTimeoutMs: number, onClose: (info: CloseInfo) => void) {
    return new WebSocketTransport(
      WebSocket as unknown as WebSocketConstructor,
      { baseUrl, app: 'a', device: undefined, token: () => 't', since: () => null },
      { onOpen: () => {}, onFrames: () => {}, onActivity: () => {}, onClose },
      openTimeoutMs,
    );
  }

  /** `ws` reports the aborted handshake on process.nextTick: past the next turn, it has. */
  const afterAbort = () => new Promise((r) => setImmediate(r));

  it('by the caller: ends once, unopened, and nothing is thrown afterwards', async () => {
    const closes: CloseInfo[] = [];
    const t = open(await silentServer(), 10_000, (info) => closes.push(info));
    await new Promise((r) => server.once('connection', r));
    t.close();
    await afterAbort();
    expect(closes).toEqual([{ code: 1000, reason: '', opened: false }]);
  });

  it('by its own open timeout: ends once with 1006, and nothing is thrown afterwards', async () => {
    const closes: CloseInfo[] = [];
    const base = await silentServer();
    await new Promise<void>((ended) =>
      open(base, 50, (info) => {
        closes.push(info);
        ended();
      }),
    );
    await afterAbort();
    expect(closes).toEqual([{ code: 1006, reason: 'open timeout', opened: false }]);
  });
});
