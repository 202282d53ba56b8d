import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CLOSE } from '../../../client/src/protocol.js';
import { closeCodeOf, ERRORS } from '../../../src/domain/errors.js';

const SRC = fileURLToPath(new URL('../../../src', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : path.endsWith('.ts') ? [path] : [];
  });
}

describe('one close vocabulary: the registry, the server and the client SDK agree', () => {
  it('the SDK names every close code the registry can send, with the same meaning', () => {
    expect(CLOSE.tokenExpired).toBe(closeCodeOf('token_expired'));
    expect(CLOSE.kicked).toBe(closeCodeOf('kicked'));
    expect(CLOSE.rateLimited).toBe(closeCodeOf('rate_limited'));
    expect(CLOSE.tooSlow).toBe(closeCodeOf('slow_consumer'));
    expect(CLOSE.policy).toBe(closeCodeOf('policy_violation'));
    expect(CLOSE.internal).toBe(closeCodeOf('internal'));
    expect(CLOSE.goingAway).toBe(closeCodeOf('shutting_down'));
    expect(CLOSE.tooBig).toBe(closeCodeOf('frame_too_large'));
    expect(CLOSE.overloaded).toBe(closeCodeOf('overloaded'));
    const sdk = new Set<number>(Object.values(CLOSE));
    for (const [code, spec] of Object.entries(ERRORS)) {
      if ('closeCode' in spec) expect(sdk.has(spec.closeCode), `${code} → ${spec.closeCode}`).toBe(true);
    }
  });

  it('every SDK close code but 1000 (normal) and 1006 (no close frame) comes from the registry', () => {
    const registry = new Set(Object.values(ERRORS).flatMap((s) => ('closeCode' in s ? [s.closeCode] : [])));
    for (const [name, code] of Object.entries(CLOSE)) {
      if (code === 1000 || code === 1006) continue;
      expect(registry.has(code), `CLOSE.${name} = ${code}`).toBe(true);
    }
  });

  it('the server closes sockets only with codes read from the registry, never with literals', () => {
    const offenders: string[] = [];
    for (const file of sources(SRC)) {
      if (file.includes(`${join('src', 'bench')}`)) continue;
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/\.close\((?:[\w.]+,\s*)?\d{4}\b/g)) {
        offenders.push(`${file.slice(SRC.length + 1)}: ${m[0]}`);
      }
    }
    expect(offenders).toEqual([]);
  });
});
