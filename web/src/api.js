// window.pantheon: the verifier for automation and for the page.
//
//   verify(bundle, genesis, options?)   -> Promise<{ok, claim, error, verdict, text}>
//   verifyPackage(pkg, options?)        -> Promise<{ok, claim, journal, error, verdict, text}>
//   verifyJournal(file, options?)       -> Promise<{ok, claim, journal, error, text}>  (a journal.pjl)
//
// Options: chainId (hex), and for bundles requireNetwork and minConfirmations (the policy of
// docs/proof-format.md step 6), for packages and journal files producer (hex fingerprint of the first key).
// `error` is {class, prefix, message, reason?, seq?}: the error class and step prefix of the
// spec, so a test compares them with the reference verifier's.

import { fromHex } from './bytes.js';
import { bundleText, claimJson, verdict } from './claim.js';
import { VerifyError } from './errors.js';
import { checkPolicyOptions, decodeGenesis, verifyBundle } from './bundle.js';
import { verifyPackage as verifyPackageBytes } from './package.js';
import { verifyJournalFile } from './journalfile.js';
import { journalFileEntries, journalFileJson, journalFileText, journalJson, packageJson, packageText } from './report.js';

function failure(cls, message, extra = {}) {
  return { class: cls, prefix: '', message, ...extra };
}

function errorOf(error) {
  if (!(error instanceof VerifyError)) return failure('InternalError', String(error && error.stack || error));
  const out = failure(error.cls, error.message, { prefix: error.prefix });
  if (error.reason !== undefined) out.reason = error.reason;
  if (error.seq !== undefined) out.seq = error.seq;
  return out;
}

/** A hex option as 32 bytes; an InputError message otherwise. */
function hash32Option(options, name) {
  const text = options[name];
  if (text === undefined || text === null || text === '') return { value: null };
  const value = fromHex(String(text).trim());
  return value && value.length === 32 ? { value } : { problem: `${name} must be 64 hex digits, got ${JSON.stringify(String(text).slice(0, 70))}` };
}

function asBytes(data, what) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  throw new TypeError(`${what} must be a Uint8Array`);
}

export async function verify(bundle, genesis, options = {}) {
  const bundleBytes = asBytes(bundle, 'bundle');
  const pin = hash32Option(options, 'chainId');
  const policy = { requireNetwork: options.requireNetwork ?? null, minConfirmations: options.minConfirmations ?? null };
  const problem = pin.problem ?? checkPolicyOptions(policy);
  if (problem) return { ok: false, claim: null, error: failure(pin.problem ? 'InputError' : 'PolicyError', problem) };
  let decodedGenesis;
  try {
    decodedGenesis = decodeGenesis(asBytes(genesis, 'genesis'));
  } catch (error) {
    return { ok: false, claim: null, error: failure('InputError', `not a valid genesis: ${error.message}`) };
  }
  try {
    const claim = verifyBundle(bundleBytes, decodedGenesis, { chainId: pin.value, policy });
    return { ok: true, claim: claimJson(claim), error: null, verdict: verdict(claim), text: bundleText(claim) };
  } catch (error) {
    return { ok: false, claim: null, error: errorOf(error) };
  }
}

export async function verifyPackage(pkg, options = {}) {
  const data = asBytes(pkg, 'package');
  const chainId = hash32Option(options, 'chainId');
  const producer = hash32Option(options, 'producer');
  const problem = chainId.problem ?? producer.problem;
  if (problem) return { ok: false, claim: null, journal: null, error: failure('InputError', problem) };
  try {
    const result = verifyPackageBytes(data, { chainId: chainId.value, producer: producer.value });
    return {
      ok: true, claim: packageJson(result), journal: journalJson(result), error: null,
      verdict: verdict(result.claim), text: packageText(result),
    };
  } catch (error) {
    return { ok: false, claim: null, journal: null, error: errorOf(error) };
  }
}

export async function verifyJournal(file, options = {}) {
  const data = asBytes(file, 'journal');
  const producer = hash32Option(options, 'producer');
  if (producer.problem) return { ok: false, claim: null, journal: null, error: failure('InputError', producer.problem) };
  try {
    const result = verifyJournalFile(data, { producer: producer.value });
    return { ok: true, claim: journalFileJson(result), journal: journalFileEntries(result), error: null, text: journalFileText(result) };
  } catch (error) {
    return { ok: false, claim: null, journal: null, error: errorOf(error) };
  }
}
