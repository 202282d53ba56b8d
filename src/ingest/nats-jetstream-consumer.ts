import {
  AckPolicy,
  type Consumer,
  type ConsumerInfo,
  type ConsumerMessages,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from '@nats-io/jetstream';
import { connect, millis, type NatsConnection, nanos } from '@nats-io/transport-node';
import { PushError } from '../domain/errors.js';
import { isValidMessageId } from '../domain/ids.js';
import { natsConnectOptions } from '../util/nats-url.js';
import type { QueueDriverConfig, QueueDriverDeps } from './create-queue-consumers.js';
import { QueueDriverCore, startFailure } from './queue/queue-driver.js';
import type { QueueConsumer } from './queue-consumer.js';

/**
 * NATS JetStream queue ingress. Producers publish the `/v1/push` body plus `"app"` to any
 * subject under `push.>`; refused messages are published to `push.dead`.
 *
 *   producer ─► push.<any> ─┐                      ┌─► accept ─► durable ─────────────► ack
 *                           ├─► stream MESSAGE_PUSH ─► durable pull consumer "message-push"
 *   this driver ─► push.dead┘   (file, push.>)     └─► refused ─► push.dead (PubAck) ─► ack
 *
 * One stream holds both: JetStream refuses two streams with overlapping subjects, and
 * `push.>` covers `push.dead`, so a separate dead-letter stream is impossible without
 * changing the ingress subjects. A filter cannot exclude one subject either, so the consumer
 * also receives the dead letters and acks them unread; they stay in the stream (limits
 * retention) for operators to read with a consumer of their own filtered on `push.dead`.
 * Stream and consumer are created when missing (7 days max age, ack wait 30 s,
 * max_ack_pending = prefetch, no server-side max_deliver: the count is checked here). An
 * existing stream or consumer is used as it is, so an operator may pre-create them with
 * other limits; the consumer must be a pull consumer with explicit acks.
 *
 * Message id: a body without an `id` takes the message's `Nats-Msg-Id` header when that is a
 * valid message id (a republish with the same header is then a duplicate here too, outside
 * JetStream's dedupe window), else `nats-<stream sequence>-<store time ns>`. When the body has
 * an `id`, the body wins: the body is the push request, the header only the transport's dedupe
 * key. The body itself is never rewritten, so a dead letter carries it as published.
 *
 * Order: pushes are submitted in delivery order. JetStream redelivers an unacked message
 * only after the ack wait, so after a (re)connect with unacked deliveries outstanding (this
 * node was killed, or messages were lost with a connection), newer messages are held —
 * touched with +WPI so they stay ours — until the consumer's ack floor passes everything
 * delivered before; that keeps one user's messages in queue order across crashes
 * (test/integration/queue-nats.test.ts, "kill -9 of the service"). Several nodes share the
 * durable, its max_ack_pending included; each keeps delivery order, but two nodes may push
 * one user's messages concurrently.
 */

export const STREAM = 'MESSAGE_PUSH';
export const PUSH_SUBJECTS = 'push.>';
export const DEAD_SUBJECT = 'push.dead';
export const DURABLE = 'message-push';
export const MSG_ID_HEADER = 'Nats-Msg-Id';

const ACK_WAIT_MS = 30_000;
const STREAM_MAX_AGE_MS = 7 * 24 * 3_600_000;
/**
 * Lifetime of one pull request. Pulls are bounded fetches, never cancelled: stopping one the
 * server still answers would strand its messages (unacked, nobody's) until the ack wait.
 * So a close or a reconnect waits for the current fetch to end, at most this long.
 */
const PULL_EXPIRES_MS = 1_000;
/** A server that accepts TCP but never answers the handshake must not hang startup. */
const CONNECT_TIMEOUT_MS = 5_000;
const RECONNECT_WAIT_MS = 1_000;
/** After a reconnect JetStream may answer late (it recovers its streams first). */
const REATTACH_RETRY_MS = 1_000;
/** How often the ack floor is checked while newer messages are held. */
const BARRIER_POLL_MAX_MS = 1_000;

/** Pulling on one connection; replaced as a whole after each reconnect. */
interface Session {
  readonly consumer: Consumer;
  /** Everything up to this stream sequence was delivered before we attached; 0 = nothing held. */
  barrier: number;
  /** Newer deliveries waiting for the barrier, in delivery order, with when they were last touched. */
  held: { msg: JsMsg; touchedAt: number }[];
  timer: NodeJS.Timeout | null;
  /** No new fetches; the current one still ends by itself and its messages are handled. */
  ended: boolean;
  batch: ConsumerMessages | null;
  done: Promise<void>;
}

export function createNatsJetStreamConsumer(config: QueueDriverConfig, deps: QueueDriverDeps): QueueConsumer {
  return new NatsJetStreamConsumer(config, deps);
}

/**
 * Pulls in bounded fetches with explicit acks and at most `prefetch` pushes in flight. A
 * message is acked only once its push is durable or its dead letter has a PubAck; an unacked
 * one is redelivered by JetStream after the ack wait and, being a duplicate by its `id`,
 * simply acked then. Reconnects are the client's (forever, 1 s apart); each one starts a new
 * session once the old one's last fetch has ended.
 */
export class NatsJetStreamConsumer implements QueueConsumer {
  readonly name = 'nats';
  private nc: NatsConnection | null = null;
  private js: JetStreamClient | null = null;
  private session: Session | null = null;
  /** The session of the connection that dropped, finishing its last fetch. */
  private draining: Session | null = null;
  private attaching: Promise<void> | null = null;
  private connected = false;
  private closing = false;
  private ackWaitMs = ACK_WAIT_MS;
  private readonly core: QueueDriverCore;

  constructor(
    private readonly config: QueueDriverConfig,
    private readonly deps: QueueDriverDeps,
  ) {
    this.core = new QueueDriverCore(this.name, config, deps);
  }

  async start(): Promise<void> {
    try {
      const nc = await connect({
        ...natsConnectOptions(this.config.url),
        name: `message-push ${this.config.consumerName}`,
        timeout: CONNECT_TIMEOUT_MS,
        waitOnFirstConnect: false,
        maxReconnectAttempts: -1,
        reconnectTimeWait: RECONNECT_WAIT_MS,
      });
      this.nc = nc;
      this.connected = true;
      void this.watchConnection(nc);
      await this.attach(nc);
    } catch (err) {
      await this.nc?.close().catch(() => {});
      this.nc = null;
      throw startFailure('NATS JetStream', this.config.url, err);
    }
    this.deps.log.info(
      { stream: STREAM, consumer: DURABLE, prefetch: this.config.prefetch },
      'nats: consuming',
    );
  }

  async ready(): Promise<void> {
    if (!this.nc || this.nc.isClosed()) throw new PushError('unavailable', 'nats: not connected');
    if (!this.connected) throw new PushError('unavailable', 'nats: disconnected, reconnecting');
    if (!this.session) throw new PushError('unavailable', `nats: consumer ${DURABLE} not attached yet`);
  }

  async close(): Promise<void> {
    this.closing = true;
    this.core.beginClose();
    const sessions = [this.session, this.draining].filter((s): s is Session => s !== null);
    this.session = null;
    // Connected, the current fetch ends within PULL_EXPIRES_MS; disconnected, nothing more can arrive.
    for (const s of sessions) this.endSession(s, !this.connected);
    await this.attaching?.catch(() => {});
    await Promise.all(sessions.map((s) => s.done));
    await this.core.drain();
    const nc = this.nc;
    this.nc = null;
    if (!nc) return;
    if (this.connected) await nc.drain().catch(() => nc.close());
    else await nc.close();
  }

  /** Follows the client's own reconnects: a new session after each one. */
  private async watchConnection(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') {
        this.connected = false;
        this.deps.log.warn({ inFlight: this.core.inFlight }, 'nats: disconnected; reconnecting');
        const session = this.session;
        this.session = null;
        if (session) {
          // Its fetch is answered again after the reconnect (the client re-pulls) or expires.
          this.endSession(session, false);
          this.draining = session;
          void session.done.finally(() => {
            if (this.draining === session) this.draining = null;
          });
        }
      } else if (s.type === 'reconnect') {
        this.connected = true;
        this.deps.log.info('nats: reconnected');
        if (!this.closing) void this.reattach(nc);
      } else if (s.type === 'close') {
        this.connected = false;
      }
    }
  }

  /** Attaches a new session once the old one is done, retrying until JetStream answers. */
  private reattach(nc: NatsConnection): Promise<void> {
    this.attaching ??= (async () => {
      await this.draining?.done;
      while (this.connected && !this.closing && !this.session) {
        try {
          await this.attach(nc);
          this.deps.log.info('nats: consuming again');
        } catch (err) {
          this.deps.log.warn({ err }, 'nats: cannot attach the consumer yet; retrying');
          await new Promise((resolve) => setTimeout(resolve, REATTACH_RETRY_MS));
        }
      }
    })().finally(() => {
      this.attaching = null;
    });
    return this.attaching;
  }

  /** Ensures stream and consumer, notes what is still unacked, then starts pulling. */
  private async attach(nc: NatsConnection): Promise<void> {
    const jsm = await jetstreamManager(nc, { timeout: CONNECT_TIMEOUT_MS });
    await ensureStream(jsm);
    const info = await ensureConsumer(jsm, this.config.prefetch);
    this.ackWaitMs = millis(info.config.ack_wait ?? nanos(ACK_WAIT_MS));
    this.js = jetstream(nc, { timeout: CONNECT_TIMEOUT_MS });
    const consumer = await this.js.consumers.get(STREAM, DURABLE);
    if (this.closing || !this.connected) return;
    const session: Session = {
      consumer,
      barrier: 0,
      held: [],
      timer: null,
      ended: false,
      batch: null,
      done: Promise.resolve(),
    };
    if (info.num_ack_pending > 0) {
      session.barrier = info.delivered.stream_seq;
      this.deps.log.info(
        { unacked: info.num_ack_pending, upTo: session.barrier },
        'nats: earlier deliveries unacked; newer messages wait for them',
      );
      this.scheduleBarrierCheck(session);
    }
    this.session = session;
    session.done = this.pull(session);
  }

  private endSession(session: Session, stopFetch: boolean): void {
    if (session.timer) clearTimeout(session.timer);
    session.timer = null;
    session.ended = true;
    // Held messages are left to expire: a nak would bring them back before the older ones.
    session.held = [];
    if (stopFetch) session.batch?.stop();
  }

  /** Fetches whenever a quarter of the prefetch window is free; admits messages in delivery order. */
  private async pull(session: Session): Promise<void> {
    const { prefetch } = this.config;
    const minBatch = Math.ceil(prefetch / 4);
    while (!session.ended) {
      while (this.core.inFlight > prefetch - minBatch) await this.core.oneSettled();
      if (session.ended) break;
      try {
        session.batch = await session.consumer.fetch({
          max_messages: prefetch - this.core.inFlight,
          expires: PULL_EXPIRES_MS,
        });
        for await (const msg of session.batch) this.admit(session, msg);
      } catch (err) {
        if (session.ended) break;
        // Consumer or stream gone, JetStream not answering: attach afresh (re-creating them).
        this.deps.log.warn({ err }, 'nats: pull failed; attaching again');
        this.endSession(session, false);
        if (this.session === session) this.session = null;
        await new Promise((resolve) => setTimeout(resolve, REATTACH_RETRY_MS));
        if (this.nc && this.connected && !this.closing) void this.reattach(this.nc);
      } finally {
        session.batch = null;
      }
    }
  }

  private admit(session: Session, msg: JsMsg): void {
    if (session.barrier === 0 || msg.info.streamSequence <= session.barrier) {
      void this.handleMessage(msg);
    } else if (!session.ended) {
      session.held.push({ msg, touchedAt: Date.now() });
    }
    // An ended session drops what it would hold: left to expire like the held ones.
  }

  private scheduleBarrierCheck(session: Session): void {
    const every = Math.max(50, Math.min(BARRIER_POLL_MAX_MS, this.ackWaitMs / 4));
    session.timer = setTimeout(() => void this.checkBarrier(session), every);
  }

  /** Releases the held messages, in order, once everything delivered before them is acked. */
  private async checkBarrier(session: Session): Promise<void> {
    session.timer = null;
    let floor = 0;
    try {
      floor = (await session.consumer.info()).ack_floor.stream_seq;
    } catch (err) {
      this.deps.log.debug({ err }, 'nats: consumer info failed while holding messages');
    }
    if (session.ended) return;
    if (floor >= session.barrier) {
      session.barrier = 0;
      const held = session.held;
      session.held = [];
      this.deps.log.info({ released: held.length }, 'nats: earlier deliveries settled; taking new messages');
      for (const h of held) void this.handleMessage(h.msg);
      return;
    }
    const now = Date.now();
    for (const h of session.held) {
      if (now - h.touchedAt >= this.ackWaitMs / 2) {
        h.msg.working();
        h.touchedAt = now;
      }
    }
    this.scheduleBarrierCheck(session);
  }

  /** Must reach `accept` synchronously: that call fixes the message's place in the push order. */
  private handleMessage(msg: JsMsg): Promise<void> {
    if (msg.subject === DEAD_SUBJECT) {
      msg.ack(); // our own dead letter, kept by the stream: not ingress
      return Promise.resolve();
    }
    const header = msg.headers?.get(MSG_ID_HEADER);
    // Without a Nats-Msg-Id, the stream sequence and store time identify the message on
    // every redelivery (the time tells apart the sequences of a re-created stream).
    const brokerId =
      header && isValidMessageId(header)
        ? header
        : `nats-${msg.info.streamSequence}-${msg.info.timestampNanos}`;
    return this.core.handle(
      {
        body: Buffer.from(msg.data.buffer, msg.data.byteOffset, msg.data.byteLength),
        deliveries: msg.info.deliveryCount,
        brokerId,
      },
      {
        ack: () => msg.ack(),
        retry: (delayMs) => msg.nak(delayMs),
        deadLetter: async (letter) => {
          // The msgID makes a second dead letter for one message (crash before the ack) a duplicate.
          await this.js!.publish(DEAD_SUBJECT, letter, {
            msgID: `dead:${msg.info.stream}:${msg.info.streamSequence}`,
          });
        },
      },
    );
  }
}

