/**
 * The v1 suite slow-consumer.test.ts, every socket speaking push.v2.bin instead, without
 * compression: its padding would shrink to nothing and no client would ever be slow.
 */
import { useProtocol } from '../../helpers/client.js';

useProtocol('v2', 'codecs=none');
await import('../slow-consumer.test.js');
