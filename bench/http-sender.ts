import { connect, type Socket } from 'node:net';

interface Connection {
  readonly socket: Socket;
  /** What has arrived of the current response (latin1: header bytes are ASCII, the body is skipped). */
  received: string;
  /** The request in flight on this connection: its resolver. */
  inFlight: ((status: number) => void) | null;
}

/**
 * The direct scenario's HTTP load: JSON POSTs to one path over a pool of keep-alive
 * connections, one request in flight per connection, each request written with one `write`.
 *
 * Why not node:http's client: it cost the bench ≈ 90 µs of CPU per request on this VM (45 %
 * of a core at 5,000/s, taken from the two cores the server runs on; undici measured the
 * same), and its 64-socket agent capped the offered rate at 64 / response time, so once a
 * response took over 12.8 ms the requests queued inside the bench and the figures measured
 * that queue. Responses must carry Content-Length (Fastify's do); one that does not ends its
 * connection after its status is reported.
 */
export class HttpSender {
  private readonly idle: Connection[] = [];
  private readonly waiting: { body: string; resolve: (status: number) => void }[] = [];
  private readonly open = new Set<Connection>();
  private readonly host: string;
  private readonly port: number;
  private readonly head: string;
  private closed = false;

  constructor(
    url: string,
    authorization: string,
    private readonly maxConnections: number,
  ) {
    const u = new URL(url);
    if (u.protocol !== 'http:') throw new Error(`HttpSender speaks plain HTTP only, not ${u.protocol}`);
    this.host = u.hostname;
    this.port = Number(u.port || 80);
    this.head =
      `POST ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nAuthorization: ${authorization}\r\n` +
      'Content-Type: application/json\r\nContent-Length: ';
    // All up front: a connection opened mid-step, under load, can find the accept queue full
    // and wait out SYN retransmits (the first after 1 s, the next 2 s later), which the step
    // would count as push latency.
    for (let i = 0; i < maxConnections; i++) this.idle.push(this.connect());
  }

  /** Sends one request; resolves with the response status, 0 when the connection failed first. */
  post(body: string): Promise<number> {
    return new Promise((resolve) => {
      if (this.closed) return resolve(0);
      const c = this.idle.pop() ?? (this.open.size < this.maxConnections ? this.connect() : undefined);
      if (c) this.send(c, body, resolve);
      else this.waiting.push({ body, resolve });
    });
  }

  close(): void {
    this.closed = true;
    for (const c of this.open) c.socket.destroy();
    for (const w of this.waiting.splice(0)) w.resolve(0);
  }

  private connect(): Connection {
    const socket = connect(this.port, this.host);
    socket.setNoDelay(true);
    const c: Connection = { socket, received: '', inFlight: null };
    this.open.add(c);
    socket.on('data', (chunk: Buffer) => this.onData(c, chunk));
    socket.on('error', () => {}); // 'close' follows and settles the request
    socket.on('close', () => {
      this.open.delete(c);
      const i = this.idle.indexOf(c);
      if (i >= 0) this.idle.splice(i, 1);
      this.settle(c, 0, false);
      // Requests queued for a connection go out on a new one.
      const next = this.waiting.shift();
      if (next && !this.closed) this.send(this.connect(), next.body, next.resolve);
    });
    return c;
  }

  private send(c: Connection, body: string, resolve: (status: number) => void): void {
    c.inFlight = resolve;
    c.socket.write(`${this.head}${Buffer.byteLength(body)}\r\n\r\n${body}`);
  }

  private onData(c: Connection, chunk: Buffer): void {
    c.received += chunk.toString('latin1');
    const end = c.received.indexOf('\r\n\r\n');
    if (end < 0) return;
    const status = Number(c.received.slice(9, 12));
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(c.received.slice(0, end + 2));
    if (!length) {
      this.settle(c, status, false);
      c.socket.destroy();
      return;
    }
    if (c.received.length < end + 4 + Number(length[1])) return;
    c.received = '';
    this.settle(c, status, true);
  }

  /**
   * Reports the request in flight and, if the connection is reusable, gives it the next one.
   * A response with no request in flight (a server speaking out of turn) changes nothing: the
   * connection is idle already, and listing it twice would put two requests on it at once.
   */
  private settle(c: Connection, status: number, reusable: boolean): void {
    const resolve = c.inFlight;
    if (!resolve) return;
    c.inFlight = null;
    if (reusable) {
      const next = this.waiting.shift();
      if (next) this.send(c, next.body, next.resolve);
      else this.idle.push(c);
    }
    resolve(status);
  }
}
