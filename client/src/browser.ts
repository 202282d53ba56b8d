/** The browser bundle served at /client.js: the SDK as the global `MessagePush`. */
export * from './index.js';
