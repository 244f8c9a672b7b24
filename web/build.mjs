// Builds web/verify.html: bundles web/src/main.js with esbuild (one IIFE, minified, no
// comments) and inlines it and the style sheet into web/src/template.html, under a CSP that
// allows exactly these two inline blocks (by hash) and nothing else. Same inputs, same bytes.
//
//   node build.mjs [--out FILE]      (default: verify.html next to this script)

import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const outIndex = process.argv.indexOf('--out');
const out = outIndex > 0 ? process.argv[outIndex + 1] : join(here, 'verify.html');
const version = (name) => JSON.parse(readFileSync(join(here, 'node_modules', name, 'package.json'), 'utf8')).version;

const built = await esbuild.build({
  entryPoints: [join(here, 'src', 'main.js')],
  bundle: true,
  format: 'iife',
  minify: true,
  target: 'es2022',
  legalComments: 'none',
  charset: 'ascii',
  write: false,
});
const script = built.outputFiles[0].text.trimEnd();
const style = readFileSync(join(here, 'src', 'style.css'), 'utf8');
if (/<\/script|<!--/i.test(script)) throw new Error('the bundle contains "</script" or "<!--": it cannot be inlined');
if (/https?:\/\//.test(script + style)) throw new Error('the bundle names a URL: the page must not name any');

const cspHash = (text) => `sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}`;
const fill = {
  SCRIPT_HASH: cspHash(script),
  STYLE_HASH: cspHash(style),
  VERSIONS: `@noble/post-quantum ${version('@noble/post-quantum')}, @noble/hashes ${version('@noble/hashes')}, esbuild ${version('esbuild')}`,
  STYLE: style,
  SCRIPT: script,
};
const template = readFileSync(join(here, 'src', 'template.html'), 'utf8');
writeFileSync(out, template.replace(/\{\{([A-Z_]+)\}\}/g, (_, key) => fill[key]));
console.log(`wrote ${out} (${Buffer.byteLength(readFileSync(out))} bytes)`);
