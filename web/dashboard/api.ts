/** The admin API (/v1/admin/*) as the dashboard calls it: Bearer admin token, JSON both ways. */

export interface StatsSnapshot {
  now: number;
  intervalMs: number;
  totals: Record<'in' | 'out' | 'acks' | 'retries' | 'failures', number>;
  connections: { total: number; byPlatform: Record<string, number> };
  series: Record<'t' | 'connections' | 'in' | 'out' | 'acks' | 'retries' | 'failures', number[]>;
}

export interface ConnectionInfo {
  connection_id: string;
  device: string;
  platform: string;
  node: string;
  connected_at: number;
  last_heartbeat: number;
}

export interface Presence {
  app: string;
  user: string;
  online: boolean;
  connections: ConnectionInfo[];
}

export interface RecentMessage {
  app: string;
  id: string;
  type: string;
  timestamp: number;
  data: unknown;
  to: unknown;
  topic?: string;
  offset?: number;
  recipients_total: number;
  status_counts: Record<string, number>;
  recipients: { user: string; seq: number; status: string; retries: number }[];
}

export interface GroupSize {
  app: string;
  group: string;
  members: number;
}

export interface RoomSettings {
  app: string;
  topic: string;
  merge_ms: number;
}

export interface WebhookPanel {
  app: string;
  webhook: { url: string; after_ms: number } | null;
  handoffs: Record<'pending' | 'delivered' | 'failed', number>;
}

export class AdminError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export class AdminApi {
  constructor(private readonly token: string) {}

  stats(): Promise<StatsSnapshot> {
    return this.call('GET', '/v1/admin/stats');
  }

  apps(): Promise<{ apps: string[] }> {
    return this.call('GET', '/v1/admin/apps');
  }

  presence(app: string, user: string): Promise<Presence> {
    return this.call('GET', `/v1/admin/presence?${new URLSearchParams({ app, user })}`);
  }

  kick(app: string, user: string, device?: string): Promise<{ closed: number }> {
    const q = new URLSearchParams({ app, user, ...(device ? { device } : {}) });
    return this.call('DELETE', `/v1/admin/connections?${q}`);
  }

  messages(app: string, limit = 20): Promise<{ messages: RecentMessage[] }> {
    return this.call('GET', `/v1/admin/messages?${new URLSearchParams({ app, limit: String(limit) })}`);
  }

  groups(app: string, limit = 20): Promise<{ groups: GroupSize[] }> {
    return this.call('GET', `/v1/admin/groups?${new URLSearchParams({ app, limit: String(limit) })}`);
  }

  rooms(app: string): Promise<{ rooms: RoomSettings[] }> {
    return this.call('GET', `/v1/admin/rooms?${new URLSearchParams({ app })}`);
  }

  webhook(app: string): Promise<WebhookPanel> {
    return this.call('GET', `/v1/admin/webhook?${new URLSearchParams({ app })}`);
  }

  push(body: Record<string, unknown>): Promise<{ id: string; recipients: number; duplicate: boolean }> {
    return this.call('POST', '/v1/admin/push', body);
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(path, {
      method,
      headers: {
        authorization: `Bearer ${this.token}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const parsed = await res.json().catch(() => ({}));
    if (!res.ok) throw new AdminError(res.status, parsed?.error?.message ?? `HTTP ${res.status}`);
    return parsed as T;
  }
}
