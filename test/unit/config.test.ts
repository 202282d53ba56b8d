import { describe, expect, it } from 'vitest';
import { describeConfig, loadConfig, parseDuration, SETTINGS } from '../../src/config.js';
import { PushError } from '../../src/domain/errors.js';

describe('config', () => {
  it('has embedded defaults: port 8080, SQLite under ./data, 15 s heartbeat', () => {
    const c = loadConfig({ env: {} });
    expect(c.port).toBe(8080);
    expect(c.store.url).toMatch(/^sqlite:.*data\/push\.db$/);
    expect(c.heartbeatMs).toBe(15_000);
    expect(c.limits.maxConnectionsPerUser).toBe(20);
    expect(c.limits.maxFrameBytes).toBe(65_536);
    expect(Object.isFrozen(c) && Object.isFrozen(c.limits)).toBe(true);
  });

  it('PUSH_ENGINE picks ws (the default) or uws; anything else is config_invalid', () => {
    expect(loadConfig({ env: {} }).engine).toBe('ws');
    expect(loadConfig({ env: { PUSH_ENGINE: 'uws' } }).engine).toBe('uws');
    expect(() => loadConfig({ env: { PUSH_ENGINE: 'uwebsockets' } })).toThrow(
      /PUSH_ENGINE: expected ws or uws/,
    );
  });

  it('lets env override defaults and flags override env', () => {
    const c = loadConfig({ env: { PUSH_PORT: '9000', PUSH_HEARTBEAT_MS: '2s' }, flags: { port: '9100' } });
    expect(c.port).toBe(9100);
    expect(c.heartbeatMs).toBe(2000);
  });

  it('parses PUSH_APPS pairs and masks secrets when printed', () => {
    const s1 = 'first-secret-0123456789abcdef';
    const s2 = 'second:secret-0123456789abcdef';
    const c = loadConfig({ env: { PUSH_APPS: `a:${s1},b:${s2}`, PUSH_DB_URL: 'mysql://u:pw@h/db' } });
    expect(c.apps).toEqual([
      { appId: 'a', secret: s1 },
      { appId: 'b', secret: s2 },
    ]);
    const printed = JSON.stringify(describeConfig(c));
    expect(printed).not.toContain(s1);
    expect(printed).not.toContain(':pw@');
  });

  it.each([
    [{ PUSH_PORT: 'eighty' }, 'PUSH_PORT'],
    [{ PUSH_PORT: '70000' }, 'PUSH_PORT'],
    [{ PUSH_DB_URL: 'postgres://x' }, 'PUSH_DB_URL'],
    [{ PUSH_DB_URL: 'mysql://[bad/x' }, 'PUSH_DB_URL'],
    [{ PUSH_DB_URL: 'mysql://h/%zz' }, 'PUSH_DB_URL'],
    [{ PUSH_HEARTBEAT_MS: 'soon' }, 'PUSH_HEARTBEAT_MS'],
    [{ PUSH_APPS: 'no-secret' }, 'PUSH_APPS'],
    [{ PUSH_APPS: `good:${'x'.repeat(24)},weak:secret1` }, 'app "weak"'],
    [{ PUSH_SQLITE_SYNC: 'sometimes' }, 'PUSH_SQLITE_SYNC'],
    [{ PUSH_TRUST_PROXY: 'maybe' }, 'PUSH_TRUST_PROXY'],
  ])('fails fast with config_invalid naming the setting for %o', (env, name) => {
    let err: unknown;
    try {
      loadConfig({ env });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PushError);
    expect((err as PushError).code).toBe('config_invalid');
    expect((err as PushError).message).toContain(name);
  });

  it('several processes need MySQL and a bus: SQLite is refused for them, with the reason', () => {
    const mysql = 'mysql://u:pw@h/db';
    expect(() => loadConfig({ env: { PUSH_WORKERS: '3' } })).toThrow(
      /PUSH_WORKERS=3 needs a shared store.*PUSH_DB_URL=mysql/,
    );
    expect(() => loadConfig({ env: { PUSH_BUS_URL: 'redis://127.0.0.1:6379' } })).toThrow(
      /SQLite serves one process only/,
    );
    expect(() => loadConfig({ env: { PUSH_WORKERS: '2', PUSH_DB_URL: mysql } })).toThrow(
      /PUSH_WORKERS=2 needs PUSH_BUS_URL/,
    );
    expect(() => loadConfig({ env: { PUSH_BUS_URL: 'amqp://x', PUSH_DB_URL: mysql } })).toThrow(
      /PUSH_BUS_URL: unsupported scheme/,
    );
    expect(() => loadConfig({ env: { PUSH_WORKERS: '0' } })).toThrow(/PUSH_WORKERS: at least 1/);
    const c = loadConfig({
      env: { PUSH_WORKERS: '4', PUSH_DB_URL: mysql, PUSH_BUS_URL: 'nats://:tok@h:4222' },
    });
    expect([c.workers, c.busUrl]).toEqual([4, 'nats://:tok@h:4222']);
    expect(loadConfig({ env: {} }).workers).toBe(1);
  });

  it('parses durations', () => {
    expect(parseDuration('250')).toBe(250);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('15s')).toBe(15_000);
    expect(parseDuration('7d')).toBe(604_800_000);
    expect(() => parseDuration('7 weeks')).toThrow();
  });

  it('documents every setting with a PUSH_ variable', () => {
    for (const s of SETTINGS) {
      expect(s.env).toMatch(/^PUSH_[A-Z_]+$/);
      expect(s.doc.length).toBeGreaterThan(3);
    }
  });
});

