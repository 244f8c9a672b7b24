"""A federated-learning job whose every step is journaled, anchored and handed to an auditor.

Five clients train a small logistic-regression model with a coordinator for three rounds
(FedAvg, each update weighted by the client's reported sample count). Every party keeps
a Pantheon journal (journal/) and writes to it *before* it acts:

- a client journals the digest of its update, then sends it (``send-update``);
- the coordinator journals the aggregation code's hash, the clients it includes with
  their update digests and weights, and the digest of the model they produce, then
  applies that model (``aggregate``); after round 3 it journals the model it ships (``ship``).

client-3 is poisoned: in round 3 it sends a sign-flipped, amplified update and claims ten
times the samples it holds, so FedAvg hands it most of the weight and the shipped model
is worse. The auditor's question is the one this example answers: which contributions,
with which weights, made the model version that shipped?

Every journal head is submitted to a Pantheon node. Once Bitcoin anchors them, the
coordinator's round-3 entries are exported as an audit package (rounds 1 and 2 withheld,
shown only as digests), with client-3's own round-3 entry as a second package; both are
verified offline, and the contributions are read back from the verified package alone.

Run it against a devnet (terminal 1: ``make devnet``; terminal 2)::

    .venv/bin/python examples/federated_learning.py

The node URL, submit token and genesis are read from ``devnet-data/devnet.json`` unless given.
"""

from __future__ import annotations

import argparse
import datetime
import inspect
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from journal.anchoring import submit_head, upgrade
from journal.anchors import Sidecar, check_sidecar
from journal.cli import describe_package
from journal.client import NodeClient
from journal.entry import Entry, Kind, digest, key_fingerprint
from journal.package import PackageClaim, build_package, verify_package
from journal.writer import Action, Journal
from proof.chain import Genesis
from proof.errors import PantheonError

CLIENT_COUNT = 5
ROUNDS = 3
FEATURES = 8
CLIENT_SAMPLES_MIN, CLIENT_SAMPLES_MAX = 150, 300
TEST_SAMPLES = 2000
LOCAL_STEPS = 25
LEARNING_RATE = 0.5
POISONED_CLIENT = "client-3"
POISON_ROUND = ROUNDS
POISON_SCALE = -4.0
POISON_SAMPLES_FACTOR = 10
COORDINATOR = "coordinator"
DEFAULT_DEVNET = Path("devnet-data")
DEFAULT_RUNS = Path("fl-runs")
ANCHOR_DEADLINE_S_DEFAULT = 180.0
POLL_INTERVAL_S = 1.0
PROGRESS_EVERY_S = 5.0
HEALTH_TIMEOUT_S = 3.0
BROWSER_VERIFIER = Path(__file__).resolve().parent.parent / "web" / "verify.html"


class ExampleError(Exception):
    """Something the person running the example has to fix (no devnet, a used output directory, ...)."""


# ---------------------------------------------------------------------------- the learning job


@dataclass(frozen=True)
class Dataset:
    features: np.ndarray
    """(samples, FEATURES + 1); the last column is 1, the bias input."""
    labels: np.ndarray


def make_dataset(rng: np.random.Generator, true_weights: np.ndarray, samples: int) -> Dataset:
    x = np.hstack([rng.normal(size=(samples, FEATURES)), np.ones((samples, 1))])
    y = (x @ true_weights + rng.normal(scale=0.5, size=samples) > 0).astype(np.float64)
    return Dataset(x, y)


def predict(model: np.ndarray, features: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(features @ model)))


def accuracy(model: np.ndarray, data: Dataset) -> float:
    return float(np.mean((predict(model, data.features) > 0.5) == (data.labels == 1.0)))


def train_locally(model: np.ndarray, data: Dataset) -> np.ndarray:
    """A few gradient steps on the client's own data; the update is what changed (new - old)."""
    local = model.copy()
    for _ in range(LOCAL_STEPS):
        gradient = data.features.T @ (predict(local, data.features) - data.labels) / len(data.labels)
        local -= LEARNING_RATE * gradient
    return local - model


def encode(vector: np.ndarray) -> bytes:
    """The bytes that travel and get hashed: little-endian float64, so every party computes the same digest."""
    return np.asarray(vector, dtype="<f8").tobytes()


