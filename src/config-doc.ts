import { SETTINGS } from './config.js';

/**
 * docs/configuration.md, rendered from the settings table so the two cannot drift apart:
 * `npm run docs:config` writes it and a unit test fails when the committed file differs.
 */

const kebab = (key: string) => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

const KIND_TEXT: Record<string, string> = {
  string: 'text',
  int: 'integer',
  duration: 'duration',
  bool: 'boolean',
  list: 'list',
};

export function renderConfigDoc(settings: typeof SETTINGS = SETTINGS): string {
  const rows = settings.map((s) => {
    const def = s.default === undefined ? '—' : String(s.default);
    const secret = s.secret ? ' (secret: masked in the startup log)' : '';
    return `| ${s.key} | \`${s.env}\` | \`--${kebab(s.key)}\` | ${KIND_TEXT[s.kind] ?? s.kind} | ${cell(def)} | ${cell(s.doc)}${secret} |`;
  });
  return `<!-- Generated from the settings table in src/config.ts by \`npm run docs:config\`. Do not edit by hand. -->

# Configuration

Every setting can come from four places; later ones win:

1. the built-in default (below);
2. a JSON config file named by \`PUSH_CONFIG=path\`, with the keys of the first column
   (\`{"port": 9000, "heartbeatMs": "5s"}\`); an unknown key stops the start;
3. the \`PUSH_*\` environment variable;
4. the command-line flag of \`message-push start\` (\`--heartbeat-ms 5s\`).

Kinds: *integer* is a non-negative whole number; *duration* is \`500ms\`, \`15s\`, \`5m\`, \`1h\`,
\`7d\` or plain milliseconds; *boolean* is \`true\`/\`false\` (also \`1\`/\`0\`, \`yes\`/\`no\`,
\`on\`/\`off\`); *list* is comma-separated. An invalid value stops the process at start with
\`config_invalid\` naming the variable. The effective configuration is logged at start with
secrets and URL passwords masked.

| key | environment | flag | kind | default | meaning |
| --- | --- | --- | --- | --- | --- |
${rows.join('\n')}

Settings that only make sense together: more than one worker (\`PUSH_WORKERS\`) or any bus
(\`PUSH_BUS_URL\`) needs a shared store (\`PUSH_DB_URL=mysql://…\`), and more than one worker
needs a bus. Limits and what happens past them: [reference/limits.md](reference/limits.md).
`;
}
