import type { Bus } from '../bus/bus.js';
import type { StatusWriter } from '../delivery/status-writer.js';
import type { MessageStore } from '../store/store.js';

/**
 * Recalling a message (DELETE /v1/messages/{id}): the store makes `revoked` final for every
 * recipient that has not acked, then the bus tells every node to send `revoke` to the
 * recipients' connected devices (or the topic's subscribers). Only the call that recalled it
 * notifies; a repeat answers the same with `revoked` 0.
 */
export class Recall {
  constructor(
    private readonly store: MessageStore,
    private readonly bus: Bus,
    private readonly status: StatusWriter,
  ) {}

  /** Undefined for an unknown id. */
  async revoke(appId: string, id: string): Promise<{ id: string; revoked: number } | undefined> {
    // Acks received before this call count: an acked recipient stays acked.
    await this.status.flush();
    const result = await this.store.revokeMessage(appId, id, Date.now());
    if (!result) return undefined;
    if (result.first) {
      if (result.topic !== null && result.offset !== null) {
        this.bus.publish({ kind: 'revoke_topic', appId, id, topic: result.topic, offset: result.offset });
      } else if (result.recipients.length > 0) {
        this.bus.publish({ kind: 'revoke', appId, id, recipients: result.recipients });
      }
    }
    return { id: result.id, revoked: result.revoked };
  }
}