def decode(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f8").copy()


def fedavg(model: np.ndarray, updates: list[np.ndarray], weights: list[int]) -> np.ndarray:
    """FedAvg: the model plus the updates averaged with the given integer weights."""
    total = sum(weights)
    return model + sum(update * (weight / total) for update, weight in zip(updates, weights, strict=True))


AGGREGATION_CODE = inspect.getsource(fedavg).encode()
"""What the coordinator's ``code`` digest names: an auditor re-hashes the code they are shown."""


@dataclass(frozen=True)
class Contribution:
    """One client's update as it reaches the coordinator."""

    client: str
    blob: bytes
    samples: int


@dataclass
class Client:
    name: str
    data: Dataset
    journal: Journal
    sent: dict[int, Action] = field(default_factory=dict)
    """The journaled ``send-update`` action of each round."""

    def contribute(self, round_no: int, model: np.ndarray) -> Contribution:
        """Train, journal the update's digest, and only then send it."""
        update, samples = train_locally(model, self.data), len(self.data.labels)
        if self.name == POISONED_CLIENT and round_no == POISON_ROUND:
            update, samples = update * POISON_SCALE, samples * POISON_SAMPLES_FACTOR
        blob = encode(update)
        inputs = {"update": digest(blob), "base-model": digest(encode(model))}
        with self.journal.action("send-update", inputs, meta={"round": round_no, "samples": samples}) as act:
            self.sent[round_no] = act
            return Contribution(self.name, blob, samples)  # the send: the coordinator receives this


@dataclass
class Coordinator:
    journal: Journal
    model: np.ndarray
    evidence: Path
    """Where the coordinator keeps what it received and built: the data the digests stand for."""
    release: Path

    def aggregate(self, round_no: int, contributions: list[Contribution]) -> Action:
        """Journal code, contributions, weights and the resulting model's digest; then apply that model."""
        candidate = fedavg(self.model, [decode(c.blob) for c in contributions], [c.samples for c in contributions])
        inputs = {
            "code": digest(AGGREGATION_CODE),
            "base-model": digest(encode(self.model)),
            **{f"update.{c.client}": digest(c.blob) for c in contributions},
            "model": digest(encode(candidate)),
        }
        meta = {
            "round": round_no,
            "model-version": round_no,
            "rule": "fedavg; weight = samples reported by the client",
            "clients": ",".join(c.client for c in contributions),
            **{f"weight.{c.client}": c.samples for c in contributions},
        }
        self._keep(round_no, contributions)
        with self.journal.action("aggregate", inputs, meta=meta) as act:
            self.model = candidate
            (self.evidence / f"model-v{round_no}.bin").write_bytes(encode(candidate))
            act.outcome({"model": digest(encode(candidate))})
        return act

    def ship(self, version: int, accuracy_bp: int) -> Action:
        """Journal the model about to be released, then release it (a file in ``release/``)."""
        blob = (self.evidence / f"model-v{version}.bin").read_bytes()
        with self.journal.action("ship", {"model": digest(blob)},
                                 meta={"model-version": version, "accuracy-bp": accuracy_bp}) as act:
            self.release.mkdir()
            (self.release / f"model-v{version}.bin").write_bytes(blob)
        return act

    def _keep(self, round_no: int, contributions: list[Contribution]) -> None:
        directory = self.evidence / f"round-{round_no}"
        directory.mkdir(parents=True)
        for c in contributions:
            (directory / f"{c.client}.update").write_bytes(c.blob)


@dataclass
class Job:
    clients: list[Client]
    coordinator: Coordinator
    test_set: Dataset

    @property
    def journals(self) -> dict[str, Journal]:
        return {COORDINATOR: self.coordinator.journal, **{c.name: c.journal for c in self.clients}}


def new_job(out: Path, seed: int, stack: ExitStack) -> Job:
    """Five clients with data of their own, a coordinator, and a fresh journal for each."""
    rng = np.random.default_rng(seed)
    true_weights = rng.normal(size=FEATURES + 1)
    clients = []
    for i in range(CLIENT_COUNT):
        name = f"client-{i}"
        data = make_dataset(rng, true_weights, int(rng.integers(CLIENT_SAMPLES_MIN, CLIENT_SAMPLES_MAX)))
        journal = stack.enter_context(Journal.create(out / "journals" / name, meta={"system": "fl-client",
                                                                                    "client": name}))
        clients.append(Client(name, data, journal))
    journal = stack.enter_context(Journal.create(out / "journals" / COORDINATOR, meta={"system": "fl-coordinator"}))
    coordinator = Coordinator(journal, np.zeros(FEATURES + 1), out / "evidence", out / "release")
    (out / "evidence").mkdir()
    (out / "evidence" / "model-v0.bin").write_bytes(encode(coordinator.model))
    return Job(clients, coordinator, make_dataset(rng, true_weights, TEST_SAMPLES))


def seqs(act: Action) -> list[int]:
    """The entries of one action: its intent and its outcome."""
    assert act.outcome_entry is not None, "an action is exported once it has ended"
    return [act.intent.seq, act.outcome_entry.seq]


@dataclass(frozen=True)
class Trained:
    """The coordinator's entries of the last round, which the audit package discloses."""

    aggregate: Action
    ship: Action

    @property
    def disclosed(self) -> list[int]:
        return seqs(self.aggregate) + seqs(self.ship)


def train(job: Job) -> Trained:
    print(f"Training: {CLIENT_COUNT} clients, {ROUNDS} rounds of FedAvg ({POISONED_CLIENT} poisons round "
          f"{POISON_ROUND})")
    for round_no in range(1, ROUNDS + 1):
        contributions = [client.contribute(round_no, job.coordinator.model) for client in job.clients]
        act = job.coordinator.aggregate(round_no, contributions)
        print(f"  round {round_no}: model v{round_no} {digest(encode(job.coordinator.model)).hex()[:16]}…, "
              f"test accuracy {accuracy(job.coordinator.model, job.test_set):.1%}")
    accuracy_bp = round(accuracy(job.coordinator.model, job.test_set) * 10_000)
    shipped = job.coordinator.ship(ROUNDS, accuracy_bp)
    print(f"  shipped model v{ROUNDS} (coordinator entry {shipped.intent.seq})")
    return Trained(act, shipped)


# ---------------------------------------------------------------------------- the node


@dataclass(frozen=True)
class Target:
    node: str
    token: str
    genesis: Path


def resolve_target(args: argparse.Namespace) -> Target:
    """--node/--token/--genesis, each defaulting to the devnet's devnet.json (and $PANTHEON_TOKEN for the token)."""
    token = args.token or os.environ.get("PANTHEON_TOKEN")
    if args.node and token and args.genesis:
        return Target(args.node, token, Path(args.genesis))
    state = read_devnet(args.devnet)
    return Target(args.node or state["nodes"][0]["api_url"], token or state["token"],
                  Path(args.genesis) if args.genesis else Path(state["directory"]) / "genesis.cbor")


def read_devnet(directory: Path) -> dict:
    path = directory / "devnet.json"
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        raise ExampleError(f"no devnet found ({path} does not exist): start one with `make devnet` in another "
                           "terminal, or pass --node URL --token T --genesis FILE (or --devnet DIR)") from None
    except (OSError, ValueError) as exc:
        raise ExampleError(f"cannot read {path}: {exc}") from None
    if not isinstance(state, dict) or not state.get("nodes") or not state.get("token"):
        raise ExampleError(f"{path} names no node and token; is it a devnet directory?")
    return state


def check_node(url: str) -> None:
    """Fail in a second with advice, rather than after the client's retries, when no node listens."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/healthz", timeout=HEALTH_TIMEOUT_S):
            return
    except urllib.error.HTTPError as exc:
        raise ExampleError(f"the node at {url} is not healthy (HTTP {exc.code} on /healthz); "
                           "see `pantheon devnet status`") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
    raise ExampleError(f"no Pantheon node answers at {url} ({reason}): is the devnet running? "
                       "Start it with `make devnet` in another terminal (`pantheon devnet status` shows it)")


def submit_all(journals: Mapping[str, Journal], client: NodeClient) -> None:
    print(f"Submitting the {len(journals)} journal heads to {client.url}")
    for name, journal in journals.items():
        receipt = submit_head(journal.walker, Sidecar(journal.directory), client)
        print(f"  {name:<12} head {receipt.head.hex()[:16]}… (after entry {receipt.seq}): {receipt.state}")


def wait_for_proofs(journals: Mapping[str, Journal], client: NodeClient, genesis: Genesis, *,
                    anchored: bool, deadline_s: float) -> None:
    """Upgrade every journal until each head is certified (and, if asked, anchored in Bitcoin), showing progress."""
    wanted = "anchored in Bitcoin" if anchored else "certified"
    print(f"Waiting until every head is {wanted} (deadline {deadline_s:g} s)")
    states = dict.fromkeys(journals, "submitted")
    start = time.monotonic()
    shown = (-1.0, "")
    while True:
        _poll(journals, states, client, genesis)
        elapsed_s = time.monotonic() - start
        line = _progress(states)
        if line != shown[1] or elapsed_s - shown[0] >= PROGRESS_EVERY_S:
            print(f"  {elapsed_s:5.1f} s  {line}")
            shown = (elapsed_s, line)
        if all(state == "anchored" or (state == "certified" and not anchored) for state in states.values()):
            return
        if elapsed_s > deadline_s:
            raise ExampleError(f"not every head was {wanted} within {deadline_s:g} s ({line}); check the devnet "
                               "with `pantheon devnet status`, give more time with --anchor-deadline-s, or skip "
                               "Bitcoin with --no-wait-anchor")
        time.sleep(POLL_INTERVAL_S)


def _poll(journals: Mapping[str, Journal], states: dict[str, str], client: NodeClient, genesis: Genesis) -> None:
    """One upgrade of every journal not yet anchored: fetch, check and store its bundle."""
    for name, journal in journals.items():
        if states[name] != "anchored":
            for result in upgrade(journal.walker, Sidecar(journal.directory), client, genesis, journal):
                states[name] = result.state


def _progress(states: Mapping[str, str]) -> str:
    certified = sum(state in ("certified", "anchored") for state in states.values())
    anchored = sum(state == "anchored" for state in states.values())
    return f"certified {certified}/{len(states)}, anchored in Bitcoin {anchored}/{len(states)}"


# ---------------------------------------------------------------------------- the audit


def export_package(journal: Journal, disclose: list[int], path: Path) -> None:
    """The audit package of ``disclose``, proved by the best bundle covering them (anchored if there is one)."""
    sidecar = Sidecar(journal.directory)
    covering = check_sidecar(sidecar, journal.walker).covering(max(disclose))
    genesis = sidecar.genesis_bytes()
    if covering is None or genesis is None:
        raise ExampleError(f"no verified bundle covers entry {max(disclose)} of {journal.directory}")
    package = build_package(journal.entries, disclose, head_seq=covering.seq, genesis=genesis, bundle=covering.data)
    path.write_bytes(package.encode())


def producer_of(journal: Journal) -> bytes:
    """The fingerprint an auditor pins: learned from the producer, not from the package."""
    return key_fingerprint(journal.report().keys[0])


def verify_file(path: Path, chain_id: bytes, producer: bytes) -> PackageClaim:
    """What the auditor runs: the package file alone, the chain id and the producer's fingerprint."""
    claim = verify_package(path.read_bytes(), chain_id=chain_id, producer=producer)
    for line in describe_package(claim):
        print("  " + line)
    return claim


def disclosed_intent(claim: PackageClaim, action: str) -> Entry:
    (entry,) = [e for e in claim.entries if e.kind == Kind.INTENT and e.action == action]
    return entry


def contributions_table(aggregate: Entry) -> list[tuple[str, bytes, int]]:
    """(client, update digest, weight) of every contribution, read from the signed aggregate intent."""
    clients = str(aggregate.meta["clients"]).split(",")
    return [(c, aggregate.inputs[f"update.{c}"], int(aggregate.meta[f"weight.{c}"])) for c in clients]


def report_contributions(package: PackageClaim, client_package: PackageClaim) -> None:
    """What the verified packages say, and nothing else: who contributed what, with which weight."""
    aggregate, ship = disclosed_intent(package, "aggregate"), disclosed_intent(package, "ship")
    table = contributions_table(aggregate)
    total = sum(weight for _, _, weight in table)
    print(f"The auditor reads, from the verified package alone: model v{aggregate.meta['model-version']} "
          f"{aggregate.inputs['model'].hex()[:16]}… (coordinator entry {aggregate.seq}) was made by code "
          f"{aggregate.inputs['code'].hex()[:16]}… from")
    print(f"    {'client':<10} {'update digest':<66} {'weight':>7} {'share':>7}")
    for client, update, weight in table:
        print(f"    {client:<10} {update.hex():<66} {weight:>7} {weight / total:>7.1%}")
    same = ship.inputs["model"] == aggregate.inputs["model"]
    print(f"  and entry {ship.seq} ships model {ship.inputs['model'].hex()[:16]}…: "
          f"{'the model of that aggregation' if same else 'NOT the model of that aggregation'}")
    (update, weight), = [(u, w) for c, u, w in table if c == POISONED_CLIENT]
    report_client_side(client_package, update, weight)


def report_client_side(client_package: PackageClaim, update: bytes, weight: int) -> None:
    """The client's own signed word against the coordinator's: the same update, the same claimed samples."""
    sent = disclosed_intent(client_package, "send-update")
    agrees = (sent.inputs["update"], sent.meta["samples"]) == (update, weight)
    print(f"  {POISONED_CLIENT}'s own journal (entry {sent.seq}, signed before sending) names update "
          f"{sent.inputs['update'].hex()[:16]}… and {sent.meta['samples']} samples: "
          f"{'the contribution the coordinator applied' if agrees else 'NOT what the coordinator applied'}")


def check_evidence(package: PackageClaim, evidence: Path) -> None:
    """With the updates and models the coordinator kept: re-hash, re-run the aggregation, find the outlier."""
    aggregate = disclosed_intent(package, "aggregate")
    table = contributions_table(aggregate)
    version = int(aggregate.meta["model-version"])
    blobs = [(evidence / f"round-{aggregate.meta['round']}" / f"{c}.update").read_bytes() for c, _, _ in table]
    base = (evidence / f"model-v{version - 1}.bin").read_bytes()
    matches = sum(digest(blob) == update for blob, (_, update, _) in zip(blobs, table, strict=True))
    print(f"  {matches} of the {len(blobs)} kept updates hash to the digests in the package; the base model "
          f"v{version - 1} {_verdict(digest(base) == aggregate.inputs['base-model'])}; the aggregation code "
          f"{_verdict(digest(AGGREGATION_CODE) == aggregate.inputs['code'])}")
    updates = [decode(blob) for blob in blobs]
    rerun = fedavg(decode(base), updates, [weight for _, _, weight in table])
    print(f"  re-running that code on them gives model {digest(encode(rerun)).hex()[:16]}…, which "
          f"{_verdict(digest(encode(rerun)) == aggregate.inputs['model'])}")
    report_outliers(table, updates)


def report_outliers(table: list[tuple[str, bytes, int]], updates: list[np.ndarray]) -> None:
    """Compare each update with the coordinate-wise median, which one poisoned update cannot drag along."""
    median = np.median(updates, axis=0)
    median_norm = float(np.median([np.linalg.norm(u) for u in updates]))
    total = sum(weight for _, _, weight in table)
    for (client, _, weight), update in zip(table, updates, strict=True):
        cosine = float(update @ median / (np.linalg.norm(update) * np.linalg.norm(median)))
        size = float(np.linalg.norm(update)) / median_norm
        flag = "  <- points against the others: the poisoned contribution" if cosine < 0 else ""
        print(f"    {client:<10} {size:4.1f}x the median size, cosine to the median update {cosine:+.2f}, "
              f"{weight / total:5.1%} of the weight{flag}")


def _verdict(matches: bool) -> str:
    return "matches the journal" if matches else "DOES NOT match the journal"


def print_next_steps(package_path: Path, chain_id: bytes, producer: bytes) -> None:
    print("Verify it yourself:")
    print(f"  .venv/bin/pantheon journal verify {package_path} --chain {chain_id.hex()} --producer {producer.hex()}")
    print(f"  in a browser, offline: open {BROWSER_VERIFIER} (file://{BROWSER_VERIFIER}) and drop "
          f"{package_path.resolve()} onto the page")


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="A 5-client, 3-round federated-learning job with a poisoned client. Every update and every\n"
                    "aggregation is journaled before it happens; the journal heads are anchored through a\n"
                    "running Pantheon devnet, and the round-3 audit package is exported and verified.\n\n"
                    "Start the devnet first, in another terminal:  make devnet",
    )
    parser.add_argument("--devnet", type=Path, default=DEFAULT_DEVNET,
                        help=f"devnet directory whose devnet.json gives the defaults (default: {DEFAULT_DEVNET})")
    parser.add_argument("--node", help="validator API URL (default: node 0 of the devnet)")
    parser.add_argument("--token", help="submit token (default: $PANTHEON_TOKEN, else the devnet's)")
    parser.add_argument("--genesis", help="the chain's genesis.cbor (default: the devnet's)")
    parser.add_argument("--out", type=Path, help=f"new directory for journals, evidence and packages "
                                                 f"(default: {DEFAULT_RUNS}/<UTC time>)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the data and the clients (default: 7)")
    parser.add_argument("--anchor-deadline-s", type=float, default=ANCHOR_DEADLINE_S_DEFAULT,
                        help=f"give up waiting for the proofs after this long (default: {ANCHOR_DEADLINE_S_DEFAULT:g})")
    parser.add_argument("--no-wait-anchor", action="store_true",
                        help="export once the heads are certified, without waiting for Bitcoin")
    return parser.parse_args(argv)


