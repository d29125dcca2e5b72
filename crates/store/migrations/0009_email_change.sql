-- A pending e-mail change carries the new address until its confirmation link is used.
ALTER TABLE account_tokens ADD COLUMN new_email TEXT;
