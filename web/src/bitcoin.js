// Step 5 of docs/proof-format.md: the Bitcoin anchor. The transaction parser P (5.2), the
// merkle branch with its CVE-2012-2459 and 64-byte-transaction guards (5.3, 5.4), compact
// targets, the networks' limits and the main work floor (5.5), the anchor script (5.6) and
// the confirming headers (5.7, 5.8). Hashes are in Bitcoin's internal byte order.

import { concat, equal, toHex, toReversedHex, uintLE } from './bytes.js';
import { decodeError, proofError } from './errors.js';
import { sha256d } from './hash.js';

export const MAIN = 'main';
const LIMIT_MAIN = 0xffffn << 208n;
export const POW_LIMITS = new Map([
  [MAIN, LIMIT_MAIN],
  ['test', LIMIT_MAIN],
  ['testnet4', LIMIT_MAIN],
  ['signet', 0x0377aen << 216n],
  ['regtest', (1n << 255n) - 1n],
]);
const DIFFICULTY_1_TARGET = LIMIT_MAIN;
/** The work floors of `main`: the last row whose since_ms <= t is in force (step 5.5). */
const MAIN_WORK_FLOORS = [
  { sinceMs: 0n, difficulty: 10n ** 12n },
  { sinceMs: 1577836800000n, difficulty: 5n * 10n ** 12n },
  { sinceMs: 1640995200000n, difficulty: 10n ** 13n },
  { sinceMs: 1704067200000n, difficulty: 25n * 10n ** 12n },
];
const COMPACT_SIZE_MAX = 0x02000000;
const MONEY_MAX_SAT = 2100000000000000n;
const INPUT_SIZE_MIN = 41;
const OUTPUT_SIZE_MIN = 9;
const ANCHOR_MAGIC = [0x50, 0x4e, 0x54, 0x48];

function workFloor(atMs) {
  return MAIN_WORK_FLOORS.filter((floor) => floor.sinceMs <= atMs).at(-1);
}

class TxReader {
  constructor(data) {
    this.data = data;
    this.offset = 0;
  }

  remaining() {
    return this.data.length - this.offset;
  }

  take(size, field) {
    if (size > this.remaining()) {
      throw decodeError(`transaction: ${field} needs ${size} bytes at offset ${this.offset}, only ${this.remaining()} left`);
    }
    this.offset += size;
    return this.data.subarray(this.offset - size, this.offset);
  }

  compactSize(field) {
    const start = this.offset;
    const first = this.take(1, field)[0];
    if (first < 0xfd) return first;
    const [width, minimum] = { 0xfd: [2, 0xfd], 0xfe: [4, 0x10000], 0xff: [8, 0x100000000] }[first];
    const value = uintLE(this.take(width, field));
    if (value < BigInt(minimum)) throw decodeError(`transaction: ${field} at offset ${start} is a non-canonical compact size`);
    if (value > BigInt(COMPACT_SIZE_MAX)) throw decodeError(`transaction: ${field} at offset ${start} is ${value}, above ${COMPACT_SIZE_MAX}`);
    return Number(value);
  }

  /** A list length, refused when the bytes left cannot hold that many items. */
  count(field, itemSizeMin) {
    const start = this.offset;
    const value = this.compactSize(field);
    if (value * itemSizeMin > this.remaining()) {
      throw decodeError(`transaction: ${field} at offset ${start} is ${value}, more than the ${this.remaining()} bytes left can hold`);
    }
    return value;
  }
}

/** The parser P of step 5.2 (no witness): the output scripts, or DecodeError. */
function parseTransaction(raw) {
  const r = new TxReader(raw);
  r.take(4, 'version');
  const inputs = r.count('input count', INPUT_SIZE_MIN);
  if (inputs === 0) throw decodeError('transaction has no inputs');
  for (let i = 0; i < inputs; i++) {
    r.take(36, `input ${i} outpoint`);
    r.take(r.count(`input ${i} script length`, 1), `input ${i} script`);
    r.take(4, `input ${i} sequence`);
  }
  const outputs = r.count('output count', OUTPUT_SIZE_MIN);
  if (outputs === 0) throw decodeError('transaction has no outputs');
  const scripts = [];
  for (let i = 0; i < outputs; i++) {
    const value = uintLE(r.take(8, `output ${i} value`));
    if (value > MONEY_MAX_SAT) throw decodeError(`transaction: output ${i} value ${value} sat is above 21 million BTC`);
    scripts.push(r.take(r.count(`output ${i} script length`, 1), `output ${i} script`));
  }
  r.take(4, 'lock time');
  if (r.remaining()) throw decodeError(`transaction: ${r.remaining()} trailing bytes after the lock time`);
  return scripts;
}

function parsesAsTransaction(preimage) {
  try {
    parseTransaction(preimage);
    return true;
  } catch {
    return false;
  }
}

/** Step 5.4: fold the branch from the txid, refusing the ambiguous shapes. */
function foldBranch(txid, branch, index) {
  if (index >= 1n << BigInt(branch.length)) {
    throw proofError(`position ${index} does not fit a merkle branch of ${branch.length} nodes (it must be below ${1n << BigInt(branch.length)})`);
  }
  let node = txid;
  let duplicatedAt = null;
  branch.forEach((sibling, level) => {
    let preimage;
    if ((index >> BigInt(level)) & 1n) {
      if (equal(sibling, node)) {
        throw proofError(`merkle branch level ${level}: the node equals its left sibling, so it is the duplicate of an odd level's last node and position ${index} does not exist in the block (CVE-2012-2459)`);
      }
      preimage = concat(sibling, node);
    } else {
      if (equal(sibling, node)) {
        duplicatedAt ??= level;
      } else if (duplicatedAt !== null) {
        throw proofError(`merkle branch level ${level}: the node was duplicated at level ${duplicatedAt} (last of its level) but here has a distinct right sibling: no tree has that shape (CVE-2012-2459)`);
      }
      preimage = concat(node, sibling);
    }
    if (parsesAsTransaction(preimage)) {
      throw proofError(`merkle branch level ${level}: the 64-byte inner node parses as a transaction, so the branch may pass a transaction off as an inner node`);
    }
    node = sha256d(preimage);
  });
  return node;
}

