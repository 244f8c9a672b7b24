"""The checkpoint as a C2SP signed note: grammar, key IDs, ML-DSA-65 signature lines.

Independent vectors: the public key and a real checkpoint note of Go's checksum
database (sum.golang.org, Ed25519, signature type 0x01), which fix the key-ID formula
and which bytes a signed-note signature covers.
"""

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from proof import note
from proof.errors import DecodeError, ProofError
from proof.mldsa import SigningKey

GO_VKEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
GO_NOTE = base64.b64decode(
    "Z28uc3VtIGRhdGFiYXNlIHRyZWUKNjU2NjQyNTgKV1ZWTlZEMnF4K2ZUcTMxemtqNlVBcXhUNVg2SHZHcGhHTStvOFRobmJzZz0KCuKAlCBzdW0uZ29s"
    "YW5nLm9yZyBBejNncmxpZ0ptZ1g3S0d5R1BLeWJ5a05UaDNWZ3NiTHZVdXZPd3JNNXpMVmx1bG1GcDJ3ZHZieE93NzQvZ2NOeFVSU2hYRXBiN1JYY3Mz"
    "K0JZZmxZTit3MGdRPQo="
).decode()
ROOT = bytes(range(32))


@pytest.fixture(scope="module")
def keys():
    return [SigningKey(bytes([i]) * 32) for i in range(3)]


def signed(keys, size=7, root=ROOT, signers=(0,)):
    name = note.origin(b"\x11" * 32)
    text = note.checkpoint_text(name, size, root)
    return name, note.signed_note(text, [note.signature_line(name, keys[i].public_key, text, keys[i].sign) for i in signers])


def test_the_key_id_formula_reproduces_go_sumdb_published_key_id():
    name, key_id_hex, encoded = GO_VKEY.split("+", 2)
    raw = base64.b64decode(encoded)
    assert note.key_id(name, raw[1:], signature_type=raw[:1]).hex() == key_id_hex


def test_a_real_go_checkpoint_note_splits_into_the_text_its_signature_covers():
    text, signatures = note.split_note(GO_NOTE)
    public_key = base64.b64decode(GO_VKEY.split("+", 2)[2])[1:]
    assert [(s.name, s.key_id.hex()) for s in signatures] == [("sum.golang.org", "033de0ae")]
    Ed25519PublicKey.from_public_bytes(public_key).verify(signatures[0].signature, text.encode())
    assert note.parse_checkpoint_text(text)[:2] == ("go.sum database tree", 65664258)


def test_checkpoint_text_is_origin_size_and_base64_root_lines():
    text = note.checkpoint_text("pantheon/ab", 1029, ROOT)
    assert text == f"pantheon/ab\n1029\n{base64.b64encode(ROOT).decode()}\n"


def test_the_origin_is_the_chain_id_under_pantheon():
    assert note.origin(b"\xab" * 32) == "pantheon/" + "ab" * 32


def test_a_signed_checkpoint_verifies_and_states_the_log(keys):
    name, text = signed(keys, size=42)
    checkpoint = note.verify_checkpoint(text, {"v0": (name, keys[0].public_key)})
    assert (checkpoint.size, checkpoint.root, checkpoint.signed_by) == (42, ROOT, ("v0",))


def test_the_signature_line_is_em_dash_name_and_base64_of_key_id_and_ml_dsa_signature(keys):
    name, text = signed(keys)
    line = text.rstrip("\n").split("\n")[-1]
    dash, line_name, payload = line.split(" ")
    raw = base64.b64decode(payload)
    assert (dash, line_name) == ("\u2014", name)
    assert raw[:4] == note.key_id(name, keys[0].public_key) and len(raw) == 4 + 3309


def test_the_key_id_depends_on_the_signature_type(keys):
    assert note.key_id("n", keys[0].public_key) != note.key_id("n", keys[0].public_key, signature_type=b"\x01")


def test_the_verifier_key_text_carries_name_key_id_and_typed_key(keys):
    name, key_id_hex, encoded = note.verifier_key("pantheon/x", keys[0].public_key).split("+", 2)
    assert (name, key_id_hex) == ("pantheon/x", note.key_id("pantheon/x", keys[0].public_key).hex())
    assert base64.b64decode(encoded) == note.SIGNATURE_TYPE + keys[0].public_key


def test_notes_from_several_validators_at_one_size_merge_into_one_multi_signed_note(keys):
    name, text = signed(keys, signers=(0, 1, 2))
    known = {f"v{i}": (name, keys[i].public_key) for i in range(3)}
    assert note.verify_checkpoint(text, known).signed_by == ("v0", "v1", "v2")


def test_signatures_of_unknown_keys_are_ignored(keys):
    name, text = signed(keys, signers=(1, 0))
    assert note.verify_checkpoint(text, {"v0": (name, keys[0].public_key)}).signed_by == ("v0",)


def test_a_note_without_a_known_signature_is_refused(keys):
    name, text = signed(keys, signers=(1,))
    with pytest.raises(ProofError, match="no signature"):
        note.verify_checkpoint(text, {"v0": (name, keys[0].public_key)})


def test_a_changed_size_fails_the_known_signature(keys):
    name, text = signed(keys, size=7)
    with pytest.raises(ProofError, match="does not verify"):
        note.verify_checkpoint(text.replace("\n7\n", "\n8\n", 1), {"v0": (name, keys[0].public_key)})


@pytest.mark.parametrize(
    "bad",
    [
        "o\n1\nAAAA\n\n\u2014 n AAAAAAAA\n",
        "o\n01\n" + base64.b64encode(ROOT).decode() + "\n\n\u2014 n AAAAAAAA\n",
        "o\n1\n" + base64.b64encode(ROOT).decode() + "\n\n- n AAAAAAAA\n",
        "o\n1\n" + base64.b64encode(ROOT).decode() + "\n\u2014 n AAAAAAAA\n",
        "o\n1\n" + base64.b64encode(ROOT).decode() + "\n\n\u2014 n AAAA\x01AAAA\n",
    ],
    ids=["short-root", "leading-zero-size", "hyphen", "no-blank-line", "control-character"],
)
def test_malformed_notes_are_refused(bad):
    with pytest.raises(DecodeError):
        note.verify_checkpoint(bad, {})


def test_a_note_text_is_never_32_bytes_so_it_cannot_be_a_vote_or_handshake_message():
    shortest = note.checkpoint_text(note.origin(bytes(32)), 0, bytes(32))
    assert len(shortest.encode()) == 9 + 64 + 1 + 1 + 1 + 44 + 1
