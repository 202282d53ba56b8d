import type { StoredMessage } from '../../../src/domain/message.js';
import type { HubEvents } from '../../../src/gateway/hub.js';

/** A stored user message with nothing but its id set. */
export const message = (id: string): StoredMessage => ({
  appId: 'a',
  id,
  type: 'message',
  timestamp: 0,
  ttl: null,
  expiresAt: null,
  dataJson: '{}',
  platforms: null,
  topic: null,
  offset: null,
});

/** Hub events nobody listens to; tests override the one they watch. */
export const noEvents: HubEvents = {
  onWritten: () => {},
  onRegistered: () => {},
  onUnregistered: () => {},
  onClosedByServer: () => {},
  onGap: () => {},
};
