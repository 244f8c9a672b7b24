// What a verified bundle proved, as `pantheon verify --json` prints it (docs/proof-format.md
// section 7) and in the words `pantheon verify` prints (proof/verify_cli.py, proof/bundle.py).

import { toHex, toReversedHex } from './bytes.js';
import { MAIN } from './bitcoin.js';

const VERDICT_PENDING = 'VALID pending bundle';
const VERDICT_ANCHORED = 'VALID anchored bundle';
const VERDICT_TEST_NETWORK = 'VALID (test network: the Bitcoin part proves nothing about time)';

/** A JSON number where it is exact, else its decimal digits (JSON numbers above 2^53 lose digits in JS). */
export function jsonInt(value) {
  return Number.isSafeInteger(Number(value)) ? Number(value) : String(value);
}

const work64 = (work) => work.toString(16).padStart(64, '0');
const isTestNetwork = (claim) => claim.anchor !== null && claim.anchor.network !== MAIN;
const confirmations = (claim) => claim.anchor.headers.length;
const isFinal = (claim) => BigInt(confirmations(claim)) >= claim.finalDepth;
const chainWork = (claim) => claim.anchor.headers.reduce((sum, header) => sum + header.work, 0n);

export function verdict(claim) {
  if (!claim.anchor) return VERDICT_PENDING;
  return isTestNetwork(claim) ? VERDICT_TEST_NETWORK : VERDICT_ANCHORED;
}

export function claimJson(claim) {
  const doc = {
    state: claim.anchor ? 'anchored' : 'pending',
    root: toHex(claim.root),
    index: jsonInt(claim.index),
    log_size: jsonInt(claim.logSize),
    log_root: toHex(claim.logRoot),
    chain_id: toHex(claim.chainId),
    chain_name: claim.chainName,
    height: jsonInt(claim.height),
    block_hash: toHex(claim.blockHash),
    signers: claim.signers,
  };
  if (!claim.anchor) return doc;
  const { anchor } = claim;
  let total = 0n;
  const headers = anchor.headers.map((header) => {
    total += header.work;
    return { block_hash: toReversedHex(header.hash), bits: header.bits.toString(16).padStart(8, '0'), work: work64(header.work), chain_work: work64(total) };
  });
  doc.bitcoin_security = isTestNetwork(claim) ? 'none' : 'proof-of-work';
  doc.bitcoin = {
    network: anchor.network,
    txid: toReversedHex(anchor.txid),
    block_hash: toReversedHex(anchor.blockHash),
    time: anchor.time,
    confirmations: confirmations(claim),
    final_depth: jsonInt(claim.finalDepth),
    final: isFinal(claim),
    chain_work: work64(total),
    work_floor: anchor.floor && { difficulty: jsonInt(anchor.floor.difficulty), since_ms: jsonInt(anchor.floor.sinceMs) },
    headers,
  };
  return doc;
}

// ------------------------------------------------------------------ words

/** Work as a power of two, to the hundredth (Python's f"2^{math.log2(work):.2f}"). */
function workLog2(work) {
  if (work === 0n) return '0';
  const bits = work.toString(2).length;
  const shift = Math.max(0, bits - 53);
  return `2^${(Math.log2(Number(work >> BigInt(shift))) + shift).toFixed(2)}`;
}

/** Python's format(value, ".3g") for a positive integer. */
function formatG3(value) {
  const [mantissa, exponent] = Number(value).toExponential(2).split('e');
  const digits = mantissa.replace(/\.?0+$/, '');
  const power = Number(exponent);
  if (power < 3) return String(Number(Number(value).toPrecision(3)));
  return `${digits}e${power < 0 ? '-' : '+'}${String(Math.abs(power)).padStart(2, '0')}`;
}

function utcSeconds(seconds, separator = ' ', suffix = ' UTC') {
  const iso = new Date(seconds * 1000).toISOString();
  return `${iso.slice(0, 10)}${separator}${iso.slice(11, 19)}${suffix}`;
}