async function ensureStream(jsm: JetStreamManager): Promise<void> {
  try {
    await jsm.streams.info(STREAM);
  } catch (err) {
    if (!isApiError(err, JetStreamApiCodes.StreamNotFound)) throw err;
    await jsm.streams.add({
      name: STREAM,
      subjects: [PUSH_SUBJECTS],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      max_age: nanos(STREAM_MAX_AGE_MS),
    });
  }
}

async function ensureConsumer(jsm: JetStreamManager, prefetch: number): Promise<ConsumerInfo> {
  let info: ConsumerInfo;
  try {
    info = await jsm.consumers.info(STREAM, DURABLE);
  } catch (err) {
    if (!isApiError(err, JetStreamApiCodes.ConsumerNotFound)) throw err;
    info = await jsm.consumers.add(STREAM, {
      durable_name: DURABLE,
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(ACK_WAIT_MS),
      deliver_policy: DeliverPolicy.All,
      filter_subject: PUSH_SUBJECTS,
      max_deliver: -1,
      max_ack_pending: prefetch,
    });
  }
  if (info.config.ack_policy !== AckPolicy.Explicit || info.config.deliver_subject) {
    throw new PushError(
      'config_invalid',
      `PUSH_QUEUE_URL: consumer ${DURABLE} on stream ${STREAM} exists but is not a pull consumer with explicit acks`,
    );
  }
  return info;
}

function isApiError(err: unknown, code: number): boolean {
  return err instanceof JetStreamApiError && err.code === code;
}
