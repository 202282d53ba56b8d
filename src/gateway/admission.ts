import type { IncomingHttpHeaders } from 'node:http';
import type { AppRegistry } from '../auth/app-registry.js';
import type { TokenClaims } from '../auth/tokens.js';
import type { InterestTracker } from '../cluster/interest-tracker.js';
import type { Presence } from '../cluster/presence.js';
import type { LimitsConfig } from '../config.js';
import { PushError } from '../domain/errors.js';
import type { AllowedOrigins } from '../limits/allowed-origins.js';
import { rateKey } from '../limits/client-ip.js';
import type { LoadMonitor } from '../limits/load-monitor.js';
import { UserReservations } from '../limits/user-reservations.js';
import { parseHandshake } from './handshake.js';
import type { Hub } from './hub.js';
import { resolvePlatform } from './platform.js';
import { KeyedRateLimiter } from './rate-limiter.js';

/** A client that passed the handshake checks and may be given a session. */
export interface Admission {
  readonly appId: string;
  readonly claims: TokenClaims;
  readonly platform: string;
  readonly device: string | null;
  readonly since: number | null;
}

export interface AdmissionOptions {
  readonly limits: LimitsConfig;
  readonly allowedOrigins: AllowedOrigins;
}

export interface AdmissionDeps {
  readonly hub: Pick<Hub, 'size' | 'sessionsOf'>;
  readonly apps: Pick<AppRegistry, 'verifyToken'>;
  /** Connections of a user on other nodes, for the cluster-wide per-user limit. */
  readonly presence: Pick<Presence, 'countElsewhere'>;
  /** Cluster mode: makes the bus bring this node a user's envelopes before they are needed. */
  readonly interest?: Pick<InterestTracker, 'user'> | null;
  /** Sheds new connections while the event loop is stalled (absent: never). */
  readonly load?: Pick<LoadMonitor, 'isOverloaded'>;
}

/**
 * Who may connect: the handshake checks in the order docs/reference/client-api.md implies,
 * the process and per-user connection limits, and the reservations that make concurrent
 * handshakes of one user see each other before their sessions exist. Every transport's
 * handshake goes through here, so a limit reads the same on WebSocket, SSE, long-poll and TCP.
 */
export class Admissions {
  private readonly handshakes: KeyedRateLimiter;
  private readonly reservations = new UserReservations();

  constructor(
    private readonly options: AdmissionOptions,
    private readonly deps: AdmissionDeps,
  ) {
    this.handshakes = new KeyedRateLimiter(options.limits.handshakesPerSecondPerIp);
  }

  /**
   * Per-IP rate, parameters (400), token presence (401), app (403), token validity (401),
   * origin (403), per-user connection limit (429); 503 first while overloaded or full.
   * On success the user holds a reservation until `take` (or `release`).
   */
  async admit(headers: IncomingHttpHeaders, url: URL, ip: string): Promise<Admission> {
    this.checkProcessCapacity();
    if (!this.handshakes.take(rateKey(ip)))
      throw new PushError('rate_limited', 'too many handshakes from this address');
    const params = parseHandshake(headers, url);
    const claims = await this.deps.apps.verifyToken(params.appId, params.token);
    const origin = headers.origin;
    if (!this.options.allowedOrigins.admits(origin, headers.host)) {
      throw new PushError('forbidden', 'origin not allowed');
    }
    const max = this.options.limits.maxConnectionsPerUser;
    const before = this.heldBy(params.appId, claims.userId);
    const elsewhere =
      before >= max ? 0 : await this.deps.presence.countElsewhere(params.appId, claims.userId);
    // From here to the reservation nothing awaits: concurrent handshakes see each other's slots.
    const open = this.heldBy(params.appId, claims.userId) + elsewhere;
    if (open >= max) {
      throw new PushError('too_many_connections', `user already has ${open} connections`);
    }
    this.reservations.reserve(params.appId, claims.userId);
    // Listening before the session exists: whatever is committed after its backlog read is routed here.
    await this.deps.interest?.user(params.appId, claims.userId);
    return {
      appId: params.appId,
      claims,
      platform: resolvePlatform(url.pathname, params.platform, claims),
      device: params.device,
      since: params.since,
    };
  }

  /**
   * Turns an admission's reservation into a connection slot: throws 503 `overloaded` when
   * PUSH_MAX_CONNECTIONS filled up since the check (the transport closes with 1013).
   */
  take(a: Admission): void {
    this.release(a);
    this.checkConnectionCap();
  }

  /** Gives back an admission's reservation without opening a connection. */
  release(a: Admission): void {
    this.reservations.release(a.appId, a.claims.userId);
  }

  /** 503 `overloaded` while the event loop is stalled or the node is at PUSH_MAX_CONNECTIONS. */
  private checkProcessCapacity(): void {
    if (this.deps.load?.isOverloaded()) {
      throw new PushError('overloaded', 'the server is overloaded; retry after Retry-After seconds');
    }
    this.checkConnectionCap();
  }

  private checkConnectionCap(): void {
    const cap = this.options.limits.maxConnections;
    if (cap > 0 && this.deps.hub.size >= cap) {
      throw new PushError('overloaded', `this node holds its maximum of ${cap} connections`);
    }
  }

  /** Connections a user holds on this node, counting handshakes that passed the check but are not open yet. */
  private heldBy(appId: string, userId: string): number {
    return this.deps.hub.sessionsOf(appId, userId).length + this.reservations.count(appId, userId);
  }
}
