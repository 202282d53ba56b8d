/** The v1 suite delivery.test.ts, every socket speaking push.v2.bin (gzip, CRC-32) instead. */
import { useProtocol } from '../../helpers/client.js';

useProtocol('v2');
await import('../delivery.test.js');
