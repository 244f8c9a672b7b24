// What a verified audit package proved: the JSON of `pantheon journal verify FILE --json`
// and the lines it prints (journal/package.py, journal/cli.py), and each chain position.

import { toHex, toReversedHex } from './bytes.js';
import { claimJson, jsonInt, summary } from './claim.js';
import { fingerprint } from './journal.js';

const hexMap = (map) => Object.fromEntries([...map].map(([key, value]) => [key, toHex(value)]));
const metaJson = (meta) => Object.fromEntries([...meta].map(([key, value]) => [key, metaValueJson(value)]));

function metaValueJson(value) {
  if (value instanceof Uint8Array) return toHex(value);
  return typeof value === 'bigint' ? jsonInt(value) : value;
}

/** One disclosed entry's fields (journal/cli.py entry_json). */
function entryJson(entry) {
  const doc = {
    seq: jsonInt(entry.seq), time_ms: jsonInt(entry.timeMs), kind: entry.kind, action: entry.action,
    signer: toHex(entry.signer), digest: toHex(entry.digest), in: hexMap(entry.inputs), meta: metaJson(entry.meta),
  };
  if (entry.outputs) doc.out = hexMap(entry.outputs);
  if (entry.ref !== null) doc.ref = jsonInt(entry.ref);
  if (entry.pubkey) doc.introduces_key = toHex(fingerprint(entry.pubkey));
  return doc;
}

/** The package claim (docs/journal-format.md section 9). */
export function packageJson(result) {
  const disclosed = result.positions.filter((p) => !p.withheld);
  return {
    producer: toHex(result.producer),
    keys: result.keys.map(toHex),
    head: toHex(result.head),
    head_seq: result.length - 1,
    entries: result.length,
    disclosed: disclosed.map((p) => p.seq),
    withheld: result.length - disclosed.length,
    open_intents: result.openIntents,
    bundle: claimJson(result.claim),
  };
}

/** Every position of the chain, disclosed entries in full, withheld ones by their digest. */
export function journalJson(result) {
  return result.positions.map((p) => (p.withheld
    ? { seq: p.seq, withheld: true, digest: toHex(p.digest) }
    : { seq: p.seq, withheld: false, entry: entryJson(p.entry) }));
}

export function entryTime(timeMs) {
  const date = new Date(Number(timeMs));
  return Number.isNaN(date.getTime()) ? `${timeMs} ms` : date.toISOString();
}

function codePointOrder(a, b) {
  const x = Array.from(a, (c) => c.codePointAt(0));
  const y = Array.from(b, (c) => c.codePointAt(0));
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

/** Python's json.dumps(meta, sort_keys=True, ensure_ascii=False). */
function metaText(meta) {
  const value = (v) => (typeof v === 'bigint' ? String(v) : JSON.stringify(v instanceof Uint8Array ? toHex(v) : v));
  const keys = [...meta.keys()].sort(codePointOrder);
  return `{${keys.map((key) => `${JSON.stringify(key)}: ${value(meta.get(key))}`).join(', ')}}`;
}

/** One entry on one line (journal/cli.py describe_entry). */
function describeEntry(entry) {
  const digests = (map) => [...map].map(([name, value]) => `${name}=${toHex(value).slice(0, 12)}…`).join(', ');
  const parts = [`${String(entry.seq).padStart(6)}  ${entryTime(entry.timeMs)}  ${entry.kind.padEnd(12)} ${entry.action}`];
  if (entry.ref !== null) parts.push(`for intent ${entry.ref}`);
  if (entry.inputs.size) parts.push(`in ${digests(entry.inputs)}`);
  if (entry.outputs && entry.outputs.size) parts.push(`out ${digests(entry.outputs)}`);
  if (entry.meta.size) parts.push(`meta ${metaText(entry.meta)}`);
  if (entry.pubkey) parts.push(`introduces key ${toHex(fingerprint(entry.pubkey)).slice(0, 16)}…`);
  return parts.join('  ');
}

/** Everything `pantheon journal verify PACKAGE` prints for a package that verified. */
export function packageText(result) {
  const { claim } = result;
  const disclosed = result.positions.filter((p) => !p.withheld);
  const anchored = claim.anchor !== null;
  const lines = [
    `VALID audit package: ${disclosed.length} disclosed and ${result.length - disclosed.length} withheld entries (0..${result.length - 1}), producer ${toHex(result.producer)}`,
    `  head          ${toHex(result.head)} is audit root ${claim.index} of chain ${claim.chainName} (${toHex(claim.chainId).slice(0, 16)}…), block ${claim.height}, finalized by validators ${claim.signers.join(', ')}`,
    `  state         ${anchored ? 'anchored' : 'PENDING (certified, not yet anchored in Bitcoin)'}`,
  ];
  if (anchored) {
    const { anchor } = claim;
    lines.push(`  bitcoin       tx ${toReversedHex(anchor.txid)} in ${anchor.network} block ${toReversedHex(anchor.blockHash)}, ${anchor.headers.length} confirmation(s) by headers`);
  }
  lines.push('  disclosed entries:');
  lines.push(...disclosed.map((p) => `  ${describeEntry(p.entry)}`));
  const byPosition = new Map(disclosed.map((p) => [p.seq, p.entry]));
  for (const seq of result.openIntents) {
    const intent = byPosition.get(seq);
    lines.push(`  entry ${seq}: ${pyRepr(intent.action)} started ${entryTime(intent.timeMs)}, no recorded outcome among the disclosed entries`);
  }
  lines.push(`Proved: ${summary(claim)}.`);
  return lines;
}

/** Python's repr() of a text without control characters. */
function pyRepr(text) {
  const quote = text.includes("'") && !text.includes('"') ? '"' : "'";
  const escaped = text.replaceAll('\\', '\\\\').replaceAll(quote, `\\${quote}`);
  return `${quote}${escaped}${quote}`;
}

/** What a verified journal file established (the fields of `pantheon journal verify DIR --json` a file alone gives). */
export function journalFileJson({ walker, torn }) {
  return {
    entries: walker.length,
    head: toHex(walker.head),
    keys: walker.keys.map((key) => toHex(fingerprint(key))),
    open_intents: [...walker.open.keys()],
    torn_tail: torn && { offset: torn.offset, size: torn.size },
  };
}

/** A journal file's entries, as the package listing shows them (a file withholds nothing). */
export function journalFileEntries({ entries }) {
  return entries.map((entry, seq) => ({ seq, withheld: false, entry: entryJson(entry) }));
}

/** The lines `pantheon journal verify DIR` prints about the file itself (its sidecar is not in a file). */
export function journalFileText({ walker, entries, torn }) {
  const rotations = entries.filter((entry) => entry.kind === 'key-rotation');
  const lines = [
    `VALID journal: ${walker.length} entries, every signature and link checked`,
    `  head          ${toHex(walker.head)} (after entry ${walker.length - 1})`,
    `  keys          ${rotations.map((e) => `${toHex(fingerprint(e.pubkey)).slice(0, 16)}… from entry ${e.seq}`).join(', ')}`,
  ];
  for (const [seq, intent] of walker.open) {
    lines.push(`  entry ${seq}: ${pyRepr(intent.action)} started ${entryTime(intent.timeMs)}, no recorded outcome`);
  }
  lines.push(...entries.map((entry) => `  ${describeEntry(entry)}`));
  if (torn) {
    lines.push(`WARNING torn tail: ${torn.size} byte(s) at offset ${torn.offset} are an incomplete record (${torn.why}); an append was interrupted. Entries before it are intact; \`pantheon journal repair\` removes it`);
  }
  return lines;
}
