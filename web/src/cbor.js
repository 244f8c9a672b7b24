// Strict canonical CBOR, exactly the subset of docs/proof-format.md section 2.
//
// Accepted: unsigned and negative integers (returned as BigInt), definite byte strings
// (Uint8Array), definite UTF-8 text (string), definite arrays, maps with integer or text
// keys (a Map in key order), false, true, null. Refused: tags, floats, indefinite lengths,
// additional information 28-30, every other simple value, non-shortest arguments, map keys
// out of order or repeated, trailing bytes. Bounds (size, depth, items, lengths) are checked
// before the work they bound, counted as the spec counts them.
//
// A decoded map also keeps its own bytes (`raw`) and those of each key and value pair
// (`pairs`): the input is canonical, so these are the encodings a hash is taken over.

import { compare, concat } from './bytes.js';
import { decodeError } from './errors.js';

const MAX_DEPTH = 32;
const MAX_ITEMS = 1 << 16;

const TAG = 6;
const SIMPLE = 7;
const KEY_MAJORS = new Set([0, 1, 3]);
const SIMPLE_VALUES = new Map([[20, false], [21, true], [22, null]]);
const ARGUMENT_SIZES = new Map([[24, 1], [25, 2], [26, 4], [27, 8]]);
const ARGUMENT_MINIMUMS = new Map([[24, 24n], [25, 1n << 8n], [26, 1n << 16n], [27, 1n << 32n]]);
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The value whose canonical encoding is exactly `data`; DecodeError for anything else. */
export function decode(data, { maxSize, maxDepth = MAX_DEPTH, maxItems = MAX_ITEMS }) {
  if (data.length > maxSize) {
    throw decodeError(`CBOR input of ${data.length} bytes exceeds max_size of ${maxSize} bytes`);
  }
  const reader = new Reader(data, maxDepth, maxItems);
  const value = reader.item(0);
  if (reader.pos !== data.length) {
    reader.fail(reader.pos, `trailing bytes after the top-level item (${data.length - reader.pos} extra)`);
  }
  return value;
}

class Reader {
  constructor(data, maxDepth, maxItems) {
    this.data = data;
    this.pos = 0;
    this.maxDepth = maxDepth;
    this.maxItems = maxItems;
    this.itemsLeft = maxItems;
  }

  fail(offset, problem) {
    throw decodeError(`CBOR at byte offset ${offset}: ${problem}`);
  }

  remaining() {
    return this.data.length - this.pos;
  }

  /** [offset, major, argument]: for major type 7 the argument is the additional information. */
  head() {
    const offset = this.pos;
    if (this.remaining() < 1) this.fail(offset, 'truncated: expected a data item, input ended');
    const initial = this.data[this.pos++];
    const major = initial >> 5;
    const info = initial & 0x1f;
    if (major === TAG) this.fail(offset, 'tags (major type 6) are not supported');
    if (major === SIMPLE || info < 24) return [offset, major, BigInt(info)];
    if (ARGUMENT_SIZES.has(info)) {
      const size = ARGUMENT_SIZES.get(info);
      if (size > this.remaining()) {
        this.fail(offset, `truncated: argument needs ${size} bytes, only ${this.remaining()} remain`);
      }
      let argument = 0n;
      for (let i = 0; i < size; i++) argument = (argument << 8n) | BigInt(this.data[this.pos++]);
      if (argument < ARGUMENT_MINIMUMS.get(info)) {
        this.fail(offset, `non-shortest form: argument ${argument} in a ${size}-byte field`);
      }
      return [offset, major, argument];
    }
    if (info === 31) this.fail(offset, `indefinite length (major type ${major}) is not allowed`);
    return this.fail(offset, `reserved additional information value ${info}`);
  }

  item(depth) {
    if (this.itemsLeft < 1) this.fail(this.pos, `more than max_items=${this.maxItems} data items`);
    this.itemsLeft -= 1;
    const [offset, major, argument] = this.head();
    switch (major) {
      case 0:
        return argument;
      case 1:
        return -1n - argument;
      case 2:
      case 3:
        return this.string(offset, major, argument);
      case 4:
        return this.array(depth + 1, offset, argument);
      case 5:
        return this.map(depth + 1, offset, argument);
      default:
        return this.simple(offset, Number(argument));
    }
  }

  string(offset, major, length) {
    if (length > BigInt(this.remaining())) {
      this.fail(offset, `declared length ${length} exceeds the ${this.remaining()} bytes remaining`);
    }
    const chunk = this.data.subarray(this.pos, this.pos + Number(length));
    this.pos += chunk.length;
    if (major === 2) return chunk;
    try {
      return utf8.decode(chunk);
    } catch {
      return this.fail(offset, 'invalid UTF-8 in text string');
    }
  }

  /** Check a container's depth and declared size before reading any element. */
  enter(depth, offset, count, itemCount) {
    if (depth > this.maxDepth) this.fail(offset, `nesting deeper than max_depth=${this.maxDepth}`);
    if (itemCount > BigInt(this.remaining())) {
      this.fail(offset, `declared count ${count} exceeds what the ${this.remaining()} bytes remaining can hold`);
    }
    if (itemCount > BigInt(this.itemsLeft)) {
      this.fail(offset, `declared count ${count} exceeds max_items=${this.maxItems}`);
    }
  }

  array(depth, offset, count) {
    this.enter(depth, offset, count, count);
    const out = [];
    for (let i = 0n; i < count; i++) out.push(this.item(depth));
    return out;
  }

