import type { Bus, Envelope } from './bus.js';

/** The single-node bus: hands envelopes straight to this process's hub, synchronously, in order. */
export class MemoryBus implements Bus {
  private readonly handlers: ((envelope: Envelope) => void)[] = [];
  readonly framesReceived = 0;

  publish(envelope: Envelope): void {
    for (const h of this.handlers) h(envelope);
  }

  subscribe(handler: (envelope: Envelope) => void): void {
    this.handlers.push(handler);
  }

  /** One process: every envelope is here already. */
  async listen(): Promise<void> {}

  unlisten(): void {}

  async ready(): Promise<void> {}

  async close(): Promise<void> {
    this.handlers.length = 0;
  }
}
