// The audit package (docs/journal-format.md section 8) and its verification (section 9).

import { equal, toHex } from './bytes.js';
import { decode, expectBytes, expectList, expectMap, expectUint } from './cbor.js';
import { VerifyError, chainError, decodeError, packageError, step } from './errors.js';
import { BUNDLE_SIZE_MAX, decodeBundle, decodeGenesis, verifyBundle } from './bundle.js';
import { ChainWalker, decodeEntry, fingerprint } from './journal.js';
import { GENESIS_SIZE_MAX, PUBLIC_KEY_SIZE } from './records.js';

const PACKAGE_SIZE_MAX = 64 * 1024 * 1024;
const PACKAGE_ITEMS_MAX = 1 << 22;
const PACKAGE_POSITIONS_MAX = 1000000;
const PACKAGE_DISCLOSED_MAX = 10000;
const PACKAGE_KEYS_MAX = 256;

/** The chain items: runs of withheld digests (Uint8Array) and decoded entries; ChainError "decode" for a bad entry. */
function chainItems(items) {
  let position = 0;
  let disclosed = 0;
  let previousWithheld = false;
  return items.map((item) => {
    let result;
    if (item instanceof Uint8Array) {
      if (item.length === 0 || item.length % 32) {
        throw decodeError(`package chain at entry ${position}: a withheld run is a positive multiple of 32 bytes, got ${item.length}`);
      }
      if (previousWithheld) throw decodeError(`package chain at entry ${position}: adjacent withheld runs must be one run`);
      previousWithheld = true;
      position += item.length / 32;
      result = item;
    } else {
      try {
        result = decodeEntry(item);
      } catch (error) {
        if (error instanceof VerifyError) throw chainError(position, 'decode', error.message);
        throw error;
      }
      previousWithheld = false;
      disclosed += 1;
      position += 1;
    }
    if (position > PACKAGE_POSITIONS_MAX || disclosed > PACKAGE_DISCLOSED_MAX) {
      throw decodeError(`package covers more than ${PACKAGE_POSITIONS_MAX} entries or discloses more than ${PACKAGE_DISCLOSED_MAX}`);
    }
    return result;
  });
}

function decodePackage(data) {
  const value = decode(data, { maxSize: PACKAGE_SIZE_MAX, maxItems: PACKAGE_ITEMS_MAX });
  if (!(value instanceof Map)) throw decodeError('package: expected a map at the top level');
  if (value.has('v')) {
    const version = expectUint(value.get('v'), 'package version');
    if (version !== 1n) throw decodeError(`package version ${version} is not supported (this verifier reads 1)`);
  }
  const fields = expectMap(value, 'package', ['v', 'keys', 'chain', 'genesis', 'bundle']);
  const keys = expectList(fields.get('keys'), 'package keys', PACKAGE_KEYS_MAX)
    .map((key, i) => expectBytes(key, `package key ${i}`, { size: PUBLIC_KEY_SIZE }));
  const chain = chainItems(expectList(fields.get('chain'), 'package chain', 2 * PACKAGE_DISCLOSED_MAX + 1));
  return {
    keys,
    chain,
    genesis: expectBytes(fields.get('genesis'), 'package genesis', { maxSize: GENESIS_SIZE_MAX }),
    bundle: expectBytes(fields.get('bundle'), 'package bundle', { maxSize: BUNDLE_SIZE_MAX }),
  };
}

/**
 * Verify an audit package, steps 1 to 7 of section 9. Returns {claim, positions}: the bundle's
 * claim plus what the chain walk established, and every position of the chain (a disclosed
 * entry or a withheld digest). Throws a VerifyError at the first failure.
 */
export function verifyPackage(data, { chainId = null, producer = null } = {}) {
  const pkg = decodePackage(data);
  const genesis = step('package genesis', () => decodeGenesis(pkg.genesis));
  if (chainId !== null && !equal(genesis.chainId, chainId)) {
    throw packageError('chain-id', `the package's genesis is chain ${toHex(genesis.chainId).slice(0, 16)}…, not the expected ${toHex(chainId).slice(0, 16)}…`);
  }
  const walker = new ChainWalker(producer);
  const positions = [];
  for (const item of pkg.chain) {
    if (item instanceof Uint8Array) {
      for (let offset = 0; offset < item.length; offset += 32) {
        const digest = item.subarray(offset, offset + 32);
        walker.addWithheld(digest);
        positions.push({ seq: walker.length - 1, withheld: true, digest });
      }
    } else {
      walker.addEntry(item);
      positions.push({ seq: walker.length - 1, withheld: false, entry: item });
    }
  }
  if (walker.length === 0) throw packageError('empty', 'the package holds no entries');
  const keysMatch = walker.keys.length === pkg.keys.length && walker.keys.every((key, i) => equal(key, pkg.keys[i]));
  if (!keysMatch) throw packageError('keys', "the package's key list is not the keys its key-rotation entries introduce");
  const bundle = step('package bundle', () => decodeBundle(pkg.bundle));
  if (!equal(bundle.root, walker.head)) {
    throw packageError('head', `the bundle proves root ${toHex(bundle.root).slice(0, 16)}…, but the chain hash after entry ${walker.length - 1} is ${toHex(walker.head).slice(0, 16)}…`);
  }
  const claim = step('package bundle', () => verifyBundle(pkg.bundle, genesis));
  return {
    claim,
    producer: fingerprint(walker.keys[0]),
    keys: walker.keys.map(fingerprint),
    head: walker.head,
    length: walker.length,
    positions,
    openIntents: [...walker.open.keys()],
  };
}
