"""Producer side: a signed, hash-chained audit journal and its submission to a node.

Sign before you act: every action is an ML-DSA-65 signed ``intent`` entry, fsynced before
the action runs, and an ``outcome`` after it. The chain hash of the last entry (the head)
is the audit root submitted to a Pantheon chain; an audit package proves chosen entries
against an anchored head to an auditor offline. docs/journal-format.md is the
specification, docs/journal.md the guide.

One module per concern, importing only ``proof/`` (and the standard library):

- ``entry``: fields, canonical CBOR, signed message, entry digest, chain hash;
- ``records``: the append-only file framing (torn tail vs damage);
- ``verify``: the chain walker, every check with its reason code;
- ``writer``: the journal directory, appends, ``action()``, key rotation, repair;
- ``keyfile``: the producer's secret key file;
- ``anchors``: the sidecar of receipts and bundles, and what they prove;
- ``client``: the node's HTTP routes (stdlib ``urllib``), with retries;
- ``anchoring``: submit a head, upgrade receipts to bundles;
- ``package``: audit packages, built and verified;
- ``cli``: ``pantheon journal ...``.
"""
