-- Interface preferences on the account (theme, language, text size). NULL means the default.
ALTER TABLE accounts ADD COLUMN pref_theme TEXT;
ALTER TABLE accounts ADD COLUMN pref_lang TEXT;
ALTER TABLE accounts ADD COLUMN pref_text TEXT;
