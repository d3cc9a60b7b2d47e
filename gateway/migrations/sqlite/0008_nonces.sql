-- Nonces of signed partner requests, remembered past the timestamp window: a replayed request
-- is refused, also after a restart.
CREATE TABLE seen_nonces (
    partner    TEXT NOT NULL,
    nonce      TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (partner, nonce)
);
CREATE INDEX seen_nonces_expiry ON seen_nonces (expires_at);
