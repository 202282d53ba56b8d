/**
 * A load-generator worker (a child process of the bench orchestrator): opens up to ~15k
 * client sockets, spread over loopback source addresses, and reports what they receive.
 * Commands arrive over IPC; every run is bounded by the orchestrator's deadlines.
 */
import WebSocket from 'ws';
import { signClientToken } from '../src/auth/tokens.js';
import { SUBPROTOCOL_BINARY } from '../src/gateway/protocol/binary-codec.js';
import { FrameReader, FrameWriter, KIND } from '../src/gateway/protocol/v2-frame.js';

/** The client a worker opens: message-push's, a plain WebSocket (the raw peers) or Socket.IO's. */
export type PeerKind = 'push' | 'ws' | 'socketio';
export type Protocol = 'v1' | 'v2';

export type WorkerCommand =
  | {
      op: 'connect';
      kind: PeerKind;
      url: string;
      /** Index of this worker's first client: user ids are `u<index>`. */
      first: number;
      count: number;
      /** Source addresses to spread sockets over (127.0.0.x). */
      localAddresses: string[];
      app?: string;
      secret?: string;
      /** Connections opened at once; each ack'ed open starts the next. */
      concurrency: number;
      /** Ack every message (our server only). */
      ack?: boolean;
      /** Our server only: v1 JSON text frames, or v2 binary frames offering gzip and snappy as the Node SDK does. */
      protocol?: Protocol;
      /** Our server, v1 only: subscribe to this topic (a live room) and check its offsets. */
      topic?: string;
    }
  | { op: 'reset' }
  | { op: 'collect'; latencies?: boolean }
  | { op: 'close' };

export type WorkerReport =
  | { op: 'progress'; open: number; failed: number }
  | { op: 'connected'; open: number; failed: number; ms: number }
  | {
      op: 'collected';
      latencies: number[];
      received: number;
      lastAt: number;
      /** Topic subscribers: frames read, offsets not above the previous one, fewest messages on one socket. */
      room?: { frames: number; bytes: number; outOfOrder: number; minCount: number };
    }
  | { op: 'closed' };

interface Client {
  send(data: string): void;
  close(): void;
}

const clients: Client[] = [];
let latencies: number[] = [];
let received = 0;
let lastAt = 0;

/** A live-room subscriber's own tally. */
interface RoomTally {
  last: number;
  count: number;
}
const tallies: RoomTally[] = [];
let roomFrames = 0;
/** Payload bytes of the room's frames (what the server wrote, less the WebSocket headers). */
let roomBytes = 0;
let outOfOrder = 0;
/**
 * One subscriber in this many parses its frames and records every message's latency; the
 * others only read the offsets out of the bytes. At 15,000 subscribers and 1,000 messages a
 * second, parsing every message on every socket would take more CPU than the machine has.
 */
const LATENCY_SAMPLE = 250;
const OFFSET = Buffer.from('"offset":');

function onRoomFrame(d: Buffer, tally: RoomTally, sample: boolean): void {
  const now = Date.now();
  roomFrames++;
  roomBytes += d.length;
  lastAt = now;
  const check = (offset: number) => {
    if (offset <= tally.last) outOfOrder++;
    tally.last = offset;
    tally.count++;
    received++;
  };
  if (sample) {
    const parsed = JSON.parse(d.toString());
    for (const f of Array.isArray(parsed) ? parsed : [parsed]) {
      if (f.op !== 'message' || f.offset === undefined) continue;
      check(f.offset);
      latencies.push(now - f.timestamp);
    }
    return;
  }
  for (let at = d.indexOf(OFFSET); at >= 0; at = d.indexOf(OFFSET, at)) {
    at += OFFSET.length;
    let offset = 0;
    for (let c = d[at]!; c >= 0x30 && c <= 0x39; c = d[++at]!) offset = offset * 10 + (c - 0x30);
    check(offset);
  }
}

