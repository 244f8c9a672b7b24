// RFC 9162 section 2.1.3.2: verifying an inclusion proof (docs/proof-format.md step 4).

import { concat, equal, toHex } from './bytes.js';
import { proofError } from './errors.js';
import { sha256 } from './hash.js';

export const leafHash = (root) => sha256(Uint8Array.of(0), root);
const nodeHash = (left, right) => sha256(Uint8Array.of(1), concat(left, right));

function bitLength(value) {
  return value === 0n ? 0 : value.toString(2).length;
}

function popCount(value) {
  return [...value.toString(2)].filter((digit) => digit === '1').length;
}

/** Throw ProofError unless `path` proves `leaf` is entry `index` (BigInt) of the tree of `size` leaves with `root`. */
export function verifyInclusion(leaf, index, size, path, root) {
  if (index >= size) throw proofError(`index ${index} is beyond the tree: it must be below size ${size}`);
  // Below the node where the paths to index and size-1 part, a sibling sits left or right by
  // one bit of index; above it the path runs up the right edge, one left sibling per set bit.
  const inner = bitLength(index ^ (size - 1n));
  const border = popCount(index >> BigInt(inner));
  if (path.length !== inner + border) throw proofError(`wrong path length: ${path.length} nodes, want ${inner + border}`);
  let node = leaf;
  path.forEach((sibling, level) => {
    const siblingOnRight = level < inner && ((index >> BigInt(level)) & 1n) === 0n;
    node = siblingOnRight ? nodeHash(node, sibling) : nodeHash(sibling, node);
  });
  if (!equal(node, root)) {
    throw proofError(`root mismatch: proof leads to ${toHex(node).slice(0, 16)}..., want ${toHex(root).slice(0, 16)}...`);
  }
}
