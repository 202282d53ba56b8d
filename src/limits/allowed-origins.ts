/** `PUSH_ALLOWED_ORIGINS`: exact origins; `*` admits any; empty admits none cross-origin. */
export class AllowedOrigins {
  private readonly exact: ReadonlySet<string>;
  private readonly any: boolean;

  constructor(origins: readonly string[]) {
    this.any = origins.includes('*');
    this.exact = new Set(origins.filter((o) => o !== '*'));
  }

  /**
   * Whether a request carrying `Origin: origin` for `host` may proceed. No Origin (a backend,
   * a device) and the page's own origin (the demo and dashboard, served here) always may.
   */
  admits(origin: string | undefined, host: string | undefined): boolean {
    if (origin === undefined || this.any || this.exact.has(origin)) return true;
    return host !== undefined && sameHost(origin, host);
  }

  /** Whether CORS headers go out for a cross-origin page from `origin`. */
  allowsCors(origin: string): boolean {
    return this.any || this.exact.has(origin);
  }
}

function sameHost(origin: string, host: string): boolean {
  try {
    return new URL(origin).host === host.toLowerCase();
  } catch {
    return false;
  }
}
