/** Reads one page of a group's members in id order, after `after` (exclusive). */
export type ReadMembers = (groupId: string, after: string | null, limit: number) => Promise<string[]>;

/**
 * The distinct members of several groups, in id order after `after`, as batches of at most
 * `size`: a k-way merge over one page per group, so memory stays at groups × size ids
 * whatever the groups hold, and a member of several groups comes out once.
 */
export async function* memberBatches(
  read: ReadMembers,
  groups: readonly string[],
  after: string | null,
  size: number,
): AsyncGenerator<string[]> {
  const cursors = [...new Set(groups)].map((group) => ({
    group,
    page: [] as string[],
    at: 0,
    last: after,
    done: false,
  }));
  let batch: string[] = [];
  for (;;) {
    let min: string | null = null;
    for (const c of cursors) {
      if (c.at === c.page.length && !c.done) {
        c.page = await read(c.group, c.last, size);
        c.at = 0;
        c.done = c.page.length < size;
        if (c.page.length > 0) c.last = c.page[c.page.length - 1]!;
      }
      if (c.at < c.page.length) {
        const head = c.page[c.at]!;
        if (min === null || compareIds(head, min) < 0) min = head;
      }
    }
    if (min === null) break;
    for (const c of cursors) if (c.at < c.page.length && c.page[c.at] === min) c.at++;
    batch.push(min);
    if (batch.length === size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}

/**
 * Orders ids as both stores do (SQLite BINARY, MySQL utf8mb4_bin): by code point, which is
 * UTF-8 byte order. JavaScript's `<` compares UTF-16 units, which puts characters past
 * U+FFFF (surrogate pairs) before U+E000–U+FFFF: the merge must agree with the store's order.
 */
export function compareIds(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

function codePointRank(unit: number): number {
  if (unit >= 0xd800 && unit <= 0xdfff) return unit + 0x2000; // surrogates: above every BMP unit
  if (unit >= 0xe000) return unit - 0x800;
  return unit;
}
