import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { SETTINGS } from '../../src/config.js';
import { TrustedProxies } from '../../src/limits/client-ip.js';
import { ROOT } from '../helpers/child-server.js';
import { startServer, type TestServer } from '../helpers/server.js';

const run = promisify(execFile);
const read = (file: string) => readFileSync(join(ROOT, 'deploy', file), 'utf8');

/** Docker Hub official images the deployment files may use (no engine here to pull them). */
const OFFICIAL_IMAGES = new Set(['node', 'mariadb', 'mysql', 'redis', 'nats', 'rabbitmq', 'haproxy']);
const SETTING_ENVS = new Set(SETTINGS.map((s) => s.env));

/** The image's repository name: `haproxy:2.8` → haproxy; `library/redis` → redis. */
const repository = (image: string) =>
  image
    .split('@')[0]!
    .split(':')[0]!
    .replace(/^(docker\.io\/)?(library\/)?/, '');

/** `push_*` metric names in PromQL expressions, without the histogram series suffixes. */
function metricNames(exprs: string[]): Set<string> {
  const names = new Set<string>();
  for (const e of exprs) for (const m of e.matchAll(/\bpush_[a-z0-9_]+/g)) names.add(m[0]);
  return names;
}

interface ComposeService {
  image?: string;
  build?: unknown;
  environment?: Record<string, string>;
  networks?: Record<string, { ipv4_address?: string }>;
}

describe('deploy/compose.yaml', () => {
  const compose = parse(read('compose.yaml'), { merge: true }) as {
    services: Record<string, ComposeService>;
  };

  it('runs three nodes behind haproxy with MariaDB, Redis and NATS', () => {
    const services = compose.services;
    const nodes = Object.entries(services).filter(([, s]) => s.build !== undefined);
    expect(nodes.map(([name]) => name).sort()).toEqual(['node1', 'node2', 'node3']);
    for (const [name, s] of nodes) {
      expect(s.environment?.PUSH_NODE_ID).toBe(name);
      expect(s.environment?.PUSH_DB_URL).toMatch(/^mysql:\/\/.*@mariadb:3306\//);
      expect(s.environment?.PUSH_BUS_URL).toBe('redis://redis:6379');
    }
    const haproxyCfg = read('haproxy-compose.cfg');
    for (const [name] of nodes)
      expect(haproxyCfg).toMatch(new RegExp(`^\\s*server ${name} ${name}:8080 check$`, 'm'));
  });

  it('names only official Docker Hub images, or the image it builds', () => {
    for (const [name, s] of Object.entries(compose.services)) {
      if (s.build !== undefined) continue;
      expect(s.image, `${name} has neither image nor build`).toBeDefined();
      expect(OFFICIAL_IMAGES.has(repository(s.image!)), `${name}: ${s.image}`).toBe(true);
    }
    const from = [...read('Dockerfile').matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1]!);
    expect(from.length).toBeGreaterThanOrEqual(2); // multi-stage
    for (const image of from) expect(OFFICIAL_IMAGES.has(repository(image)), image).toBe(true);
  });

  it('sets only settings that exist in src/config.ts', () => {
    const used = new Set<string>();
    for (const s of Object.values(compose.services))
      for (const key of Object.keys(s.environment ?? {})) if (key.startsWith('PUSH_')) used.add(key);
    for (const m of read('Dockerfile').matchAll(/\b(PUSH_[A-Z0-9_]+)=/g)) used.add(m[1]!);
    for (const m of read('message-push.service').matchAll(/^Environment=(PUSH_[A-Z0-9_]+)=/gm))
      used.add(m[1]!);
    expect(used.size).toBeGreaterThan(5);
    expect([...used].filter((env) => !SETTING_ENVS.has(env))).toEqual([]);
  });
});

