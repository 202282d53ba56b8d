import { pino } from 'pino';

export type Logger = pino.Logger;

/**
 * Structured JSON logs. Tokens travel in query strings and headers, so URLs are logged
 * without their query and the authorization header is never logged.
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'message-push' },
      redact: {
        paths: ['req.headers.authorization', '*.token', 'token', 'secret', '*.secret'],
        censor: '[redacted]',
      },
    },
    destination,
  );
}

/** A URL without its query string: the query may carry a token. */
export function safeUrl(url: string | undefined): string {
  if (!url) return '';
  const i = url.indexOf('?');
  return i < 0 ? url : url.slice(0, i);
}
