import type { Bus } from '../bus/bus.js';
import type { Recipient, StoredMessage } from '../domain/message.js';

/**
 * Decides where a durable message goes: its recipients' connections (user and device
 * targets) or a topic's subscribers. Publishing on the bus reaches every node, this one included.
 */
export class Router {
  constructor(private readonly bus: Bus) {}

  routeStored(message: StoredMessage, recipients: readonly Recipient[]): void {
    if (message.topic !== null) this.bus.publish({ kind: 'topic', message });
    else if (recipients.length > 0) this.bus.publish({ kind: 'users', message, recipients });
  }
}