describe('the client address behind the shipped haproxy', () => {
  const compose = parse(read('compose.yaml'), { merge: true }) as {
    services: Record<string, ComposeService>;
    networks?: Record<string, { ipam?: { config?: { subnet: string }[] } }>;
  };
  /** The client address a node with this setting sees for a request haproxy forwarded from `peer`. */
  const seen = (setting: string | undefined, peer: string) =>
    new TrustedProxies((setting ?? '').split(',').filter(Boolean)).clientAddress(peer, '203.0.113.7');

  it('compose nodes believe X-Forwarded-For from haproxy and from no other peer', () => {
    const haproxy = compose.services.haproxy!;
    const address = haproxy.networks?.default?.ipv4_address;
    expect(address, 'haproxy needs a fixed address the nodes can trust').toBeDefined();
    const subnet = compose.networks?.default?.ipam?.config?.[0]?.subnet;
    expect(subnet).toBeDefined();
    expect(new TrustedProxies([subnet!]).isTrusted(address!)).toBe(true);
    for (const [name, s] of Object.entries(compose.services).filter(([, s]) => s.build !== undefined)) {
      const setting = s.environment?.PUSH_TRUSTED_PROXIES;
      expect(seen(setting, address!), name).toBe('203.0.113.7');
      // Another container on the network (or a client reaching a node) cannot speak for anyone.
      expect(seen(setting, '172.28.0.99'), name).toBe('172.28.0.99');
    }
  });

  it('haproxy.cfg names the PUSH_TRUSTED_PROXIES its nodes need, and it covers the address haproxy dials from', () => {
    const cfg = read('haproxy.cfg');
    const setting = /PUSH_TRUSTED_PROXIES=([\d./:,a-f]+[\da-f])/.exec(cfg)?.[1];
    expect(setting).toBeDefined();
    const servers = [...cfg.matchAll(/^\s*server \S+ ([\d.]+):\d+/gm)].map((m) => m[1]!);
    expect(servers.length).toBeGreaterThan(1);
    // Nodes on loopback see haproxy's connections come from loopback.
    for (const server of servers) expect(server.startsWith('127.')).toBe(true);
    expect(seen(setting, '127.0.0.1')).toBe('203.0.113.7');
  });

  it('no shipped file or operations guide still recommends PUSH_TRUST_PROXY', () => {
    const files = [
      'haproxy.cfg',
      'haproxy-compose.cfg',
      'compose.yaml',
      'Dockerfile',
      'message-push.service',
    ];
    for (const file of files) expect(read(file), file).not.toMatch(/PUSH_TRUST_PROXY\b/);
    for (const doc of ['README.md', 'docs/operations.md', 'docs/deployment.md'].filter((d) =>
      existsSync(join(ROOT, d)),
    ))
      expect(readFileSync(join(ROOT, doc), 'utf8'), doc).not.toMatch(/PUSH_TRUST_PROXY\b/);
  });
});

describe('deploy/message-push.service', () => {
  const verify = existsSync('/usr/bin/systemd-analyze') || existsSync('/bin/systemd-analyze');
  it.skipIf(!verify)('passes systemd-analyze verify', async () => {
    const { stderr } = await run('systemd-analyze', ['verify', join(ROOT, 'deploy/message-push.service')]);
    expect(stderr).toBe('');
  });

  it('runs unprivileged and sandboxed', () => {
    const unit = read('message-push.service');
    for (const line of ['NoNewPrivileges=yes', 'ProtectSystem=strict', 'ProtectHome=yes', 'PrivateTmp=yes'])
      expect(unit).toContain(line);
    expect(unit).toMatch(/^User=(?!root)\S+$/m);
  });
});

describe('alert rules and the Grafana dashboard', () => {
  let srv: TestServer;
  let exported: Set<string>;
  beforeAll(async () => {
    srv = await startServer();
    const text = await (await fetch(`${srv.http}/metrics`)).text();
    exported = new Set<string>();
    for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      const [, name, type] = m as unknown as [string, string, string];
      exported.add(name);
      if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) exported.add(name + s);
      if (type === 'summary') for (const s of ['_sum', '_count']) exported.add(name + s);
    }
  });
  afterAll(() => srv?.stop());

  it('the alert rules use only metrics the server exports', () => {
    const rules = parse(read('prometheus-alerts.yaml')) as {
      groups: { rules: { alert: string; expr: string }[] }[];
    };
    const exprs = rules.groups.flatMap((g) => g.rules.map((r) => r.expr));
    expect(exprs.length).toBeGreaterThan(5);
    const used = metricNames(exprs);
    expect(used.size).toBeGreaterThan(5);
    expect([...used].filter((n) => !exported.has(n))).toEqual([]);
  });

  it('the dashboard uses only metrics the server exports', () => {
    const dashboard = JSON.parse(read('grafana-dashboard.json')) as {
      panels: { targets: { expr: string }[] }[];
      templating: { list: { query?: unknown }[] };
    };
    const exprs = [
      ...dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr)),
      ...dashboard.templating.list.map((v) => (typeof v.query === 'string' ? v.query : '')),
    ];
    const used = metricNames(exprs);
    expect(used.size).toBeGreaterThan(8);
    expect([...used].filter((n) => !exported.has(n))).toEqual([]);
  });
});
