import type { Logger } from '../observability/logger.js';
import type { Bus } from './bus.js';
import { MemoryBus } from './memory-bus.js';
import { createNatsBus } from './nats-bus.js';
import { createRedisBus } from './redis-bus.js';
import { type BusRouting, DEFAULT_BUS_NAMESPACE } from './remote-bus.js';

/** Chooses the bus driver by the scheme of PUSH_BUS_URL (config has validated it). */
export async function createBus(
  url: string,
  nodeId: string,
  log: Logger,
  routing: BusRouting = 'interest',
  namespace = DEFAULT_BUS_NAMESPACE,
): Promise<Bus> {
  if (url === '') return new MemoryBus();
  if (url.startsWith('nats://')) return createNatsBus(url, nodeId, log, routing, namespace);
  return createRedisBus(url, nodeId, log, routing, namespace);
}
