// ML-DSA-65 (FIPS 204), pure, empty context: @noble/post-quantum, pinned in package.json.
import { ml_dsa65 } from '@noble/post-quantum/ml-dsa.js';

const PUBLIC_KEY_SIZE = 1952;
const SIGNATURE_SIZE = 3309;

/** True when `signature` is a valid signature of `message` under `publicKey`; never throws. */
export function verifySignature(publicKey, message, signature) {
  if (publicKey.length !== PUBLIC_KEY_SIZE || signature.length !== SIGNATURE_SIZE) return false;
  try {
    return ml_dsa65.verify(signature, message, publicKey) === true;
  } catch {
    return false;
  }
}
