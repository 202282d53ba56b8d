import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Admin } from '@platformatic/kafka';
import { freePort } from './child-server.js';
import { tempDir } from './server.js';
import { waitUntil } from './wait.js';

/**
 * A Kafka broker of the test's own, for tests that kill it: the jars `.ci/kafka.sh` fetched
 * (PUSH_KAFKA_HOME, else its default cache), a fresh KRaft data directory and free ports.
 */
export const KAFKA_LIBS = join(
  process.env.PUSH_KAFKA_HOME ??
    join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'message-push', 'kafka-4.4.0'),
  'libs',
);

export interface OwnKafka {
  readonly url: string;
  /** Starts the broker (again) and resolves once it accepts a topic creation. */
  start(): Promise<void>;
  /** kill -9. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

export async function startOwnKafka(): Promise<OwnKafka> {
  const [port, controller] = [await freePort(), await freePort()];
  const dir = tempDir('mp-kafka-');
  mkdirSync(join(dir, 'logs'));
  const properties = join(dir, 'server.properties');
  writeFileSync(
    properties,
    [
      'process.roles=broker,controller',
      'node.id=1',
      `controller.quorum.voters=1@127.0.0.1:${controller}`,
      `listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controller}`,
      `advertised.listeners=PLAINTEXT://127.0.0.1:${port}`,
      'controller.listener.names=CONTROLLER',
      'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
      `log.dirs=${join(dir, 'data')}`,
      'num.partitions=4',
      'offsets.topic.replication.factor=1',
      'offsets.topic.num.partitions=4',
      'transaction.state.log.replication.factor=1',
      'transaction.state.log.min.isr=1',
      'group.initial.rebalance.delay.ms=0',
    ].join('\n'),
  );
  const java = (args: string[]) =>
    spawn('java', ['-Xmx256m', '-XX:+UseG1GC', '-cp', `${KAFKA_LIBS}/*`, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LOG_DIR: join(dir, 'logs') },
    });
  const run = (args: string[]) =>
    new Promise<string>((resolve, reject) => {
      const c = java(args);
      let out = '';
      c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      c.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      c.once('exit', (code) =>
        code === 0 ? resolve(out) : reject(new Error(`java ${args[0]} exited ${code}: ${out}`)),
      );
    });
  const clusterId = (await run(['kafka.tools.StorageTool', 'random-uuid'])).trim().split('\n').at(-1)!;
  await run(['kafka.tools.StorageTool', 'format', '-t', clusterId, '-c', properties]);

  const url = `kafka://127.0.0.1:${port}`;
  let child: ChildProcess | null = null;
  const kill = async () => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((resolve) => c.once('exit', resolve));
    c.kill('SIGKILL');
    await exited;
  };
  const start = async () => {
    child = java(['kafka.Kafka', properties]);
    child.stdout!.resume();
    child.stderr!.resume();
    const admin = new Admin({ clientId: 'own-kafka', bootstrapBrokers: [`127.0.0.1:${port}`], retries: 0 });
    try {
      await waitUntil(
        () =>
          admin.createTopics({ topics: [`ready-${Date.now()}`], partitions: 1, replicas: 1 }).then(
            () => true,
            () => false,
          ),
        90_000,
        500,
      );
    } finally {
      await admin.close().catch(() => {});
    }
  };
  await start();
  return {
    url,
    start,
    kill,
    async stop() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const kafkaJarsPresent = () => existsSync(KAFKA_LIBS);
