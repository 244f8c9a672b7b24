// The page: drop an audit package, a bundle and its genesis, or a journal file; read what was
// proved, or which check failed. Everything shown from a file is set as text, never parsed as HTML.

import { decode } from './cbor.js';
import { verify, verifyJournal, verifyPackage } from './api.js';
import { isJournalFile } from './journalfile.js';
import { entryTime } from './report.js';

const $ = (id) => document.getElementById(id);
const held = { bundle: null, genesis: null };

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** What a file is, by the keys of its top-level map: "package", "bundle", "genesis" or "unknown". */
function kindOf(data) {
  try {
    const value = decode(data, { maxSize: 64 * 1024 * 1024, maxItems: 1 << 22 });
    if (value instanceof Map && value.has('chain') && value.has('keys')) return 'package';
    if (value instanceof Map && value.has('validators')) return 'genesis';
    if (value instanceof Map && value.has('root') && value.has('header')) return 'bundle';
  } catch {
    return 'unknown';
  }
  return 'unknown';
}

function options() {
  const minimum = $('min-confirmations').value.trim();
  return {
    chainId: $('chain-id').value.trim() || null,
    producer: $('producer').value.trim() || null,
    requireNetwork: $('require-network').value || null,
    minConfirmations: minimum === '' ? null : Number(minimum),
  };
}

/** Headline, tone and badge of a verified result: test network and pending are never read as "anchored". */
function standing(result, mode) {
  if (mode === 'journal') {
    return { tone: 'pending', headline: 'VALID journal file', badge: 'NOT ANCHORED: a journal file proves its own signed chain only; an audit package proves it against the chain and Bitcoin' };
  }
  const bundle = mode === 'package' ? result.claim.bundle : result.claim;
  const headline = mode === 'package' ? 'VALID audit package' : result.verdict;
  if (bundle.state === 'pending') {
    return { tone: 'pending', headline, badge: 'PENDING: certified by the validators, not yet anchored in Bitcoin' };
  }
  if (bundle.bitcoin_security === 'none') {
    return { tone: 'test', headline, badge: `TEST NETWORK (${bundle.bitcoin.network}): the Bitcoin part proves nothing about time` };
  }
  return { tone: 'valid', headline, badge: `ANCHORED in Bitcoin ${bundle.bitcoin.network}, ${bundle.bitcoin.confirmations} confirmation(s) by headers` };
}

function showFiles(names) {
  $('files-read').textContent = names.length ? `Read: ${names.join(', ')}` : '';
}

function showResult(result, mode, names) {
  const box = $('result');
  box.replaceChildren();
  showFiles(names);
  if (result.ok) {
    const { tone, headline, badge } = standing(result, mode);
    box.dataset.state = 'valid';
    box.className = `result ${tone}`;
    box.append(element('h2', 'verdict', headline), element('p', 'badge', badge));
    box.append(element('h3', null, 'What was proved (as pantheon verify prints it)'), element('pre', 'words', result.text.join('\n')));
    if (result.journal) box.append(journalTable(result.journal, result.claim.open_intents));
  } else {
    box.dataset.state = 'invalid';
    box.className = 'result invalid';
    const { error } = result;
    box.append(element('h2', 'verdict', 'INVALID'));
    box.append(element('p', 'badge', `Failed check: ${failedCheck(error)}`));
    box.append(element('pre', 'words', error.message));
  }
}

/** Where verification stopped: the spec's step, the entry and the reason code, and the error class. */
function failedCheck(error) {
  const where = [];
  if (error.prefix) where.push(`step "${error.prefix.replace(/: $/, '')}"`);
  if (error.seq !== undefined) where.push(`entry ${error.seq}`);
  if (error.reason) where.push(`reason ${error.reason}`);
  return `${where.join(', ') || 'the file itself'} (${error.class})`;
}

