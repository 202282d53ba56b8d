import { MemoryBus } from '../../src/bus/memory-bus.js';
import { createNatsBus } from '../../src/bus/nats-bus.js';
import { createRedisBus } from '../../src/bus/redis-bus.js';
import { createLogger } from '../../src/observability/logger.js';
import { describeWithService } from '../helpers/services.js';
import { busContract } from './bus-contract.js';

const log = createLogger('silent');

busContract('memory', async () => new MemoryBus(), false);
await describeWithService('redis', 'bus', (url) =>
  busContract('redis', (node, ns) => createRedisBus(url, node, log, 'interest', ns)),
);
await describeWithService('nats', 'bus', (url) =>
  busContract('nats', (node, ns) => createNatsBus(url, node, log, 'interest', ns)),
);
// Broadcast mode (PUSH_BUS_ROUTING=broadcast) keeps the contract minus the filtering.
await describeWithService('redis', 'bus', (url) =>
  busContract('redis, broadcast', (node, ns) => createRedisBus(url, node, log, 'broadcast', ns), true, false),
);
await describeWithService('nats', 'bus', (url) =>
  busContract('nats, broadcast', (node, ns) => createNatsBus(url, node, log, 'broadcast', ns), true, false),
);
