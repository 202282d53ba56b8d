import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  type ConnectOptions,
  connect,
  type FetchLike,
  type PushClientError,
} from '../../../client/src/index.js';
import { FakeSocket, fakeToken } from './fakes.js';

const base = (extra: Partial<ConnectOptions> = {}): ConnectOptions => ({
  url: 'http://push.test',
  app: 'a',
  token: fakeToken(),
  WebSocket: FakeSocket,
  storage: null,
  random: () => 0,
  ...extra,
});

/** A fetch whose SSE responses the test feeds by hand. */
function fakeSseFetch(status = 200) {
  const calls: string[] = [];
  let push: ((text: string) => void) | null = null;
  const fetchFn: FetchLike = async (url) => {
    calls.push(url);
    if (status !== 200) {
      return {
        ok: false,
        status,
        body: null,
        text: async () => '{"error":{"code":"x","message":"refused"}}',
      };
    }
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        push = (text) => controller.enqueue(new TextEncoder().encode(text));
      },
    });
    return { ok: true, status, body: stream, text: async () => '' };
  };
  return { fetchFn, calls, send: (text: string) => push!(text) };
}

describe('client lifecycle', () => {
  let errors: PushClientError[];
  beforeEach(() => {
    vi.useFakeTimers();
    FakeSocket.reset();
    errors = [];
  });
  afterEach(() => vi.useRealTimers());

  it('no reconnect after a kick (4003) until the app asks', async () => {
    const client = connect(base());
    client.on('error', (e) => errors.push(e));
    await vi.advanceTimersByTimeAsync(0);
    FakeSocket.last.open();
    FakeSocket.last.drop(4003, 'kicked');
    await vi.advanceTimersByTimeAsync(120_000);
    expect(FakeSocket.all).toHaveLength(1);
    expect(client.state).toBe('closed');
    expect(errors.map((e) => [e.code, e.fatal])).toEqual([['kicked', true]]);
    client.reconnect();
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeSocket.all).toHaveLength(2);
    FakeSocket.last.open();
    expect(client.state).toBe('connected');
    client.close();
  });

  it('a refused handshake (401) is fatal and tries no other transport; 429 backs off', async () => {
    const sse = fakeSseFetch();
    const client = connect(base({ fetch: sse.fetchFn }));
    client.on('error', (e) => errors.push(e));
    await vi.advanceTimersByTimeAsync(0);
    FakeSocket.last.refuse(429);
    await vi.advanceTimersByTimeAsync(0);
    expect(client.state).toBe('connecting'); // random 0: the retry is immediate
    FakeSocket.last.refuse(401);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeSocket.all).toHaveLength(2);
    expect(sse.calls).toEqual([]);
    expect(errors.map((e) => e.code)).toEqual(['unauthorized']);
    expect(client.state).toBe('closed');
  });

  it('falls back to SSE at once when the WebSocket cannot be opened, and acks over HTTP', async () => {
    const sse = fakeSseFetch();
    const acks: string[] = [];
    const fetchFn: FetchLike = (url, init) => {
      if (init?.method === 'POST') {
        acks.push(`${new URL(url).pathname} ${init.body}`);
        return Promise.resolve({ ok: true, status: 200, body: null, text: async () => '{}' });
      }
      return sse.fetchFn(url, init);
    };
    const client = connect(base({ fetch: fetchFn, ackDelayMs: 10 }));
    const got: number[] = [];
    client.on('message', (m) => got.push(m.seq!));
    await vi.advanceTimersByTimeAsync(0);
    FakeSocket.last.drop(1006); // blocked: no status
    await vi.advanceTimersByTimeAsync(0);
    expect(sse.calls).toHaveLength(1);
    expect(new URL(sse.calls[0]!).pathname).toBe('/v1/sse');
    sse.send(
      'event: welcome\ndata: {"op":"welcome","connection_id":"c","user_id":"u1","device_id":"c","heartbeat_ms":15000}\n\n',
    );
    sse.send(
      'event: message\nid: 1\ndata: {"op":"message","seq":1,"id":"m1","type":"t","timestamp":1,"data":{}}\n\n: ping\n\n',
    );
    sse.send(
      'event: message\nid: 2\ndata: {"op":"message","seq":2,"id":"m2","type":"t","timestamp":1,"data":{}}\n',
    );
    sse.send('\n');
    await vi.advanceTimersByTimeAsync(10);
    expect(client.transportName).toBe('sse');
    expect(got).toEqual([1, 2]);
    expect(acks).toEqual(['/v1/me/ack {"ids":["m1","m2"]}']);
    client.close();
  });

  it('getToken is called again for every reconnect, and before expiry to refresh the connection', async () => {
    const now = Date.now();
    let n = 0;
    const getToken = vi.fn(async () => fakeToken('u1', Math.floor(now / 1000) + 300 + 300 * n++));
    const client = connect(base({ token: undefined, getToken }));
    await vi.advanceTimersByTimeAsync(0);
    FakeSocket.last.open();
    expect(getToken).toHaveBeenCalledTimes(1);
    // 300 s token: refreshed a minute before expiry.
    await vi.advanceTimersByTimeAsync(239_000);
    expect(getToken).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(getToken).toHaveBeenCalledTimes(2);
    expect(FakeSocket.last.sentOps('refresh')).toHaveLength(1);
    FakeSocket.last.drop(4001, 'token expired');
    await vi.advanceTimersByTimeAsync(0);
    expect(getToken).toHaveBeenCalledTimes(3);
    expect(FakeSocket.last.url.searchParams.get('token')).toBe(await getToken.mock.results[2]!.value);
    client.close();
  });

  it('a fixed token that expired is fatal (nothing could renew it)', async () => {
    const client = connect(base({ token: fakeToken('u1', Math.floor(Date.now() / 1000) + 10) }));
    client.on('error', (e) => errors.push(e));
    await vi.advanceTimersByTimeAsync(0);
    FakeSocket.last.open();
    FakeSocket.last.drop(4001, 'token expired');
    await vi.advanceTimersByTimeAsync(60_000);
    expect(errors.map((e) => e.code)).toEqual(['token_expired']);
    expect(FakeSocket.all).toHaveLength(1);
  });

  it('subscriptions: sent when connected, again after a reconnect with since = last offset; unsubscribe', async () => {
    const client = connect(base());
    const sub = client.subscribe('room:1', () => {});
    client.subscribe('news', () => {}, { since: 5 });
    await vi.advanceTimersByTimeAsync(0);
    const s = FakeSocket.last;
    s.open();
    expect(s.sentOps('subscribe')).toEqual([
      { op: 'subscribe', topic: 'room:1', ref: 'sub:room:1' },
      { op: 'subscribe', topic: 'news', ref: 'sub:news', since: 5 },
    ]);
    s.frame({ op: 'subscribed', topic: 'room:1', offset: 9 });
    s.frame({ op: 'message', topic: 'news', offset: 6, id: 'n6', type: 't', timestamp: 1, data: null });
    s.drop(1006);
    await vi.advanceTimersByTimeAsync(0);
    FakeSocket.last.open();
    expect(FakeSocket.last.sentOps('subscribe')).toEqual([
      { op: 'subscribe', topic: 'room:1', ref: 'sub:room:1', since: 9 },
      { op: 'subscribe', topic: 'news', ref: 'sub:news', since: 6 },
    ]);
    sub.unsubscribe();
    expect(FakeSocket.last.sentOps('unsubscribe')).toEqual([{ op: 'unsubscribe', topic: 'room:1' }]);
    client.close();
  });

  it('gives up a silent connection after 2.5 heartbeats, pinging it first', async () => {
    const client = connect(base());
    await vi.advanceTimersByTimeAsync(0);
    const s = FakeSocket.last;
    s.open({ heartbeat_ms: 1000 });
    await vi.advanceTimersByTimeAsync(1000);
    expect(s.sentOps('ping')).toHaveLength(1); // answered: still alive after 3 s
    s.answersPings = false;
    await vi.advanceTimersByTimeAsync(2000);
    expect(s.closedByClient).toBeNull();
    await vi.advanceTimersByTimeAsync(2000);
    expect(s.closedByClient).toBe(4000);
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeSocket.all).toHaveLength(2);
    client.close();
  });

  it('states and events: connecting → connected → disconnected → connecting → closed', async () => {
    const client = connect(base());
    const states: string[] = [];
    const events: string[] = [];
    client.on('state', (e) => states.push(e.state));
    client.on('connected', (e) => events.push(`connected ${e.transport} since=${e.since}`));
    client.on('disconnected', (e) => events.push(`disconnected ${e.code} ${e.willReconnect}`));
    await vi.advanceTimersByTimeAsync(0);
    FakeSocket.last.open();
    FakeSocket.last.messages(4);
    FakeSocket.last.drop(1011);
    await vi.advanceTimersByTimeAsync(0);
    FakeSocket.last.open();
    client.close();
    expect(states).toEqual(['connected', 'disconnected', 'connecting', 'connected', 'closed']);
    expect(events).toEqual([
      'connected websocket since=null',
      'disconnected 1011 true',
      'connected websocket since=4',
      'disconnected 1000 false',
    ]);
  });
});

describe('token refresh timing', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    FakeSocket.reset();
  });
  afterEach(() => vi.useRealTimers());

  it('a token valid for a year is not refreshed in a loop (timers cap at ~24.8 days)', async () => {
    const getToken = vi.fn(async () => fakeToken('u1', Math.floor(Date.now() / 1000) + 365 * 86_400));
    const client = connect(base({ token: undefined, getToken }));
    await vi.advanceTimersByTimeAsync(0);
    FakeSocket.last.open();
    await vi.advanceTimersByTimeAsync(30 * 86_400_000);
    expect(getToken).toHaveBeenCalledTimes(1);
    client.close();
  });
});