async function openRoomSubscriber(
  cmd: Extract<WorkerCommand, { op: 'connect' }>,
  i: number,
): Promise<Client> {
  const topic = cmd.topic!;
  const token = await signClientToken({
    secret: cmd.secret!,
    userId: `u${cmd.first + i}`,
    ttlSeconds: 3600,
    topics: [topic],
  });
  const ws = new WebSocket(`${cmd.url}?app=${cmd.app}&token=${token}`, {
    localAddress: cmd.localAddresses[i % cmd.localAddresses.length],
    perMessageDeflate: false,
  });
  const tally: RoomTally = { last: 0, count: 0 };
  tallies.push(tally);
  const sample = (cmd.first + i) % LATENCY_SAMPLE === 0;
  return new Promise((resolve, reject) => {
    ws.once('error', reject);
    let subscribed = false;
    ws.on('message', (d: Buffer) => {
      if (subscribed) return onRoomFrame(d, tally, sample);
      const text = d.toString();
      if (text.startsWith('{"op":"welcome"')) ws.send(JSON.stringify({ op: 'subscribe', topic }));
      else if (text.startsWith('{"op":"subscribed"')) {
        subscribed = true;
        resolve(ws);
      }
    });
  });
}

function report(r: WorkerReport): void {
  process.send?.(r);
}

/** Every message payload carries `t` (ms, sender clock; same machine) to measure latency. */
function onPayload(data: unknown, now: number): void {
  const t = (data as { t?: number } | null)?.t;
  if (typeof t === 'number') latencies.push(now - t);
  received++;
  lastAt = now;
}

function onPushFrame(ws: WebSocket, text: string, ack: boolean): void {
  const now = Date.now();
  const parsed = JSON.parse(text);
  const frames = Array.isArray(parsed) ? parsed : [parsed];
  let maxSeq = 0;
  for (const f of frames) {
    if (f.op !== 'message') continue;
    onPayload(f.data, now);
    if (f.seq > maxSeq) maxSeq = f.seq;
  }
  if (ack && maxSeq > 0) ws.send(`{"op":"ack","seq":${maxSeq}}`);
}

/**
 * A v2 message record (docs/reference/protocol-v2.md): form byte, topic + offset or seq,
 * id, type, timestamp, then the data as JSON. Returns the seq (0 for a topic record).
 */
function onV2Record(b: Buffer, now: number): number {
  let at = 1;
  const varuint = () => {
    let value = 0;
    for (let shift = 1; ; shift *= 128) {
      const byte = b[at++]!;
      value += (byte & 0x7f) * shift;
      if (byte < 0x80) return value;
    }
  };
  const form = b[0]!;
  let seq = 0;
  if (form & 1) {
    at += 1 + b[at]!;
    varuint();
  } else {
    seq = varuint();
  }
  if (form & 2) at += 16;
  else at += varuint();
  if (form & 4) at++;
  else at += 1 + b[at]!;
  varuint();
  onPayload(JSON.parse(b.toString('utf8', at)), now);
  return seq;
}

/** Message and batch frames of v2; acks the highest seq as a v2 ACK frame. */
function onV2Data(
  ws: WebSocket,
  reader: FrameReader,
  writer: FrameWriter,
  data: Buffer,
  ack: boolean,
): boolean {
  const now = Date.now();
  let maxSeq = 0;
  let welcome = false;
  for (const m of reader.push(data)) {
    if (m.kind === KIND.welcome) welcome = true;
    else if (m.kind === KIND.message) maxSeq = Math.max(maxSeq, onV2Record(m.body, now));
    else if (m.kind === KIND.batch) {
      for (let at = 0; at < m.body.length; ) {
        let length = 0;
        for (let shift = 1; ; shift *= 128) {
          const byte = m.body[at++]!;
          length += (byte & 0x7f) * shift;
          if (byte < 0x80) break;
        }
        maxSeq = Math.max(maxSeq, onV2Record(m.body.subarray(at, at + length), now));
        at += length;
      }
    }
  }
  if (ack && maxSeq > 0) {
    for (const f of writer.frames(KIND.ack, Buffer.from(`{"seq":${maxSeq}}`))) ws.send(f);
  }
  return welcome;
}

