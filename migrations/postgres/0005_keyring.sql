-- The keyring's state: which key seals new values ('current'), which still open old ones
-- ('active'), and which were retired after `haven key verify` showed nothing needs them. Key
-- material is never stored here, only key ids. No row: the key in storage.key_file is current.
CREATE TABLE keyring (
    key_id TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('current', 'active', 'retired')),
    changed_us BIGINT NOT NULL
);
