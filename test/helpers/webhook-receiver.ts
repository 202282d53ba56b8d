import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedHook {
  readonly headers: IncomingMessage['headers'];
  readonly raw: string;
  readonly body: { app: string; user: string; messages: { seq: number; id: string; data: unknown }[] };
  readonly at: number;
}

/** What the receiver does with a request: answer with a status, or never answer. */
export type Behaviour = (hook: ReceivedHook, index: number) => number | 'hang';

/** A real HTTP endpoint for hand-off webhooks: records every POST and answers as told. */
export class WebhookReceiver {
  readonly received: ReceivedHook[] = [];
  behaviour: Behaviour = () => 200;
  private readonly hanging: ServerResponse[] = [];
  private waiters: (() => void)[] = [];

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(): Promise<WebhookReceiver> {
    let self: WebhookReceiver | undefined;
    const server = createServer((req, res) => {
      let raw = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => (raw += c));
      req.on('end', () => self!.handle(req, res, raw));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const { port } = server.address() as AddressInfo;
    self = new WebhookReceiver(server, `http://127.0.0.1:${port}/hook`);
    return self;
  }

  private handle(req: IncomingMessage, res: ServerResponse, raw: string): void {
    const hook: ReceivedHook = { headers: req.headers, raw, body: JSON.parse(raw), at: Date.now() };
    this.received.push(hook);
    const what = this.behaviour(hook, this.received.length - 1);
    if (what === 'hang') this.hanging.push(res);
    else res.writeHead(what).end();
    for (const w of this.waiters.splice(0)) w();
  }

  /** Resolves once `check` holds over what was received (checked on every arrival). */
  async until(check: (received: readonly ReceivedHook[]) => boolean, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check(this.received)) {
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`webhook receiver: condition not met; got ${this.received.length} POSTs`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Message ids received, in arrival order (repeats included). */
  ids(): string[] {
    return this.received.flatMap((h) => h.body.messages.map((m) => m.id));
  }

  async stop(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** The check a receiver makes: HMAC-SHA256 of the raw body with the app's webhook secret. */
export function verifySignature(raw: string, header: string | string[] | undefined, secret: string): boolean {
  if (typeof header !== 'string' || !header.startsWith('sha256=')) return false;
  const expected = Buffer.from(createHmac('sha256', secret).update(raw).digest('hex'));
  const given = Buffer.from(header.slice(7));
  return given.length === expected.length && timingSafeEqual(given, expected);
}
