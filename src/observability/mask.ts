/** Query parameters whose values are credentials (`?password=`, `?token=`, …). */
const SECRET_PARAMS =
  /([?&;](?:password|passwd|pass|pwd|token|secret|auth|auth_token|access_token|api_key|apikey|key)=)[^&;#]*/gi;

/**
 * A URL fit for logs and errors, every credential form masked: `user:pass@` → `user:***@`,
 * `:pass@` → `:***@`, a lone `token@` (NATS, Redis 6 ACL-less) → `***@`, and secret-looking
 * query parameters → `***`. The one helper every log line with a backend URL goes through.
 */
export function maskCredentials(url: string): string {
  return url
    .replace(/^([a-z][a-z0-9+.-]*:\/\/)([^/?#@]*)@/i, (_m, scheme: string, userinfo: string) => {
      const colon = userinfo.indexOf(':');
      if (colon < 0) return `${scheme}***@`;
      return `${scheme}${userinfo.slice(0, colon)}:***@`;
    })
    .replace(SECRET_PARAMS, '$1***');
}
