/** Node entry (`message-push/client/node`): everything of the SDK plus file-backed storage. */

export { FileStorage } from './file-storage.js';
export * from './index.js';
