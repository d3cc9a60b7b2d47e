-- A claim reads its batch's tickets and events by the batch's lease token.
CREATE INDEX deliveries_lease ON deliveries (lease_token) WHERE lease_token IS NOT NULL;
