// The chain records of docs/proof-format.md section 4: genesis, block header, certificate,
// finalization proof. Each decoder refuses a missing or unknown key, a wrong type or size,
// an out-of-range integer and the structural rules of its record (all DecodeError).

import { ZERO_HASH, concat, equal } from './bytes.js';
import { encode, expectBytes, expectInt, expectList, expectMap, expectText, expectUint, utf8Size } from './cbor.js';
import { decodeError } from './errors.js';
import { taggedHash } from './hash.js';

export const PUBLIC_KEY_SIZE = 1952;
export const SIGNATURE_SIZE = 3309;
const VALIDATORS_MAX = 100;
export const GENESIS_SIZE_MAX = VALIDATORS_MAX * (PUBLIC_KEY_SIZE + 8) + 1024;
const CHAIN_NAME_SIZE_MAX = 64;
const ANCHORS_PER_BLOCK_MAX = 16;
const FINALITY_HEADERS_MAX = 4096;
export const FINALIZE = 3n;
const NULLIFY = 2n;

const TAG_GENESIS = 'pantheon/genesis/v1';
const TAG_HEADER = 'pantheon/block-header/v1';
const TAG_VOTE = 'pantheon/vote/v1';
const TAG_VALIDATOR_SET = 'pantheon/validator-set/v1';

/** Genesis (4.1): its CBOR bytes hash to the chain id. */
export function decodeGenesisRecord(value) {
  const fields = expectMap(value, 'genesis', ['name', 'validators', 'created_ms', 'anchor_blocks', 'anchor_ms', 'anchor_depth']);
  const keys = expectList(fields.get('validators'), 'genesis validators', VALIDATORS_MAX);
  const validators = keys.map((key, i) => expectBytes(key, `genesis validator ${i}`, { size: PUBLIC_KEY_SIZE }));
  const name = expectText(fields.get('name'), 'genesis name', CHAIN_NAME_SIZE_MAX);
  const genesis = {
    name,
    validators,
    createdMs: expectUint(fields.get('created_ms'), 'genesis created_ms'),
    anchorBlocks: expectUint(fields.get('anchor_blocks'), 'genesis anchor_blocks'),
    anchorMs: expectUint(fields.get('anchor_ms'), 'genesis anchor_ms'),
    anchorDepth: expectUint(fields.get('anchor_depth'), 'genesis anchor_depth'),
  };
  if (utf8Size(name) === 0) throw decodeError('genesis: chain_name must be 1..64 bytes of text');
  const n = validators.length;
  if (n < 1 || (n - 1) % 3 !== 0) {
    throw decodeError(`genesis: validator count must be 3f+1 (1, 4, 7, ...) and at most ${VALIDATORS_MAX}, got ${n}`);
  }
  const distinct = new Set(validators.map((key) => key.join(',')));
  if (distinct.size !== n) throw decodeError('genesis: validator public keys must be distinct');
  const f = (n - 1) / 3;
  return {
    ...genesis,
    n,
    quorum: 2 * f + 1,
    chainId: taggedHash(TAG_GENESIS, value.raw),
    vset: taggedHash(TAG_VALIDATOR_SET, encode(validators)),
  };
}

function hash32(fields, key, what) {
  return expectBytes(fields.get(key), what, { size: 32 });
}

function decodeAnchorRef(value) {
  const fields = expectMap(value, 'anchor', ['txid', 'vout', 'block', 'btc_block', 'btc_height']);
  hash32(fields, 'txid', 'anchor txid');
  expectUint(fields.get('vout'), 'anchor vout');
  hash32(fields, 'block', 'anchor block');
  hash32(fields, 'btc_block', 'anchor btc_block');
  expectUint(fields.get('btc_height'), 'anchor btc_height');
}

