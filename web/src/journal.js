// Journal entries (docs/journal-format.md sections 3 and 4) and the chain walk of section 7.

import { ZERO_HASH, concat, equal, toHex } from './bytes.js';
import { encodeHead, expectMap, expectText, utf8Size, UINT64_MAX } from './cbor.js';
import { chainError, decodeError } from './errors.js';
import { taggedHash } from './hash.js';
import { verifySignature } from './mldsa.js';
import { PUBLIC_KEY_SIZE, SIGNATURE_SIZE } from './records.js';

const TAG_SIGNED = 'pantheon/journal-signed/v1';
const TAG_ENTRY = 'pantheon/journal-entry/v1';
const TAG_CHAIN = 'pantheon/journal-chain/v1';
const TAG_KEY = 'pantheon/journal-key/v1';
const KINDS = ['intent', 'outcome', 'note', 'key-rotation', 'anchor'];
const NAME_SIZE_MAX = 64;
const DIGESTS_MAX = 64;
const META_KEYS_MAX = 32;
const META_TEXT_SIZE_MAX = 1024;
const META_BYTES_SIZE_MAX = 64;
const INT64_MIN = -(1n << 63n);
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

export const fingerprint = (publicKey) => taggedHash(TAG_KEY, publicKey);
const chainHash = (previous, entryDigest) => taggedHash(TAG_CHAIN, concat(previous, entryDigest));

function uint(value, what) {
  if (typeof value !== 'bigint' || value < 0n || value > UINT64_MAX) throw decodeError(`entry: ${what} must be an integer in 0..2**64-1`);
  return value;
}

function bytes(value, what, size) {
  if (!(value instanceof Uint8Array) || value.length !== size) throw decodeError(`entry: ${what} must be ${size} bytes`);
  return value;
}

function name(value, what) {
  if (typeof value !== 'string' || utf8Size(value) < 1 || utf8Size(value) > NAME_SIZE_MAX) {
    throw decodeError(`entry: ${what} must be 1..${NAME_SIZE_MAX} bytes of text`);
  }
  if (CONTROL.test(value)) throw decodeError(`entry: ${what} holds control characters (U+0000..U+001F, U+007F..U+009F)`);
  return value;
}

function digests(value, what) {
  if (!(value instanceof Map) || value.size > DIGESTS_MAX) throw decodeError(`entry: ${what} must be a map of at most ${DIGESTS_MAX} named digests`);
  for (const [key, item] of value) bytes(item, `${what} digest ${JSON.stringify(name(key, `${what} name`))}`, 32);
  return value;
}

function metaValue(key, value) {
  if (typeof value === 'boolean') return;
  if (typeof value === 'bigint') {
    if (value < INT64_MIN) throw decodeError(`entry: meta ${JSON.stringify(key)}: integer outside -2**63..2**64-1`);
  } else if (typeof value === 'string') {
    if (utf8Size(value) > META_TEXT_SIZE_MAX) throw decodeError(`entry: meta ${JSON.stringify(key)}: text longer than ${META_TEXT_SIZE_MAX} bytes`);
    if (CONTROL.test(value)) throw decodeError(`entry: meta ${JSON.stringify(key)}: text holds control characters`);
  } else if (value instanceof Uint8Array) {
    if (value.length > META_BYTES_SIZE_MAX) throw decodeError(`entry: meta ${JSON.stringify(key)}: byte string longer than ${META_BYTES_SIZE_MAX} bytes`);
  } else {
    throw decodeError(`entry: meta ${JSON.stringify(key)}: a value must be text, an integer, a bool or bytes`);
  }
}

function meta(value, kind) {
  if (!(value instanceof Map) || value.size > META_KEYS_MAX) throw decodeError(`entry: meta must be a map of at most ${META_KEYS_MAX} keys`);
  for (const [key, item] of value) metaValue(name(key, 'meta key'), item);
  if (kind === 'outcome') {
    const status = value.get('status');
    if (status !== 'ok' && status !== 'error') throw decodeError("entry: an outcome's meta must have status 'ok' or 'error'");
    if (value.has('error') !== (status === 'error') || (value.has('error') && typeof value.get('error') !== 'string')) {
      throw decodeError("entry: exactly an outcome with status 'error' has meta 'error', a text");
    }
  }
  return value;
}

/** The signed message: the tagged hash of the entry map without `sig` (its other pairs, in order). */
function signedMessage(fields) {
  const pairs = [...fields.pairs].filter(([key]) => key !== 'sig').map(([, raw]) => raw);
  return taggedHash(TAG_SIGNED, concat(encodeHead(5, pairs.length), ...pairs));
}

