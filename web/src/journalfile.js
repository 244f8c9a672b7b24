// The producer's journal file (docs/journal-format.md section 5): "PNTHJNL" 0x01, then records
// of length (u32 BE, 1..65,536), CRC-32 of length || payload (u32 BE), payload (one entry).
// A torn tail (an interrupted append) is reported and ignored; damage before the end is
// ChainError "record-damaged". The complete entries are then walked as in section 7.

import { decode } from './cbor.js';
import { VerifyError, chainError } from './errors.js';
import { ChainWalker, decodeEntry } from './journal.js';

const MAGIC = [0x50, 0x4e, 0x54, 0x48, 0x4a, 0x4e, 0x4c, 0x01];
const RECORD_HEADER_SIZE = 8;
const ENTRY_SIZE_MAX = 65536;
const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

/** CRC-32 (ISO-HDLC, as zlib.crc32). */
function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export const isJournalFile = (data) => MAGIC.every((b, i) => data[i] === b);

const u32 = (data, offset) => new DataView(data.buffer, data.byteOffset + offset, 4).getUint32(0);

/** null for a complete record at `offset`, else [what is wrong, whether it is a torn tail]. */
function recordProblem(data, offset) {
  const remaining = data.length - offset;
  if (remaining < RECORD_HEADER_SIZE) return [`${remaining} byte(s), shorter than a record header`, true];
  const length = u32(data, offset);
  if (length < 1 || length > ENTRY_SIZE_MAX) {
    return [`declared length ${length} outside 1..${ENTRY_SIZE_MAX}`, data.subarray(offset).every((b) => b === 0)];
  }
  const end = offset + RECORD_HEADER_SIZE + length;
  if (end > data.length) return [`declares ${length} payload bytes, only ${remaining - RECORD_HEADER_SIZE} present`, true];
  const framed = new Uint8Array(4 + length);
  framed.set(data.subarray(offset, offset + 4));
  framed.set(data.subarray(offset + RECORD_HEADER_SIZE, end), 4);
  return crc32(framed) === u32(data, offset + 4) ? null : ['checksum mismatch', end === data.length];
}

function scan(data) {
  const payloads = [];
  let offset = MAGIC.length;
  while (offset < data.length) {
    const problem = recordProblem(data, offset);
    if (problem) {
      const [why, torn] = problem;
      if (!torn) throw chainError(payloads.length, 'record-damaged', `record at byte offset ${offset}: ${why}`);
      return { payloads, torn: { offset, size: data.length - offset, why } };
    }
    const length = u32(data, offset);
    payloads.push(data.subarray(offset + RECORD_HEADER_SIZE, offset + RECORD_HEADER_SIZE + length));
    offset += RECORD_HEADER_SIZE + length;
  }
  return { payloads, torn: null };
}

/** Verify a journal file; throws JournalFileError (not a journal) or ChainError at the first bad entry. */
export function verifyJournalFile(data, { producer = null } = {}) {
  if (!isJournalFile(data)) {
    throw new VerifyError('JournalFileError', 'not a Pantheon journal file (expected the magic "PNTHJNL\\x01" at the start)');
  }
  const { payloads, torn } = scan(data);
  if (payloads.length === 0) {
    throw chainError(0, 'first-entry', 'the journal holds no complete entry (entry 0 introduces the producer key)');
  }
  const walker = new ChainWalker(producer);
  const entries = payloads.map((payload, position) => {
    let entry;
    try {
      entry = decodeEntry(decode(payload, { maxSize: ENTRY_SIZE_MAX, maxDepth: 3, maxItems: 1024 }));
    } catch (error) {
      if (error instanceof VerifyError) throw chainError(position, 'decode', error.message);
      throw error;
    }
    walker.addEntry(entry);
    return entry;
  });
  return { walker, entries, torn };
}
