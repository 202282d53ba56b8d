import { readFileSync } from 'node:fs';
import { PushError } from '../domain/errors.js';

/** What mysql2 takes as `ssl`: certificate checks on unless the URL turns them off. */
export interface MysqlTls {
  readonly ca?: string;
  readonly rejectUnauthorized?: boolean;
}

/**
 * TLS for a `mysql://` URL from its query, as MySQL clients spell it:
 * `?ssl=true` (or `required`): TLS, the server's certificate checked against the system CAs
 * (and NODE_EXTRA_CA_CERTS); `?ssl-ca=/path/ca.pem`: TLS checked against that CA file;
 * `?ssl=skip-verify`: TLS without the check (a test server). Without them: no TLS.
 */
export function mysqlTlsOptions(url: URL): { ssl?: MysqlTls } {
  const ssl = url.searchParams.get('ssl')?.toLowerCase();
  const caFile = url.searchParams.get('ssl-ca');
  if (ssl === undefined && caFile === null) return {};
  if (ssl !== undefined && !['true', '1', 'required', 'skip-verify', 'false', '0'].includes(ssl)) {
    throw new PushError(
      'config_invalid',
      `PUSH_DB_URL: ssl=${ssl.slice(0, 40)}: use true, skip-verify or false`,
    );
  }
  if ((ssl === 'false' || ssl === '0') && caFile === null) return {};
  let ca: string | undefined;
  if (caFile !== null) {
    try {
      ca = readFileSync(caFile, 'utf8');
    } catch (err) {
      throw new PushError('config_invalid', `PUSH_DB_URL: ssl-ca: cannot read ${caFile}`, { cause: err });
    }
  }
  return { ssl: { ...(ca ? { ca } : {}), ...(ssl === 'skip-verify' ? { rejectUnauthorized: false } : {}) } };
}