def new_out_dir(path: Path | None) -> Path:
    out = path or DEFAULT_RUNS / datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    if out.exists() and any(out.iterdir()):
        raise ExampleError(f"{out} is not empty: choose a new --out directory")
    out.mkdir(parents=True, exist_ok=True)
    return out


@dataclass(frozen=True)
class Exported:
    """What the producers hand the auditor: two package files, and the pins learned from them out of band."""

    package: Path
    client_package: Path
    chain_id: bytes
    producers: dict[str, bytes]


def adopt_genesis(job: Job, path: Path) -> Genesis:
    """Give every journal the chain's genesis, which their bundles are checked against."""
    (genesis,) = {Sidecar(journal.directory).adopt_genesis(path) for journal in job.journals.values()}
    return genesis


def produce(args: argparse.Namespace, target: Target, out: Path) -> Exported:
    """The producers' side: train with journals, anchor the heads, export the round-3 packages."""
    client = NodeClient(target.node, token=target.token)
    with ExitStack() as stack:
        job = new_job(out, args.seed, stack)
        genesis = adopt_genesis(job, target.genesis)
        trained = train(job)
        submit_all(job.journals, client)
        wait_for_proofs(job.journals, client, genesis, anchored=not args.no_wait_anchor,
                        deadline_s=args.anchor_deadline_s)
        exported = Exported(out / f"round-{ROUNDS}.audit.cbor", out / f"{POISONED_CLIENT}-round-{ROUNDS}.audit.cbor",
                            genesis.hash, {name: producer_of(journal) for name, journal in job.journals.items()})
        export_package(job.coordinator.journal, trained.disclosed, exported.package)
        poisoned = next(c for c in job.clients if c.name == POISONED_CLIENT)
        export_package(poisoned.journal, seqs(poisoned.sent[POISON_ROUND]), exported.client_package)
    return exported


