"""Bundle verification benchmark: time per verify_bundle, pending and anchored, 4 and 7 validators.

Run: ``.venv/bin/python -m bench.verify_bench [--rounds N]``.
Verifies the shipped vectors (tests/vectors/bundles/valid) N times each and prints the
median time per bundle, its size, and the signatures it checks. Same-run reference:
one ML-DSA-65 verification of a real signature from the same certificate, so the
ratio column says how many signature checks a bundle costs on whatever machine this
runs (a bundle checks 2f+1 or more signatures, plus hashing and CBOR decoding).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from proof.bundle import Bundle, verify_bundle
from proof.chain import Genesis, VoteKind, vote_message
from proof.mldsa import verify as mldsa_verify

VECTORS = Path(__file__).resolve().parent.parent / "tests" / "vectors" / "bundles"
CASES = [
    ("pending", 4, "pending-v4-size1029"),
    ("anchored", 4, "anchored-v4-size1029"),
    ("pending", 7, "pending-v7-size1029"),
    ("anchored", 7, "anchored-v7-size1029"),
]


def median_s(run: object, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="verifications per bundle (default 200)")
    args = parser.parse_args(argv)
    genesis = {n: Genesis.decode((VECTORS / f"genesis-v{n}.cbor").read_bytes()) for n in (4, 7)}
    sample = Bundle.decode((VECTORS / "valid" / "anchored-v4-size1029.cbor").read_bytes())
    cert = sample.finality.certificate
    message = vote_message(genesis[4].hash, VoteKind.FINALIZE, cert.view, cert.block_hash)
    index, signature = cert.signatures[0]
    key = genesis[4].validators[index]
    assert mldsa_verify(key, message, signature)
    mldsa_s = median_s(lambda: mldsa_verify(key, message, signature), args.rounds * 3)
    print(f"# verify_bundle, median of {args.rounds} rounds; reference: one ML-DSA-65 verify = {mldsa_s * 1e3:.3f} ms")
    print(f"# {'bundle':<10}{'validators':>11}{'signatures':>11}{'bytes':>8}{'ms/verify':>11}{'x ML-DSA':>10}")
    figures = [("mldsa_verify_ms", round(mldsa_s * 1e3, 3))]
    for state, n, name in CASES:
        data = (VECTORS / "valid" / f"{name}.cbor").read_bytes()
        signatures = len(Bundle.decode(data).finality.certificate.signatures)
        seconds = median_s(lambda: verify_bundle(data, genesis=genesis[n]), args.rounds)
        print(f"# {state:<10}{n:>11}{signatures:>11}{len(data):>8}{seconds * 1e3:>11.3f}{seconds / mldsa_s:>10.1f}")
        figures += [(f"verify_{state}_n{n}_ms", round(seconds * 1e3, 3)),
                    (f"verify_{state}_n{n}_x_mldsa", round(seconds / mldsa_s, 1))]
    for name, value in figures:
        print(f"{name}={value}")


if __name__ == "__main__":
    main()
