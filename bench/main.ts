/**
 * `npm run bench [-- options]`: the benchmark's command line. It lives outside the product
 * (its peers import socket.io, a dev dependency) and is built into dist-bench/.
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config.js';
import { DEFAULT_QUEUE_URLS } from './queue-publishers.js';
import { PEERS, type PeerName, runBench } from './run.js';
import type { Protocol } from './worker.js';

const USAGE = `npm run bench -- [--quick] [--engine ws|uws] [--connections 5000,15000]
    [--scenarios idle,broadcast,direct,store,batch,queue,ack,wire,group,room] [--protocol v1,v2]
    [--members 100000,1000000] [--room SUBSCRIBERS,MSG_PER_S,SECONDS,MERGE_MS]
    [--peers ws,socketio,uws,uws-btc,rfc6455 | --no-peers] [--target http://host:port --app A --secret S] [--source-addresses 8]
    [--cpu-prof DIR] [--rates 1000,2500,5000] [--out bench/results]
    [--shards N --db-url mysql://… --bus-url redis://…] [--queue-url amqp://…,nats://…,redis://…]`;

/** `--peers ws,socketio,…`: which raw peers idle, broadcast and direct also run against. */
function parsePeers(list: string): PeerName[] {
  const peers = list.split(',').filter((p) => p !== '');
  for (const p of peers) {
    if (!(p in PEERS)) throw new Error(`--peers: unknown peer "${p}" (${Object.keys(PEERS).join(', ')})`);
  }
  return peers as PeerName[];
}

/** `--protocol v1,v2`: the protocols message-push's clients speak, side by side in one run. */
function parseProtocols(list: string): Protocol[] {
  const protocols = list.split(',').filter((p) => p !== '');
  for (const p of protocols)
    if (p !== 'v1' && p !== 'v2') throw new Error(`--protocol: unknown "${p}" (v1, v2)`);
  return protocols as Protocol[];
}

/** `--room 15000,1000,10,1000`: subscribers, messages a second, seconds, merge_ms. */
function parseRoom(spec: string) {
  const [subscribers, rate, seconds, mergeMs] = spec.split(',').map(Number);
  if (![subscribers, rate, seconds, mergeMs].every((n) => Number.isInteger(n) && n! > 0)) {
    throw new Error('--room: four positive integers, SUBSCRIBERS,MSG_PER_S,SECONDS,MERGE_MS');
  }
  return { subscribers: subscribers!, rate: rate!, seconds: seconds!, mergeMs: mergeMs! };
}

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      help: { type: 'boolean', short: 'h' },
      quick: { type: 'boolean' },
      engine: { type: 'string' },
      connections: { type: 'string' },
      scenarios: { type: 'string' },
      'no-peers': { type: 'boolean' },
      peers: { type: 'string' },
      protocol: { type: 'string' },
      target: { type: 'string' },
      app: { type: 'string' },
      secret: { type: 'string' },
      'source-addresses': { type: 'string' },
      shards: { type: 'string' },
      out: { type: 'string' },
      'cpu-prof': { type: 'string' },
      rates: { type: 'string' },
      members: { type: 'string' },
      room: { type: 'string' },
      'db-url': { type: 'string' },
      'bus-url': { type: 'string' },
      'queue-url': { type: 'string' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  // The store, bus and queues the server under test uses, read as the server reads them.
  const config = loadConfig({
    flags: { dbUrl: values['db-url'], busUrl: values['bus-url'], queueUrl: values['queue-url'] },
  });
  const quick = values.quick === true;
  const engine = values.engine ?? 'ws';
  if (engine !== 'ws' && engine !== 'uws') throw new Error(`--engine: unknown engine "${engine}" (ws, uws)`);
  await runBench({
    quick,
    engine,
    connections: (values.connections ?? (quick ? '5000' : '5000,15000')).split(',').map(Number),
    scenarios: (values.scenarios ?? 'idle,broadcast,direct,store,batch,queue,ack').split(','),
    peers: values['no-peers'] === true ? [] : parsePeers(values.peers ?? 'ws,socketio'),
    protocols: parseProtocols(values.protocol ?? 'v1'),
    target: values.target ?? null,
    app: values.app ?? 'bench',
    secret: values.secret ?? '',
    sourceAddresses: Number(values['source-addresses'] ?? 8),
    shards: Number(values.shards ?? 1),
    dbUrl: config.store.url,
    busUrl: config.busUrl,
    queueUrls: config.queue.urls.length > 0 ? [...config.queue.urls] : Object.values(DEFAULT_QUEUE_URLS),
    out: values.out ?? 'bench/results',
    cpuProfDir: values['cpu-prof'] ?? null,
    rates: values.rates ? values.rates.split(',').map(Number) : null,
    groupMembers: (values.members ?? '100000').split(',').map(Number),
    room: parseRoom(values.room ?? (quick ? '2000,1000,10,1000' : '15000,1000,10,1000')),
  });
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
