import { randomBytes } from 'node:crypto';

/**
 * JSON.parse, except that number literals under one path are returned as their exact
 * source text. The seed's push API sends numeric uids past 2^53, and a user id is the
 * uid's decimal string exactly. (Node 20 has no JSON.parse source-text access.)
 */
export function parseJsonKeepingNumbersAt(text: string, path: readonly string[]): unknown {
  const nonce = randomBytes(6).toString('hex');
  const marker = `\u0000${nonce}:`;
  const raw: string[] = [];
  let out = '';
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j + 1;
    } else if (c === '-' || (c >= '0' && c <= '9')) {
      const m = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
      const token = m ? m[0] : c;
      out += JSON.stringify(`${marker}${raw.length}`);
      raw.push(token);
      i += token.length;
    } else {
      out += c;
      i++;
    }
  }
  const restore = (value: unknown, at: readonly string[]): unknown => {
    if (typeof value === 'string' && value.startsWith(marker)) {
      const token = raw[Number(value.slice(marker.length))]!;
      const exact = at.length === path.length + 1 && path.every((p, k) => p === at[k]);
      return exact ? { exactNumber: token } : JSON.parse(token);
    }
    if (Array.isArray(value)) return value.map((v, k) => restore(v, [...at, String(k)]));
    if (value !== null && typeof value === 'object') {
      const obj: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) {
        // Define, never assign: a "__proto__" key stays a plain key.
        Object.defineProperty(obj, k, {
          value: restore(v, [...at, k]),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      return obj;
    }
    return value;
  };
  return restore(JSON.parse(out), []);
}

/** A number literal kept as text by parseJsonKeepingNumbersAt. */
export interface ExactNumber {
  readonly exactNumber: string;
}

export function isExactNumber(v: unknown): v is ExactNumber {
  return v !== null && typeof v === 'object' && typeof (v as ExactNumber).exactNumber === 'string';
}
