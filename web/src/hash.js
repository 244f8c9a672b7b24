// SHA-256 (@noble/hashes), Bitcoin's double SHA-256 and the tagged hashes of docs/proof-format.md section 3.
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { concat } from './bytes.js';

const utf8 = new TextEncoder();
const tagPrefixes = new Map();

export function sha256(...parts) {
  const h = nobleSha256.create();
  for (const part of parts) h.update(part);
  return h.digest();
}

export function sha256d(data) {
  return sha256(sha256(data));
}

/** tagged_hash(tag, msg) = H(H(tag) || H(tag) || msg): the BIP-340 construction. */
export function taggedHash(tag, ...parts) {
  if (!tagPrefixes.has(tag)) {
    const digest = sha256(utf8.encode(tag));
    tagPrefixes.set(tag, concat(digest, digest));
  }
  return sha256(tagPrefixes.get(tag), ...parts);
}
