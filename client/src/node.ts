/** Node entry (`message-push/client/node`): everything of the SDK plus file-backed storage and TCP. */
import { gunzipSync } from 'node:zlib';
import { useGunzip } from './transports/v2-channel.js';

// Protocol v2 may then offer gzip besides snappy.
useGunzip((body, maxLength) => gunzipSync(body, { maxOutputLength: maxLength }));

export { FileStorage } from './file-storage.js';
export * from './index.js';
export { type TcpTransportOptions, tcpTransport } from './transports/tcp.js';