function showWaiting(message) {
  const box = $('result');
  box.replaceChildren(element('p', null, message));
  box.dataset.state = 'waiting';
  box.className = 'result waiting';
}

function journalTable(journal, openIntents) {
  const wrap = element('div', 'journal');
  wrap.append(element('h3', null, `Journal: ${journal.length} entries, ${journal.filter((p) => p.withheld).length} withheld`));
  const table = element('table');
  const head = element('tr');
  for (const title of ['seq', 'time (UTC)', 'kind', 'action', 'details']) head.append(element('th', null, title));
  table.append(head);
  for (const position of journal) {
    const row = element('tr', position.withheld ? 'withheld' : 'disclosed');
    if (position.withheld) {
      row.append(element('td', null, String(position.seq)), element('td', 'tag', 'WITHHELD'));
      const cell = element('td', null, `shown only by its entry digest ${position.digest}`);
      cell.colSpan = 3;
      row.append(cell);
    } else {
      const entry = position.entry;
      const details = [];
      if (entry.ref !== undefined) details.push(`for intent ${entry.ref}`);
      if (Object.keys(entry.in).length) details.push(`in ${Object.entries(entry.in).map(([k, v]) => `${k}=${v.slice(0, 12)}…`).join(', ')}`);
      if (entry.out) details.push(`out ${Object.entries(entry.out).map(([k, v]) => `${k}=${v.slice(0, 12)}…`).join(', ')}`);
      if (Object.keys(entry.meta).length) details.push(`meta ${JSON.stringify(entry.meta)}`);
      if (entry.introduces_key) details.push(`introduces key ${entry.introduces_key.slice(0, 16)}…`);
      if (openIntents.includes(position.seq)) details.push('started, no recorded outcome among the disclosed entries');
      row.append(...[String(entry.seq), entryTime(entry.time_ms), entry.kind, entry.action, details.join('; ')]
        .map((text) => element('td', null, text)));
    }
    table.append(row);
  }
  wrap.append(table);
  return wrap;
}

async function readFiles(fileList) {
  const files = [...fileList];
  const read = await Promise.all(files.map(async (file) => ({ name: file.name, data: new Uint8Array(await file.arrayBuffer()) })));
  for (const file of read) file.kind = kindOf(file.data);
  const journal = read.find((f) => isJournalFile(f.data));
  if (journal) {
    showResult(await verifyJournal(journal.data, options()), 'journal', [journal.name]);
    return;
  }
  const pkg = read.find((f) => f.kind === 'package') ?? (read.length === 1 && read[0].kind === 'unknown' ? read[0] : null);
  if (pkg) {
    showResult(await verifyPackage(pkg.data, options()), 'package', [pkg.name]);
    return;
  }
  for (const file of read) {
    const kind = file.kind !== 'unknown' ? file.kind : /genesis/i.test(file.name) ? 'genesis' : 'bundle';
    held[kind] = file;
  }
  if (!held.bundle || !held.genesis) {
    showWaiting(held.bundle ? `Bundle ${held.bundle.name} read: now drop the chain's genesis file.` : `Genesis ${held.genesis.name} read: now drop a proof bundle.`);
    return;
  }
  showResult(await verify(held.bundle.data, held.genesis.data, options()), 'bundle', [held.bundle.name, held.genesis.name]);
}

/** The whole page takes drops (a file dropped beside the zone must not replace the page with itself). */
export function startPage() {
  const zone = $('drop');
  document.addEventListener('dragover', (event) => {
    event.preventDefault();
    zone.classList.add('over');
  });
  document.addEventListener('dragleave', (event) => {
    if (!event.relatedTarget) zone.classList.remove('over');
  });
  document.addEventListener('drop', (event) => {
    event.preventDefault();
    zone.classList.remove('over');
    readFiles(event.dataTransfer.files);
  });
  $('files').addEventListener('change', (event) => {
    const chosen = [...event.target.files];
    event.target.value = '';
    readFiles(chosen);
  });
}
