import type { HttpRequest, HttpResponse } from '@trufflesuite/uws-js-unofficial';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InProcessHttp } from '../../../src/gateway/engines/http-inprocess.js';

/** What the dispatcher did to uWS's response, and the callbacks it left with it. */
interface FakeExchange {
  readonly res: HttpResponse;
  readonly req: HttpRequest;
  status: string | null;
  headers: [string, string][];
  body: Buffer | null;
  closed: boolean;
  paused: boolean;
  data: ((chunk: ArrayBuffer, isLast: boolean) => void) | null;
  aborted: (() => void) | null;
  ended: Promise<void>;
  /** Resolves at the first `resume` after a `pause`. */
  resumed: Promise<void>;
}

/** A uWS request and response pair, recording the calls the dispatcher makes. */
function exchange(method: string, url: string, headers: Record<string, string>): FakeExchange {
  let end!: () => void;
  let resumed!: () => void;
  const x: FakeExchange = {
    status: null,
    headers: [],
    body: null,
    closed: false,
    paused: false,
    data: null,
    aborted: null,
    ended: new Promise<void>((r) => {
      end = r;
    }),
    resumed: new Promise<void>((r) => {
      resumed = r;
    }),
  } as unknown as FakeExchange;
  const res = {
    onAborted: (cb: () => void) => {
      x.aborted = cb;
    },
    onData: (cb: (chunk: ArrayBuffer, isLast: boolean) => void) => {
      x.data = cb;
    },
    cork: (f: () => void) => f(),
    writeStatus: (s: string) => {
      x.status = s;
      return res;
    },
    writeHeader: (k: string, v: string) => {
      x.headers.push([k, v]);
      return res;
    },
    write: () => true,
    end: (body: string | Buffer) => {
      x.body = Buffer.from(body);
      end();
    },
    endWithoutBody: () => end(),
    pause: () => {
      x.paused = true;
    },
    resume: () => {
      x.paused = false;
      resumed();
    },
    close: () => {
      x.closed = true;
      end();
    },
    onWritable: () => {},
    getRemoteAddressAsText: () => new TextEncoder().encode('192.0.2.7').buffer,
  };
  const req = {
    getQuery: () => '',
    getUrl: () => url,
    getCaseSensitiveMethod: () => method,
    forEach: (f: (k: string, v: string) => void) => {
      for (const [k, v] of Object.entries(headers)) f(k, v);
    },
  };
  return Object.assign(x, { res: res as unknown as HttpResponse, req: req as unknown as HttpRequest });
}

const chunk = (text: string) => new TextEncoder().encode(text).buffer as ArrayBuffer;

describe('in-process HTTP dispatch on the uws engine', () => {
  let app: FastifyInstance;
  let http: InProcessHttp;
  /** The body of the slow route, once read; the route reads it only when told to. */
  let release: () => void;
  let released: Promise<void>;

  beforeEach(async () => {
    released = new Promise((r) => {
      release = r;
    });
    app = Fastify();
    app.get('/peer', async (req) => ({ ip: req.ip, protocol: req.protocol }));
    app.post('/slow', async (req, reply) => {
      // Reads the raw body itself, only after `release`: until then the body waits in uWS.
      await released;
      let n = 0;
      for await (const c of req.raw) n += (c as Buffer).length;
      return reply.send({ n });
    });
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', (_req, _payload, done) => done(null, undefined));
    await app.ready();
    http = new InProcessHttp(app, true);
  });
  afterEach(() => app.close());

  it("the peer's address and TLS reach the request as they would on a socket", async () => {
    const x = exchange('GET', '/peer', { host: 'x' });
    http.dispatch(x.res, x.req);
    await x.ended;
    expect(x.status).toBe('200 OK');
    expect(JSON.parse(x.body!.toString())).toEqual({ ip: '192.0.2.7', protocol: 'https' });
  });

  it('pauses uWS while the reader is full and resumes it when the reader wants more', async () => {
    const x = exchange('POST', '/slow', { host: 'x', 'content-length': String(64 * 1024 * 3) });
    http.dispatch(x.res, x.req);
    const piece = 'x'.repeat(64 * 1024);
    x.data!(chunk(piece), false);
    expect(x.paused).toBe(true);
    release();
    // The route reads what is buffered, which asks for more: uWS resumes.
    await x.resumed;
    expect(x.paused).toBe(false);
    x.data!(chunk(piece), false);
    x.data!(chunk(piece), true);
    await x.ended;
    expect(JSON.parse(x.body!.toString())).toEqual({ n: 3 * 64 * 1024 });
  });

  it('a stop waits for requests in flight; closeAll cuts them', async () => {
    const x = exchange('POST', '/slow', { host: 'x', 'content-length': '10' });
    http.dispatch(x.res, x.req);
    let idle = false;
    const waiting = http.idle().then(() => {
      idle = true;
    });
    x.data!(chunk('01234'), false);
    // A turn of the loop: whatever could settle by itself has.
    await new Promise((r) => setImmediate(r));
    expect(idle).toBe(false);
    http.closeAll();
    await waiting;
    expect(x.closed).toBe(true);
    await expect(http.idle()).resolves.toBeUndefined();
  });

  it('a client that leaves mid-body ends the request without an answer', async () => {
    const x = exchange('POST', '/slow', { host: 'x', 'content-length': '10' });
    http.dispatch(x.res, x.req);
    x.data!(chunk('01234'), false);
    x.aborted!();
    release();
    await http.idle();
    expect(x.status).toBeNull();
    expect(x.closed).toBe(false);
  });
});
