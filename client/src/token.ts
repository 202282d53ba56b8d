/** What the client reads from its own JWT (unverified: the server verifies; this only plans ahead). */
export interface TokenInfo {
  readonly sub: string | null;
  /** Expiry in ms, null when absent or unreadable. */
  readonly exp: number | null;
}

export function readToken(token: string): TokenInfo {
  const part = token.split('.')[1];
  if (!part) return { sub: null, exp: null };
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const binary = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes)) as { sub?: unknown; exp?: unknown };
    return {
      sub: typeof claims.sub === 'string' ? claims.sub : null,
      exp: typeof claims.exp === 'number' ? claims.exp * 1000 : null,
    };
  } catch {
    return { sub: null, exp: null };
  }
}

/**
 * When to fetch a fresh token: a fifth of the remaining lifetime before expiry, at most a
 * minute before it, so a 1 h token is refreshed at 59 min and a 60 s one at 48 s.
 */
export function refreshAt(exp: number, now: number): number {
  const left = exp - now;
  return exp - Math.min(60_000, Math.max(0, left / 5));
}
