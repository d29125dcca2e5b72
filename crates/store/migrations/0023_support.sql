-- Customer support: cases (from the contact form or opened by us from a signal), their messages,
-- the signals that anticipate a need, and the canned replies agents start from.

CREATE TABLE support_tickets (
    id TEXT PRIMARY KEY,
    account_id TEXT,
    email TEXT NOT NULL,
    lang TEXT NOT NULL,
    subject TEXT NOT NULL,
    state TEXT NOT NULL,
    source TEXT NOT NULL,
    signal TEXT,
    -- The day (days since 1970) of a case we opened from a signal: one per person per day.
    proactive_day BIGINT,
    assignee TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    first_response_due BIGINT NOT NULL,
    resolution_due BIGINT NOT NULL,
    first_response_at BIGINT,
    closed_at BIGINT
);
CREATE INDEX support_tickets_account ON support_tickets (account_id, created_at);
CREATE INDEX support_tickets_state ON support_tickets (state, first_response_due);
CREATE INDEX support_tickets_closed ON support_tickets (closed_at);
CREATE UNIQUE INDEX support_tickets_proactive ON support_tickets (account_id, proactive_day);

CREATE TABLE support_messages (
    id TEXT PRIMARY KEY,
    ticket_id TEXT NOT NULL,
    account_id TEXT,
    author TEXT NOT NULL,
    staff_id TEXT,
    body TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX support_messages_ticket ON support_messages (ticket_id, at);
CREATE INDEX support_messages_account ON support_messages (account_id);

CREATE TABLE support_signals (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    at BIGINT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX support_signals_account ON support_signals (account_id, kind, at);
CREATE INDEX support_signals_at ON support_signals (at);

CREATE TABLE support_canned (
    id TEXT PRIMARY KEY,
    title_da TEXT NOT NULL,
    title_en TEXT NOT NULL,
    body_da TEXT NOT NULL,
    body_en TEXT NOT NULL
);
INSERT INTO support_canned (id, title_da, title_en, body_da, body_en) VALUES
    ('signin', 'Kan ikke logge ind', 'Cannot sign in',
     'Tak for din henvendelse. Vælg en ny adgangskode fra login-siden ("Glemt adgangskode"); linket virker i en time. Skriv igen, hvis det ikke hjælper.',
     'Thank you for writing. Choose a new password from the sign-in page ("Forgot password"); the link works for an hour. Write again if that does not help.'),
    ('payment', 'Betalingen gik ikke igennem', 'The payment did not go through',
     'Tak for din henvendelse. Din bank afviste betalingen. Opdater dit betalingskort under Betaling på din konto, så prøver vi igen automatisk.',
     'Thank you for writing. Your bank declined the payment. Update your card under Billing on your account, and we try again automatically.'),
    ('privacy', 'Spørgsmål om personoplysninger', 'A question about personal data',
     'Tak for din henvendelse. Du kan se, hente og slette dine oplysninger på siden Privatliv på din konto, og se hvem hos os der har set dem og hvorfor.',
     'Thank you for writing. You can see, download and erase your data on the Privacy page of your account, and see who at PassMe looked at it and why.'),
    ('welcome', 'Kom godt i gang', 'Getting started',
     'Vi så, at du oprettede en konto, men ikke er kommet i gang. Svar på denne besked, hvis noget driller, så hjælper vi.',
     'We saw that you created an account but have not got going. Reply to this message if something is in the way, and we will help.');
