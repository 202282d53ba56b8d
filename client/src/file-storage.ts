import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { PushStorage } from './storage.js';

/**
 * Node: resume state in a JSON file, so a process that restarts resumes where it stopped.
 * Writes are synchronous and atomic (temp file + rename): a crash leaves the old or the new
 * state, never a torn file.
 */
export class FileStorage implements PushStorage {
  private cache: Record<string, string> | null = null;

  constructor(readonly path: string) {}

  get(key: string): string | null {
    return this.load()[key] ?? null;
  }

  set(key: string, value: string): void {
    const all = this.load();
    if (all[key] === value) return;
    all[key] = value;
    mkdirSync(dirname(this.path), { recursive: true });
    const tmp = `${this.path}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(all));
    renameSync(tmp, this.path);
  }

  private load(): Record<string, string> {
    if (this.cache) return this.cache;
    try {
      const parsed = JSON.parse(readFileSync(this.path, 'utf8')) as unknown;
      this.cache = parsed && typeof parsed === 'object' ? (parsed as Record<string, string>) : {};
    } catch {
      this.cache = {};
    }
    return this.cache;
  }
}
