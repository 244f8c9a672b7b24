// The proof bundle (docs/proof-format.md section 5) and its verification, steps 0 to 6 of section 6.

import { equal, toHex } from './bytes.js';
import { decode, expectBytes, expectList, expectMap, expectText, expectUint } from './cbor.js';
import { decodeError, proofError, step } from './errors.js';
import { leafHash, verifyInclusion } from './merkle.js';
import { verifySignature } from './mldsa.js';
import { FINALIZE, GENESIS_SIZE_MAX, decodeFinality, decodeGenesisRecord, decodeHeader, voteMessage } from './records.js';
import { POW_LIMITS, verifyAnchor } from './bitcoin.js';

export const BUNDLE_SIZE_MAX = 4 * 1024 * 1024;
const PATH_NODES_MAX = 64;
const TX_SIZE_MAX = 100000;
const BRANCH_LENGTH_MAX = 24;
const CONFIRMING_HEADERS_MAX = 2016;
const NETWORK_SIZE_MAX = 16;

/** A genesis file (4.1), decoded; DecodeError if it is not one. */
export function decodeGenesis(data) {
  return decodeGenesisRecord(decode(data, { maxSize: GENESIS_SIZE_MAX }));
}

function hashes(value, what, maxItems, size = 32) {
  return expectList(value, what, maxItems).map((item, i) => expectBytes(item, `${what} ${i}`, { size }));
}

function decodeBitcoin(value) {
  const fields = expectMap(value, 'bundle bitcoin', ['net', 'tx', 'txi', 'branch', 'hdr', 'more']);
  const tx = expectBytes(fields.get('tx'), 'bundle bitcoin tx', { maxSize: TX_SIZE_MAX });
  if (tx.length >= 6 && tx[4] === 0x00 && tx[5] !== 0x00) {
    throw decodeError('bundle bitcoin tx carries a witness: a bundle holds the transaction without its witness (the bytes its txid is computed from)');
  }
  return {
    net: expectText(fields.get('net'), 'bundle bitcoin net', NETWORK_SIZE_MAX),
    tx,
    txi: expectUint(fields.get('txi'), 'bundle bitcoin txi', (1 << BRANCH_LENGTH_MAX) - 1),
    branch: hashes(fields.get('branch'), 'bundle bitcoin branch', BRANCH_LENGTH_MAX),
    hdr: expectBytes(fields.get('hdr'), 'bundle bitcoin hdr', { size: 80 }),
    more: hashes(fields.get('more'), 'bundle bitcoin more', CONFIRMING_HEADERS_MAX, 80),
  };
}

/** Step 1: the bundle's bytes as a bundle record; DecodeError for anything else. */
export function decodeBundle(data) {
  const value = decode(data, { maxSize: BUNDLE_SIZE_MAX });
  if (!(value instanceof Map)) throw decodeError('bundle: expected a map at the top level');
  if (value.has('v')) {
    const version = expectUint(value.get('v'), 'bundle version');
    if (version !== 1n) throw decodeError(`bundle version ${version} is not supported (this verifier reads 1)`);
  }
  const fields = expectMap(value, 'bundle', ['v', 'root', 'index', 'path', 'header', 'finality'], ['bitcoin']);
  const path = hashes(fields.get('path'), 'bundle path node', PATH_NODES_MAX);
  const header = decodeHeader(fields.get('header'));
  const finality = decodeFinality(fields.get('finality'));
  const bitcoin = fields.has('bitcoin') ? decodeBitcoin(fields.get('bitcoin')) : null;
  return {
    root: expectBytes(fields.get('root'), 'bundle root', { size: 32 }),
    index: expectUint(fields.get('index'), 'bundle index'),
    path,
    header,
    finality,
    bitcoin,
  };
}