async function openPush(cmd: Extract<WorkerCommand, { op: 'connect' }>, i: number): Promise<Client> {
  const user = `u${cmd.first + i}`;
  const token = await signClientToken({
    secret: cmd.secret!,
    userId: user,
    ttlSeconds: 3600,
    platform: 'bench',
  });
  const v2 = cmd.protocol === 'v2';
  const ws = new WebSocket(
    `${cmd.url}?app=${cmd.app}&token=${token}${v2 ? '&codecs=gzip,snappy' : ''}`,
    v2 ? [SUBPROTOCOL_BINARY] : [],
    {
      localAddress: cmd.localAddresses[i % cmd.localAddresses.length],
      perMessageDeflate: false,
    },
  );
  const ack = cmd.ack === true;
  return new Promise((resolve, reject) => {
    ws.once('error', reject);
    if (v2) {
      const reader = new FrameReader();
      const writer = new FrameWriter(0, Number.POSITIVE_INFINITY, false);
      ws.on('message', (d: Buffer) => {
        if (onV2Data(ws, reader, writer, d, ack)) resolve(ws);
      });
      return;
    }
    ws.on('message', (d) => {
      const text = d.toString();
      if (text.startsWith('{"op":"welcome"')) resolve(ws);
      else onPushFrame(ws, text, ack);
    });
  });
}

async function openWs(cmd: Extract<WorkerCommand, { op: 'connect' }>, i: number): Promise<Client> {
  const ws = new WebSocket(cmd.url, {
    localAddress: cmd.localAddresses[i % cmd.localAddresses.length],
    perMessageDeflate: false,
  });
  return new Promise((resolve, reject) => {
    ws.once('error', reject);
    ws.once('open', () => resolve(ws));
    ws.on('message', (d) => onPayload(JSON.parse(d.toString()), Date.now()));
  });
}

async function openSocketIo(cmd: Extract<WorkerCommand, { op: 'connect' }>, i: number): Promise<Client> {
  const { io } = await import('socket.io-client');
  const socket = io(cmd.url, {
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
    // engine.io-client hands these to `ws` in Node.
    localAddress: cmd.localAddresses[i % cmd.localAddresses.length],
  } as Parameters<typeof io>[1]);
  return new Promise((resolve, reject) => {
    socket.once('connect_error', reject);
    socket.once('connect', () =>
      resolve({ send: (d) => socket.emit('m', d), close: () => socket.disconnect() }),
    );
    socket.on('m', (data: unknown) => onPayload(data, Date.now()));
  });
}

async function connect(cmd: Extract<WorkerCommand, { op: 'connect' }>): Promise<void> {
  const started = Date.now();
  const open =
    cmd.kind === 'push'
      ? cmd.topic
        ? openRoomSubscriber
        : openPush
      : cmd.kind === 'ws'
        ? openWs
        : openSocketIo;
  let next = 0;
  let failed = 0;
  let lastProgress = 0;
  const lane = async () => {
    while (next < cmd.count) {
      const i = next++;
      try {
        clients.push(await open(cmd, i));
      } catch {
        failed++;
      }
      const now = Date.now();
      if (now - lastProgress > 500) {
        lastProgress = now;
        report({ op: 'progress', open: clients.length, failed });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(cmd.concurrency, cmd.count) }, lane));
  report({ op: 'connected', open: clients.length, failed, ms: Date.now() - started });
}

process.on('message', (cmd: WorkerCommand) => {
  switch (cmd.op) {
    case 'connect':
      void connect(cmd);
      return;
    case 'reset':
      latencies = [];
      received = 0;
      lastAt = 0;
      roomFrames = 0;
      roomBytes = 0;
      outOfOrder = 0;
      for (const t of tallies) t.count = 0;
      return;
    case 'collect':
      report({
        op: 'collected',
        latencies: cmd.latencies === false ? [] : latencies,
        received,
        lastAt,
        ...(tallies.length > 0
          ? {
              room: {
                frames: roomFrames,
                bytes: roomBytes,
                outOfOrder,
                minCount: tallies.reduce((m, t) => Math.min(m, t.count), Number.POSITIVE_INFINITY),
              },
            }
          : {}),
      });
      return;
    case 'close':
      for (const c of clients) c.close();
      report({ op: 'closed' });
      setTimeout(() => process.exit(0), 200).unref();
      return;
  }
});

// The orchestrator going away ends the worker too: a run always stops itself.
process.on('disconnect', () => process.exit(0));