  map(depth, offset, count) {
    this.enter(depth, offset, count, 2n * count);
    const out = new Map();
    out.pairs = new Map();
    let previous = null;
    for (let i = 0n; i < count; i++) {
      const keyOffset = this.pos;
      if (this.remaining() < 1) this.fail(keyOffset, 'truncated: expected a map key, input ended');
      if (!KEY_MAJORS.has(this.data[keyOffset] >> 5)) this.fail(keyOffset, 'map key is not an integer or text string');
      const key = this.item(depth);
      const keyBytes = this.data.subarray(keyOffset, this.pos);
      if (previous !== null) {
        const order = compare(keyBytes, previous);
        if (order === 0) this.fail(keyOffset, `duplicate map key ${JSON.stringify(String(key))}`);
        if (order < 0) this.fail(keyOffset, `map key ${JSON.stringify(String(key))} is out of canonical order`);
      }
      previous = keyBytes;
      out.set(key, this.item(depth));
      out.pairs.set(key, this.data.subarray(keyOffset, this.pos));
    }
    out.raw = this.data.subarray(offset, this.pos);
    return out;
  }

  simple(offset, info) {
    if (SIMPLE_VALUES.has(info)) return SIMPLE_VALUES.get(info);
    if (info >= 25 && info <= 27) this.fail(offset, 'floating-point values are not supported');
    if (info === 31) this.fail(offset, 'break stop code outside an indefinite-length item');
    if (info >= 28 && info <= 30) this.fail(offset, `reserved additional information value ${info}`);
    return this.fail(offset, `unsupported simple value (additional information ${info})`);
  }
}

// ------------------------------------------------------------------ encoding (heads, uints, bytes, arrays)

/** The canonical head of an item of `major` type with `argument` (a count, length or value). */
export function encodeHead(major, argument) {
  const value = BigInt(argument);
  const initial = major << 5;
  if (value < 24n) return Uint8Array.of(initial | Number(value));
  const size = value < 1n << 8n ? 1 : value < 1n << 16n ? 2 : value < 1n << 32n ? 4 : 8;
  const out = new Uint8Array(1 + size);
  out[0] = initial | { 1: 24, 2: 25, 4: 26, 8: 27 }[size];
  for (let i = 0; i < size; i++) out[size - i] = Number((value >> BigInt(8 * i)) & 0xffn);
  return out;
}

/** Canonical CBOR of unsigned integers, byte strings and arrays of them: what votes and the validator set hash. */
export function encode(value) {
  if (value instanceof Uint8Array) return concat(encodeHead(2, value.length), value);
  if (Array.isArray(value)) return concat(encodeHead(4, value.length), ...value.map(encode));
  return encodeHead(0, value);
}


// ------------------------------------------------------------------ record helpers (sections 4 and 5)

function kindOf(value) {
  if (typeof value === 'boolean') return 'bool';
  if (value === null) return 'null';
  if (typeof value === 'bigint') return 'integer';
  if (value instanceof Uint8Array) return 'byte string';
  if (typeof value === 'string') return 'text string';
  if (Array.isArray(value)) return 'array';
  return 'map';
}

export function utf8Size(text) {
  return new TextEncoder().encode(text).length;
}

/** `value` as a record: a map with every required field and no unknown one. */
export function expectMap(value, what, required, optional = []) {
  if (!(value instanceof Map)) throw decodeError(`${what}: expected a map, got ${kindOf(value)}`);
  const missing = required.filter((key) => !value.has(key));
  if (missing.length) throw decodeError(`${what}: missing field(s) ${missing.sort().join(', ')}`);
  const known = new Set([...required, ...optional]);
  const unknown = [...value.keys()].filter((key) => !known.has(key));
  if (unknown.length) throw decodeError(`${what}: unknown field(s) ${unknown.map(String).join(', ')}`);
  return value;
}

export function expectBytes(value, what, { size, maxSize } = {}) {
  if (!(value instanceof Uint8Array)) throw decodeError(`${what}: expected a byte string, got ${kindOf(value)}`);
  if (size !== undefined && value.length !== size) throw decodeError(`${what}: expected ${size} bytes, got ${value.length}`);
  if (maxSize !== undefined && value.length > maxSize) {
    throw decodeError(`${what}: ${value.length} bytes exceeds the maximum of ${maxSize}`);
  }
  return value;
}

export function expectInt(value, what, min, max) {
  if (typeof value !== 'bigint') throw decodeError(`${what}: expected an integer, got ${kindOf(value)}`);
  if (value < min || value > max) throw decodeError(`${what}: ${value} is outside ${min} .. ${max}`);
  return value;
}

export const UINT64_MAX = (1n << 64n) - 1n;

export function expectUint(value, what, max = UINT64_MAX) {
  return expectInt(value, what, 0n, BigInt(max));
}

export function expectText(value, what, maxSize) {
  if (typeof value !== 'string') throw decodeError(`${what}: expected a text string, got ${kindOf(value)}`);
  const size = utf8Size(value);
  if (size > maxSize) throw decodeError(`${what}: text of ${size} bytes exceeds the maximum of ${maxSize}`);
  return value;
}

export function expectList(value, what, maxItems) {
  if (!Array.isArray(value)) throw decodeError(`${what}: expected an array, got ${kindOf(value)}`);
  if (value.length > maxItems) throw decodeError(`${what}: ${value.length} items exceeds the maximum of ${maxItems}`);
  return value;
}
