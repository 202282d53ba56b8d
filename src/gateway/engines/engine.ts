/**
 * The WebSocket engine seam. An engine owns the public port: it takes WebSocket upgrades
 * (through the engine-neutral WebSocketHandshake, which holds every check and the
 * subprotocol choice) and serves every other HTTP request with the Fastify app. Its
 * connections reach the gateway only as `Transport`s (session.ts). `PUSH_ENGINE` picks one.
 */

export const ENGINES = ['ws', 'uws'] as const;
export type EngineName = (typeof ENGINES)[number];

export interface ListenOptions {
  readonly port: number;
  readonly host: string;
}

export interface Engine {
  readonly name: EngineName;
  /** Starts serving the public port; resolves with the bound port (useful with port 0). */
  listen(options: ListenOptions): Promise<number>;
  /** Stops taking connections and waits for in-flight HTTP requests (open sockets are the gateway's to close). */
  close(): Promise<void>;
  /** Cuts every HTTP connection still open (a stream a stuck client holds at shutdown). */
  closeAllConnections(): void;
}