/** Bitcoin Core's SetCompact, refusing a negative, overflowing or zero target. */
function targetFromBits(bits) {
  const exponent = bits >>> 24;
  let word = BigInt(bits & 0x007fffff);
  let target;
  if (exponent <= 3) {
    word >>= BigInt(8 * (3 - exponent));
    target = word;
  } else {
    target = word << BigInt(8 * (exponent - 3));
  }
  const hex = bits.toString(16).padStart(8, '0');
  if (word && bits & 0x00800000) throw proofError(`header bits 0x${hex} encode a negative target`);
  if (word && (exponent > 34 || (word > 0xffn && exponent > 33) || (word > 0xffffn && exponent > 32))) {
    throw proofError(`header bits 0x${hex} encode a target above 2**256`);
  }
  if (target === 0n) throw proofError(`header bits 0x${hex} encode a zero target`);
  return target;
}

/** Step 5.5 for one 80-byte header: bits, network limit, main floor, then the hash. Returns its work record. */
function checkProofOfWork(header, network, floor) {
  const hash = sha256d(header);
  const bits = Number(uintLE(header.subarray(72, 76)));
  const target = targetFromBits(bits);
  const name = toReversedHex(hash);
  const hex = bits.toString(16).padStart(8, '0');
  if (target > POW_LIMITS.get(network)) throw proofError(`header ${name} bits 0x${hex} demand less work than ${network} allows`);
  if (floor && target > DIFFICULTY_1_TARGET / floor.difficulty) {
    throw proofError(`header ${name} bits 0x${hex} are below the ${network} work floor of difficulty ${floor.difficulty} (a header this easy is cheap to forge)`);
  }
  if (uintLE(hash) > target) throw proofError(`header ${name} does not meet the target of its bits 0x${hex}: insufficient proof of work`);
  return { hash, bits, work: (1n << 256n) / (target + 1n) };
}

/** Step 5.6: the one OP_RETURN output must be exactly OP_RETURN, push 37, "PNTH", 0x01, block hash. */
function anchoredBlockHash(scripts) {
  const opReturns = scripts.filter((script) => script[0] === 0x6a);
  if (opReturns.length !== 1) {
    throw proofError(`the Bitcoin transaction has ${opReturns.length} OP_RETURN outputs; an anchor has exactly 1`);
  }
  const script = opReturns[0];
  const isAnchor = script.length === 39 && script[1] === 37 && ANCHOR_MAGIC.every((b, i) => script[2 + i] === b) && script[6] === 1;
  if (!isAnchor) throw proofError(`the Bitcoin transaction's OP_RETURN output is not a Pantheon anchor: ${toHex(script).slice(0, 80)}`);
  return script.subarray(7);
}

/** Steps 5.1-5.8 for the bundle's `bitcoin` map against the Pantheon block hash; the anchor's part of the claim. */
export function verifyAnchor(anchor, blockHash, floorAtMs) {
  if (!POW_LIMITS.has(anchor.net)) {
    throw proofError(`unknown Bitcoin network ${JSON.stringify(anchor.net)}; known: ${[...POW_LIMITS.keys()].join(', ')}`);
  }
  const floor = anchor.net === MAIN ? workFloor(floorAtMs) : null;
  const scripts = parseTransaction(anchor.tx);
  const txid = sha256d(anchor.tx);
  if (anchor.tx.length === 64) {
    throw proofError(`transaction ${toReversedHex(txid)} is 64 bytes without its witness, which makes it indistinguishable from a merkle inner node`);
  }
  const root = foldBranch(txid, anchor.branch, anchor.txi);
  const merkleRoot = anchor.hdr.subarray(36, 68);
  if (!equal(root, merkleRoot)) {
    throw proofError(`merkle branch of transaction ${toReversedHex(txid)} at position ${anchor.txi} leads to ${toReversedHex(root)}, not to the header's merkle root ${toReversedHex(merkleRoot)}`);
  }
  checkProofOfWork(anchor.hdr, anchor.net, floor);
  const anchored = anchoredBlockHash(scripts);
  if (!equal(anchored, blockHash)) {
    throw proofError(`the Bitcoin transaction ${toReversedHex(txid)} anchors Pantheon block ${toHex(anchored).slice(0, 16)}…, not the bundle's block ${toHex(blockHash).slice(0, 16)}…`);
  }
  const headers = [];
  [anchor.hdr, ...anchor.more].forEach((header, position) => {
    const previous = header.subarray(4, 36);
    if (position > 0 && !equal(previous, headers[position - 1].hash)) {
      throw proofError(`header ${position} builds on ${toReversedHex(previous)}, not on header ${position - 1} (${toReversedHex(headers[position - 1].hash)})`);
    }
    headers.push(checkProofOfWork(header, anchor.net, floor));
  });
  return {
    network: anchor.net,
    txid,
    blockHash: headers[0].hash,
    time: Number(uintLE(anchor.hdr.subarray(68, 72))),
    headers,
    floor,
  };
}
