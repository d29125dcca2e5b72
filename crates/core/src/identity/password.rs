//! Passwords: what we accept, and how we store it.
//!
//! Accepted: 8 to 1024 characters, any characters, no composition rules (OWASP ASVS 6.2), never
//! truncated, and not weak or common by the zxcvbn estimator and its own dictionaries. Stored:
//! Argon2id with the OWASP parameters (19 MiB, 2 passes, 1 lane) in PHC format. Hashing runs on the
//! blocking pool so that it never stalls the async workers.

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};

use crate::CoreError;

pub const MIN_CHARS: usize = 8;
pub const MAX_CHARS: usize = 1024;
/// The strength estimate reads at most this many characters: zxcvbn's cost grows quickly with
/// length, and a password whose first 256 characters are strong is strong. The hash always
/// covers the whole password.
const ESTIMATE_CHARS: usize = 256;

/// OWASP Password Storage Cheat Sheet, Argon2id: m = 19 MiB, t = 2, p = 1.
pub const ARGON2_M_KIB: u32 = 19 * 1024;
pub const ARGON2_T: u32 = 2;
pub const ARGON2_P: u32 = 1;

fn argon2() -> Result<Argon2<'static>, CoreError> {
    let params = Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, None).map_err(|e| internal(&e))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn internal(e: &dyn std::fmt::Display) -> CoreError {
    CoreError::broken("password hashing failed", e)
}

/// Why a password is refused. The message tells the user what to do, never what rule to game.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordProblem {
    TooShort,
    TooLong,
    /// Too easy to guess; the hint code says why, when the estimator knows (`hint.*` in the
    /// message catalogue).
    Weak {
        hint: Option<&'static str>,
    },
}

impl PasswordProblem {
    pub fn code(&self) -> &'static str {
        match self {
            PasswordProblem::TooShort => "password_too_short",
            PasswordProblem::TooLong => "password_too_long",
            PasswordProblem::Weak { .. } => "password_weak",
        }
    }
}

impl From<PasswordProblem> for CoreError {
    fn from(problem: PasswordProblem) -> CoreError {
        let hint = match problem {
            PasswordProblem::Weak { hint } => hint,
            _ => None,
        };
        CoreError::Input { code: problem.code(), hint }
    }
}

/// The catalogue's hint for an estimator warning.
fn hint_of(warning: zxcvbn::feedback::Warning) -> &'static str {
    use zxcvbn::feedback::Warning as W;
    match warning {
        W::StraightRowsOfKeysAreEasyToGuess | W::ShortKeyboardPatternsAreEasyToGuess => "password_keyboard",
        W::RepeatsLikeAaaAreEasyToGuess | W::RepeatsLikeAbcAbcAreOnlySlightlyHarderToGuess => "password_repeats",
        W::ThisIsATop10Password | W::ThisIsATop100Password | W::ThisIsACommonPassword | W::ThisIsSimilarToACommonlyUsedPassword => {
            "password_common"
        }
        W::SequencesLikeAbcAreEasyToGuess => "password_sequence",
        W::RecentYearsAreEasyToGuess | W::DatesAreOftenEasyToGuess => "password_dates",
        W::AWordByItselfIsEasyToGuess => "password_word",
        W::NamesAndSurnamesByThemselvesAreEasyToGuess | W::CommonNamesAndSurnamesAreEasyToGuess => "password_names",
    }
}

/// Checks a new password. `context` holds words an attacker would try first (the e-mail, the
/// service's name), which the estimator then counts as guessable.
pub fn check_new(password: &str, context: &[&str]) -> Result<(), PasswordProblem> {
    // Count characters, not bytes: a Danish or emoji password is not penalised, and the bound
    // is checked before any expensive work, so a 1 MB password costs nothing.
    if password.len() > MAX_CHARS * 4 || password.chars().count() > MAX_CHARS {
        return Err(PasswordProblem::TooLong);
    }
    if password.chars().count() < MIN_CHARS {
        return Err(PasswordProblem::TooShort);
    }
    let estimated: String = password.chars().take(ESTIMATE_CHARS).collect();
    let entropy = zxcvbn::zxcvbn(&estimated, context);
    if (entropy.score() as u8) < 3 {
        return Err(PasswordProblem::Weak { hint: entropy.feedback().and_then(|f| f.warning()).map(hint_of) });
    }
    Ok(())
}

/// Argon2id hash in PHC string format, with a fresh random salt.
pub async fn hash(password: SecretString) -> Result<String, CoreError> {
    tokio::task::spawn_blocking(move || {
        let hash = argon2()?.hash_password(password.expose_secret().as_bytes()).map_err(|e| internal(&e))?;
        Ok(hash.to_string())
    })
    .await
    .map_err(|e| internal(&e))?
}

/// True when `password` matches the stored hash. Constant-time in the comparison; a malformed
/// stored hash is a mismatch, never a panic.
pub async fn verify(password: SecretString, stored: String) -> bool {
    tokio::task::spawn_blocking(move || {
        argon2().is_ok_and(|a| a.verify_password(password.expose_secret().as_bytes(), stored.as_str()).is_ok())
    })
    .await
    .unwrap_or(false)
}

/// Verifies against a hash of a random password, so that an unknown e-mail costs exactly as much
/// time as a known one with a wrong password (no enumeration by timing).
pub async fn verify_dummy(password: SecretString) {
    static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    let stored = DUMMY
        .get_or_init(|| async {
            let random: [u8; 24] = rand::random();
            hash(SecretString::from(hex::encode(random))).await.unwrap_or_default()
        })
        .await
        .clone();
    let _ = verify(password, stored).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_bounds_count_characters_and_refuse_huge_inputs_cheaply() {
        assert_eq!(check_new("kort", &[]), Err(PasswordProblem::TooShort));
        assert_eq!(check_new(&"x".repeat(1025), &[]), Err(PasswordProblem::TooLong));
        let started = std::time::Instant::now();
        assert_eq!(check_new(&"a".repeat(1024 * 1024), &[]), Err(PasswordProblem::TooLong));
        assert!(started.elapsed() < std::time::Duration::from_millis(200));
    }

    #[test]
    fn common_and_contextual_passwords_are_weak_and_passphrases_pass() {
        for weak in ["password", "password123", "qwertyuiop", "passme2026", "ola.nordmann@example.com"] {
            assert!(matches!(check_new(weak, &["ola.nordmann@example.com", "passme"]), Err(PasswordProblem::Weak { .. })), "{weak}");
        }
        for strong in ["korrekt hest batteri hæfteklamme", "Rødgrød med fløde på en tirsdag", "tz8!Lq-0vPz#m2WA"] {
            assert_eq!(check_new(strong, &["passme"]), Ok(()), "{strong}");
        }
    }

    #[tokio::test]
    async fn hashes_are_argon2id_with_owasp_parameters_and_verify_only_the_right_password() {
        let long = format!("{}tail", "x".repeat(1020));
        let stored = hash(SecretString::from(long.clone())).await.expect("hash");
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{stored}");
        assert!(verify(SecretString::from(long.clone()), stored.clone()).await);
        let truncated: String = long.chars().take(1020).collect();
        assert!(!verify(SecretString::from(truncated), stored.clone()).await, "never truncated");
        assert!(!verify(SecretString::from("wrong".to_string()), stored).await);
        assert!(!verify(SecretString::from(long), "not a phc string".into()).await, "malformed hash is a mismatch");
    }
}