describe('config: bus namespace', () => {
  const mysql = (db: string) => `mysql://root@127.0.0.1:3306/${db}`;
  it('defaults to the database name, so clusters with their own databases stay apart on one broker', () => {
    expect(loadConfig({ env: {} }).busNamespace).toBe('default');
    expect(loadConfig({ env: { PUSH_DB_URL: mysql('push_eu') } }).busNamespace).toBe('push_eu');
    expect(loadConfig({ env: { PUSH_DB_URL: 'mariadb://root@127.0.0.1/push_us' } }).busNamespace).toBe(
      'push_us',
    );
    expect(loadConfig({ env: { PUSH_DB_URL: mysql('odd%24name.x') } }).busNamespace).toBe('odd_name_x');
  });
  it('takes PUSH_BUS_NAMESPACE and refuses one a channel or subject cannot carry', () => {
    expect(loadConfig({ env: { PUSH_DB_URL: mysql('a'), PUSH_BUS_NAMESPACE: 'blue' } }).busNamespace).toBe(
      'blue',
    );
    expect(() => loadConfig({ env: { PUSH_BUS_NAMESPACE: 'a.b' } })).toThrow(/PUSH_BUS_NAMESPACE/);
  });
});

describe('config: admin token and demo tokens', () => {
  it('the admin token is off unless set, at least 16 characters, and masked when printed', () => {
    expect(loadConfig({ env: {} }).adminToken).toBeNull();
    const c = loadConfig({ env: { PUSH_ADMIN_TOKEN: 'a-long-admin-token-1' } });
    expect(c.adminToken).toBe('a-long-admin-token-1');
    expect(JSON.stringify(describeConfig(c))).not.toContain('a-long-admin-token-1');
    expect(() => loadConfig({ env: { PUSH_ADMIN_TOKEN: 'short' } })).toThrow(/PUSH_ADMIN_TOKEN/);
  });

  it('demo mode is off unless asked for (PUSH_DEMO or --demo), also without PUSH_APPS; PUSH_DEMO_TOKENS follows it unless set', () => {
    expect(loadConfig({ env: {} })).toMatchObject({ demo: false, demoTokens: false });
    expect(loadConfig({ env: { PUSH_DEMO: 'true' } })).toMatchObject({ demo: true, demoTokens: true });
    expect(loadConfig({ env: {}, flags: { demo: true } })).toMatchObject({ demo: true, demoTokens: true });
    expect(
      loadConfig({ env: { PUSH_APPS: `a:${'s'.repeat(24)}`, PUSH_DEMO_TOKENS: 'true' } }).demoTokens,
    ).toBe(true);
    expect(loadConfig({ env: { PUSH_DEMO: 'true', PUSH_DEMO_TOKENS: 'off' } }).demoTokens).toBe(false);
  });
});
