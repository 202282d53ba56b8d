import type { FastifyInstance } from 'fastify';
import type { Logger } from '../../observability/logger.js';
import type { Gateway } from '../gateway.js';
import type { WebSocketHandshake } from '../transports/websocket.js';
import type { Engine, EngineName } from './engine.js';
import { WsEngine } from './ws-engine.js';

export interface EngineParts {
  /** The HTTP API, routes finished; the engine decides where it listens. */
  readonly http: FastifyInstance;
  readonly handshake: WebSocketHandshake;
  readonly gateway: Pick<Gateway, 'handleFrame' | 'closed' | 'closeFor'>;
  /** PUSH_MAX_SEND_BUFFER. */
  readonly maxSendBufferBytes: number;
  /** PEM files for an engine that terminates TLS itself (uws; with ws, Fastify's https server does). */
  readonly tls: { readonly certFile: string; readonly keyFile: string } | null;
  readonly log: Logger;
}

/**
 * Prepares the engine PUSH_ENGINE names, before anything else is built: `uws` throws
 * `config_invalid` here when its native binary cannot load (no silent fallback to `ws`).
 */
export async function prepareEngine(name: EngineName): Promise<(parts: EngineParts) => Engine> {
  if (name === 'ws') return (p) => new WsEngine(p.http, p.handshake, p.gateway, p.log);
  // Imported only when chosen: the native package is optional.
  const { loadUws, UwsEngine } = await import('./uws-engine.js');
  const uws = loadUws();
  return (p) =>
    new UwsEngine(
      uws,
      p.http,
      p.handshake,
      p.gateway,
      { tls: p.tls, maxSendBufferBytes: p.maxSendBufferBytes },
      p.log,
    );
}
