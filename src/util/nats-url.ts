/**
 * What the NATS client takes from a `nats://` URL: the server, and credentials in the URL's
 * user part, as NATS tools spell them: `nats://user:pass@host` or `nats://token@host`.
 */
export function natsConnectOptions(urlText: string): {
  servers: string;
  user?: string;
  pass?: string;
  token?: string;
} {
  const u = new URL(urlText);
  const servers = `${u.hostname}:${u.port || 4222}`;
  if (!u.username) return { servers };
  const user = decodeURIComponent(u.username);
  return u.password ? { servers, user, pass: decodeURIComponent(u.password) } : { servers, token: user };
}