/** Block header (4.2), with its block hash. */
export function decodeHeader(value) {
  const fields = expectMap(value, 'header',
    ['chain', 'height', 'view', 'parent', 'time_ms', 'proposer', 'log_size', 'log_root', 'vset', 'anchors', 'body']);
  expectList(fields.get('anchors'), 'header anchors', ANCHORS_PER_BLOCK_MAX).forEach(decodeAnchorRef);
  const header = {
    chain: hash32(fields, 'chain', 'header chain'),
    height: expectUint(fields.get('height'), 'header height'),
    view: expectUint(fields.get('view'), 'header view'),
    parent: hash32(fields, 'parent', 'header parent'),
    timeMs: expectUint(fields.get('time_ms'), 'header time_ms'),
    proposer: expectUint(fields.get('proposer'), 'header proposer'),
    logSize: expectUint(fields.get('log_size'), 'header log_size'),
    logRoot: hash32(fields, 'log_root', 'header log_root'),
    vset: hash32(fields, 'vset', 'header vset'),
    body: hash32(fields, 'body', 'header body'),
    hash: taggedHash(TAG_HEADER, value.raw),
  };
  if (header.height < 1n) throw decodeError('header: header height must be at least 1 (the genesis is not a block)');
  if ((header.height === 1n) !== equal(header.parent, ZERO_HASH)) {
    throw decodeError('header: exactly the block at height 1 has the genesis parent (32 zero bytes)');
  }
  if (header.proposer >= BigInt(VALIDATORS_MAX)) {
    throw decodeError(`header: header proposer ${header.proposer} is not below ${VALIDATORS_MAX}`);
  }
  return header;
}

/** Certificate (4.3): kind, view, block hash and [index, signature] pairs, indices strictly increasing. */
function decodeCertificate(value) {
  const fields = expectMap(value, 'certificate', ['kind', 'view', 'block', 'sigs']);
  const sigs = expectList(fields.get('sigs'), 'certificate sigs', VALIDATORS_MAX).map((item, position) => {
    const pair = expectList(item, `certificate sig ${position}`, 2);
    if (pair.length !== 2) throw decodeError(`certificate sig ${position}: expected [index, signature]`);
    const index = expectUint(pair[0], `certificate sig ${position} index`, VALIDATORS_MAX - 1);
    const signature = expectBytes(pair[1], `certificate sig ${position} signature`, { maxSize: SIGNATURE_SIZE });
    return { index: Number(index), signature };
  });
  const cert = {
    kind: expectInt(fields.get('kind'), 'certificate kind', 1n, 3n),
    view: expectUint(fields.get('view'), 'certificate view'),
    block: hash32(fields, 'block', 'certificate block'),
    sigs,
  };
  if ((cert.kind === NULLIFY) !== equal(cert.block, ZERO_HASH)) {
    throw decodeError('certificate: exactly nullify certificates carry the zero block hash');
  }
  if (sigs.length < 1) throw decodeError(`certificate: certificate must hold 1..${VALIDATORS_MAX} signatures`);
  sigs.forEach(({ index, signature }, position) => {
    if (position > 0 && index <= sigs[position - 1].index) {
      throw decodeError('certificate: certificate signer indices must be strictly increasing');
    }
    if (signature.length === 0) throw decodeError(`certificate: certificate signature must be 1..${SIGNATURE_SIZE} bytes`);
  });
  return cert;
}

/** Finalization proof (4.4): headers up to a certified descendant, and its finalize certificate. */
export function decodeFinality(value) {
  const fields = expectMap(value, 'finalization proof', ['headers', 'cert']);
  const headers = expectList(fields.get('headers'), 'finalization proof headers', FINALITY_HEADERS_MAX).map(decodeHeader);
  const cert = decodeCertificate(fields.get('cert'));
  if (cert.kind !== FINALIZE) throw decodeError('finalization proof: a finalization proof needs a finalize certificate');
  return { headers, cert };
}

/** The 32 bytes validators sign for a vote: tagged_hash(vote tag, chain_id || CBOR([kind, view, block])). */
export function voteMessage(chainId, kind, view, block) {
  return taggedHash(TAG_VOTE, concat(chainId, encode([kind, view, block])));
}
