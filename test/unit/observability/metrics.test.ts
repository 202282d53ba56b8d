import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createMetrics, FastHistogram } from '../../../src/observability/metrics.js';

const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

function section(text: string, name: string): string {
  return text
    .split('\n\n')
    .filter((block) => block.includes(`# TYPE ${name} `))
    .join('');
}

describe('FastHistogram', () => {
  it('exports exactly what prom-client’s Histogram exports for the same observations', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const fast = new FastHistogram('push_delivery_seconds', 'help text', BUCKETS, ours);
    const reference = new Histogram({
      name: 'push_delivery_seconds',
      help: 'help text',
      buckets: BUCKETS,
      registers: [theirs],
    });
    // Every bound itself (le is inclusive), values between, below the first and past the last.
    const values = [0, 0.0004, ...BUCKETS, ...BUCKETS.map((b) => b * 1.5), 75, 1e6];
    for (let i = 0; i < 500; i++) values.push(Math.random() ** 4 * 100);
    for (const v of values) {
      fast.observe(v);
      reference.observe(v);
    }
    const text = await ours.metrics();
    expect(text).toBe(await theirs.metrics());
    expect(text).toMatch(new RegExp(`^push_delivery_seconds_count ${values.length}$`, 'm'));

    fast.reset();
    reference.reset();
    reference.zero({});
    expect(await ours.metrics()).toBe(await theirs.metrics());
  });
});

describe('createMetrics', () => {
  it('folds live deliveries into push_deliveries_total at each scrape, beside the backlog ones', async () => {
    const m = createMetrics();
    const live = async () => {
      const match = section(await m.registry.metrics(), 'push_deliveries_total').match(
        /^push_deliveries_total\{kind="live"\} (\d+)$/m,
      );
      return match ? Number(match[1]) : 0;
    };
    expect(await live()).toBe(0);
    m.countLiveDeliveries(3);
    m.countLiveDeliveries(1);
    m.deliveries.inc({ kind: 'backlog' }, 2);
    expect(await live()).toBe(4);
    expect(await live()).toBe(4);
    m.countLiveDeliveries(5);
    const text = await m.registry.metrics();
    expect(text).toMatch(/^push_deliveries_total\{kind="live"\} 9$/m);
    expect(text).toMatch(/^push_deliveries_total\{kind="backlog"\} 2$/m);
  });
});