const plural = (count, word) => `${count} ${word}${count === 1 ? '' : 's'}`;

/** The verdict line, then one row per fact proved (proof/verify_cli.py describe_claim). */
function describeClaim(claim) {
  const rows = [
    ['root', toHex(claim.root)],
    ['log entry', `${claim.index} of a log of size ${claim.logSize}, log root ${toHex(claim.logRoot)}`],
    ['chain', `${claim.chainName} (chain id ${toHex(claim.chainId)})`],
    ['block', `height ${claim.height}, hash ${toHex(claim.blockHash)}`],
    ['finalized by', `validators ${claim.signers.join(', ')} (${claim.signers.length} of ${claim.validators}, quorum ${claim.quorum})`],
  ];
  if (claim.anchor) {
    const { anchor } = claim;
    const count = confirmations(claim);
    rows.push(['bitcoin tx', `${toReversedHex(anchor.txid)} (${anchor.network})`]);
    rows.push(['bitcoin block', `${toReversedHex(anchor.blockHash)}, time ${utcSeconds(anchor.time)}, ${plural(count, 'confirmation')} by headers in the bundle`]);
    let total = 0n;
    anchor.headers.forEach((header, position) => {
      total += header.work;
      const which = position === 0 ? "the anchor's block" : `confirmation ${position + 1}`;
      rows.push([`header +${position}`, `bits ${header.bits.toString(16).padStart(8, '0')}, work ${workLog2(header.work)}, chain work ${workLog2(total)} (${which}, ${toReversedHex(header.hash).slice(0, 16)}…)`]);
    });
    rows.push(['final depth', `${claim.finalDepth} (genesis anchor_depth): ${isFinal(claim) ? 'reached' : 'NOT reached'} with ${plural(count, 'confirmation')}`]);
    rows.push(['security', isTestNetwork(claim)
      ? `none: ${anchor.network} is a test network, its headers cost nothing to make, so the Bitcoin part proves nothing about time`
      : `proof of work: ${workLog2(chainWork(claim))} expected hashes in all, every header at or above the ${anchor.network} work floor of difficulty ${formatG3(anchor.floor.difficulty)}`]);
  } else {
    rows.push(['bitcoin', 'not yet anchored (pending): run `pantheon proof upgrade` later']);
  }
  return [verdict(claim), ...rows.map(([label, text]) => `  ${label.padEnd(14)}${text}`)];
}

/** The one-sentence statement of what was proved (proof/bundle.py Claim.summary). */
export function summary(claim) {
  const short = (bytes) => `${toHex(bytes).slice(0, 16)}…`;
  let text = `root ${toHex(claim.root)} is entry ${claim.index} of the log of size ${claim.logSize} (root ${short(claim.logRoot)}), `
    + `in block ${claim.height} (${short(claim.blockHash)}) of chain ${claim.chainName} (${short(claim.chainId)}), `
    + `finalized by validators {${claim.signers.join(', ')}}`;
  if (!claim.anchor) return `${text}; not yet anchored in Bitcoin (pending bundle)`;
  const { anchor } = claim;
  const count = confirmations(claim);
  text += `; that block is committed by Bitcoin transaction ${toReversedHex(anchor.txid)} in ${anchor.network} `
    + `block ${toReversedHex(anchor.blockHash)} (time ${utcSeconds(anchor.time, 'T', 'Z')}, `
    + `${plural(count, 'confirmation')} by headers, ${isFinal(claim) ? 'reaching' : 'short of'} the final depth ${claim.finalDepth}, `
    + `chain work ${workLog2(chainWork(claim))} expected hashes)`;
  if (isTestNetwork(claim)) text += `; ${anchor.network} is a test network: the Bitcoin part proves nothing about time`;
  return text;
}

/** Everything `pantheon verify FILE --genesis G` prints for a bundle that verified. */
export function bundleText(claim) {
  return [...describeClaim(claim), `Proved: ${summary(claim)}.`];
}