/** Step 3: the headers link the proved block to the certified one, whose certificate holds a valid quorum. */
function verifyFinality(genesis, header, { headers, cert }) {
  let previous = header;
  headers.forEach((later, position) => {
    if (!equal(later.chain, genesis.chainId)) throw proofError(`proof header ${position} belongs to another chain`);
    if (!equal(later.parent, previous.hash)) {
      throw proofError(`proof header ${position} (height ${later.height}) does not extend the one before: its parent is not the hash of the header before it`);
    }
    if (later.height !== previous.height + 1n) {
      throw proofError(`proof header ${position} (height ${later.height}) does not extend the one before: height ${previous.height + 1n} expected`);
    }
    previous = later;
  });
  if (!equal(cert.block, previous.hash)) throw proofError('the finalization certificate is for another block than the last header of the proof');
  if (cert.view !== previous.view) throw proofError("the finalization certificate's view differs from the certified header's view");
  if (cert.sigs.length < genesis.quorum) throw proofError(`certificate has ${cert.sigs.length} signatures, quorum is ${genesis.quorum}`);
  cert.sigs.forEach(({ index }) => {
    if (index >= genesis.n) throw proofError(`certificate signer ${index} is not one of the ${genesis.n} validators`);
  });
  const message = voteMessage(genesis.chainId, FINALIZE, cert.view, cert.block);
  cert.sigs.forEach(({ index, signature }) => {
    if (!verifySignature(genesis.validators[index], message, signature)) {
      throw proofError(`signature of validator ${index} on the finalize certificate for view ${cert.view} does not verify`);
    }
  });
}

/** An auditor's demands beyond validity (step 6); PolicyError (not a verdict) when it cannot be applied. */
export function checkPolicyOptions({ requireNetwork = null, minConfirmations = null }) {
  if (requireNetwork !== null && !POW_LIMITS.has(requireNetwork)) {
    return `unknown Bitcoin network ${JSON.stringify(requireNetwork)}; known: ${[...POW_LIMITS.keys()].join(', ')}`;
  }
  if (minConfirmations !== null && !(Number.isInteger(minConfirmations) && minConfirmations >= 1)) {
    return `the minimum of confirmations must be at least 1, got ${minConfirmations}`;
  }
  return null;
}

function checkPolicy(claim, { requireNetwork = null, minConfirmations = null }, genesis) {
  const needed = minConfirmations ?? (requireNetwork !== null ? Number(genesis.anchorDepth) : null);
  if (requireNetwork === null && needed === null) return;
  if (!claim.anchor) throw proofError('the bundle is pending: it has no Bitcoin anchor yet, and the policy requires one');
  const network = claim.anchor.network;
  if (requireNetwork !== null && network !== requireNetwork) {
    const test = network !== 'main' ? ' (a test network proves nothing about time)' : '';
    throw proofError(`the anchor is on ${JSON.stringify(network)}, the policy requires ${JSON.stringify(requireNetwork)}${test}`);
  }
  const shown = claim.anchor.headers.length;
  if (needed !== null && shown < needed) {
    throw proofError(`the bundle shows ${shown} confirmation${shown === 1 ? '' : 's'} by headers, the policy requires ${needed}`);
  }
}

/**
 * Verify bundle bytes against a decoded genesis: steps 0 to 6, the first failing one ends it.
 * Returns the claim (native values; see claim.js for its JSON) or throws a VerifyError.
 */
export function verifyBundle(data, genesis, { chainId = null, policy = {} } = {}) {
  step('genesis', () => {
    if (chainId !== null && !equal(genesis.chainId, chainId)) {
      throw proofError(`the genesis has chain id ${toHex(genesis.chainId).slice(0, 16)}…, not the expected ${toHex(chainId).slice(0, 16)}…`);
    }
  });
  const bundle = step('decode', () => decodeBundle(data));
  const { header } = bundle;
  step('chain', () => {
    if (!equal(header.chain, genesis.chainId)) throw proofError("the bundle's block belongs to another chain than the genesis");
    if (!equal(header.vset, genesis.vset)) throw proofError('the block names another validator set than the genesis');
  });
  step('block certificate', () => verifyFinality(genesis, header, bundle.finality));
  step('inclusion proof', () => verifyInclusion(leafHash(bundle.root), bundle.index, header.logSize, bundle.path, header.logRoot));
  const claim = {
    root: bundle.root,
    index: bundle.index,
    logSize: header.logSize,
    logRoot: header.logRoot,
    chainId: genesis.chainId,
    chainName: genesis.name,
    height: header.height,
    blockHash: header.hash,
    signers: bundle.finality.cert.sigs.map(({ index }) => index),
    finalDepth: genesis.anchorDepth,
    validators: genesis.n,
    quorum: genesis.quorum,
    anchor: null,
  };
  if (bundle.bitcoin) {
    const floorAtMs = genesis.createdMs > header.timeMs ? genesis.createdMs : header.timeMs;
    claim.anchor = step('bitcoin anchor', () => verifyAnchor(bundle.bitcoin, header.hash, floorAtMs));
  }
  step('policy', () => checkPolicy(claim, policy, genesis));
  return claim;
}