/** An entry record (section 4) from its decoded map; DecodeError when it breaks a rule. */
export function decodeEntry(value) {
  const fields = expectMap(value, 'entry', ['seq', 'prev', 'time_ms', 'signer', 'kind', 'action', 'in', 'meta', 'sig'], ['out', 'ref', 'pubkey']);
  const kind = expectText(fields.get('kind'), 'entry kind', 16);
  if (!KINDS.includes(kind)) throw decodeError(`entry kind ${JSON.stringify(kind)} is not one of ${KINDS.join(', ')}`);
  const entry = {
    seq: uint(fields.get('seq'), 'seq'),
    prev: bytes(fields.get('prev'), 'prev', 32),
    timeMs: uint(fields.get('time_ms'), 'time_ms'),
    signer: bytes(fields.get('signer'), 'signer', 32),
    kind,
    action: name(fields.get('action'), 'action'),
    inputs: digests(fields.get('in'), 'in'),
    outputs: fields.has('out') ? digests(fields.get('out'), 'out') : null,
    meta: null,
    signature: null,
    ref: null,
    pubkey: null,
  };
  if (entry.outputs && entry.outputs.size === 0) throw decodeError('entry: out, when present, names at least one digest (absent means none)');
  if (entry.outputs && kind === 'intent') throw decodeError('entry: an intent has no outputs yet: they belong in its outcome');
  entry.meta = meta(fields.get('meta'), kind);
  entry.signature = bytes(fields.get('sig'), 'sig', SIGNATURE_SIZE);
  if ((kind === 'outcome') !== fields.has('ref')) throw decodeError('entry: exactly outcome entries carry ref (the seq of their intent)');
  if (fields.has('ref')) {
    entry.ref = uint(fields.get('ref'), 'ref');
    if (entry.ref >= entry.seq) throw decodeError(`entry: ref ${entry.ref} must name an earlier entry than seq ${entry.seq}`);
  }
  if ((kind === 'key-rotation') !== fields.has('pubkey')) throw decodeError('entry: exactly key-rotation entries carry pubkey');
  if (fields.has('pubkey')) entry.pubkey = bytes(fields.get('pubkey'), 'pubkey', PUBLIC_KEY_SIZE);
  entry.digest = taggedHash(TAG_ENTRY, value.raw);
  entry.message = signedMessage(fields);
  return entry;
}

const short = (value) => `${toHex(value).slice(0, 16)}…`;

/** Section 7: feed the chain position by position; the first broken rule throws a ChainError. */
export class ChainWalker {
  constructor(firstKey = null) {
    this.firstKey = firstKey;
    this.head = ZERO_HASH;
    this.length = 0;
    this.disclosed = new Set();
    this.keys = [];
    this.fingerprints = new Set();
    this.open = new Map();
    this.timeMs = 0n;
  }

  addWithheld(entryDigest) {
    if (this.length === 0) throw chainError(0, 'first-entry', 'entry 0 introduces the producer key and is never withheld');
    this.advance(entryDigest);
  }

  addEntry(entry) {
    const position = this.length;
    if (entry.seq !== BigInt(position)) {
      throw chainError(position, 'seq', `entry at position ${position} says seq ${entry.seq} (an entry deleted, inserted or moved)`);
    }
    if (!equal(entry.prev, this.head)) {
      throw chainError(position, 'prev', `prev ${short(entry.prev)} is not the chain hash of the entry before (${short(this.head)})`);
    }
    if (entry.timeMs < this.timeMs) throw chainError(position, 'time', `time ${entry.timeMs} ms is before the previous entry's ${this.timeMs} ms`);
    const key = position === 0 ? this.firstEntryKey(entry) : this.activeKey(entry);
    if (!verifySignature(key, entry.message, entry.signature)) {
      throw chainError(position, 'signature', 'the ML-DSA-65 signature does not verify (entry edited after signing)');
    }
    if (entry.kind === 'key-rotation') {
      const print = toHex(fingerprint(entry.pubkey));
      if (this.fingerprints.has(print)) throw chainError(position, 'key-reused', 'a key rotation must introduce a key not used before');
      this.fingerprints.add(print);
      this.keys.push(entry.pubkey);
    } else if (entry.kind === 'intent') {
      this.open.set(position, entry);
    } else if (entry.kind === 'outcome') {
      this.closeIntent(entry, position);
    }
    this.timeMs = entry.timeMs;
    this.disclosed.add(position);
    this.advance(entry.digest);
  }

  firstEntryKey(entry) {
    if (entry.kind !== 'key-rotation') {
      throw chainError(0, 'first-entry', `entry 0 must be a key-rotation entry introducing the producer key, not ${entry.kind}`);
    }
    if (!equal(entry.signer, fingerprint(entry.pubkey))) throw chainError(0, 'key-unknown', 'entry 0 must be signed by the key it introduces');
    if (this.firstKey !== null && !equal(entry.signer, this.firstKey)) {
      throw chainError(0, 'first-key', `the producer key is ${short(entry.signer)}, not the expected ${short(this.firstKey)}`);
    }
    return entry.pubkey;
  }

  activeKey(entry) {
    const active = this.keys.at(-1);
    if (!equal(entry.signer, fingerprint(active))) {
      throw chainError(this.length, 'key-unknown', `signed by key ${short(entry.signer)}, but the active producer key is ${short(fingerprint(active))} (re-signed with another key, or a key rotation withheld)`);
    }
    return active;
  }

  closeIntent(entry, position) {
    const ref = Number(entry.ref);
    const intent = this.open.get(ref);
    if (intent) {
      if (intent.action !== entry.action) {
        throw chainError(position, 'outcome-mismatch', `outcome of ${JSON.stringify(entry.action)} closes intent ${ref}, which is ${JSON.stringify(intent.action)}`);
      }
      this.open.delete(ref);
    } else if (this.disclosed.has(ref)) {
      throw chainError(position, 'outcome-ref', `ref ${ref} is not an intent awaiting its outcome (not an intent, or already closed)`);
    }
  }

  advance(entryDigest) {
    this.head = chainHash(this.head, entryDigest);
    this.length += 1;
  }
}