def audit(exported: Exported, evidence: Path) -> None:
    """The auditor's side: verify both files offline, read the contributions, check the kept data."""
    print(f"Verifying {exported.package} offline (chain {exported.chain_id.hex()[:16]}…, producer "
          f"{exported.producers[COORDINATOR].hex()[:16]}…)")
    package = verify_file(exported.package, exported.chain_id, exported.producers[COORDINATOR])
    print(f"Verifying {exported.client_package} offline (producer {exported.producers[POISONED_CLIENT].hex()[:16]}…)")
    client_package = verify_file(exported.client_package, exported.chain_id, exported.producers[POISONED_CLIENT])
    report_contributions(package, client_package)
    print(f"The coordinator hands over what the digests stand for ({evidence}); the auditor checks it:")
    check_evidence(package, evidence)
    print_next_steps(exported.package, exported.chain_id, exported.producers[COORDINATOR])


def run(args: argparse.Namespace) -> None:
    target = resolve_target(args)
    check_node(target.node)
    out = new_out_dir(args.out)
    audit(produce(args, target, out), out / "evidence")


def main(argv: list[str] | None = None) -> int:
    sys.stdout.reconfigure(line_buffering=True)
    args = parse_args(argv)
    try:
        run(args)
    except (ExampleError, PantheonError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
