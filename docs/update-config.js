// `npm run docs:config`: rewrite the yaml block of docs/config.md from the
// schema's defaults (run after changing core/config.ts; a test checks it).
const { readFileSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');
const { defaultsYaml } = require('../dist/core/job/config-docs');

const file = join(__dirname, 'config.md');
const text = readFileSync(file, 'utf8').replace(/```yaml\n[\s\S]*?```/, () => '```yaml\n' + defaultsYaml() + '```');
writeFileSync(file, text);
