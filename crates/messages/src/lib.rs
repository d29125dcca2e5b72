//! The message catalogue: every text a person reads on PassMe's pages, in its e-mails and in its
//! error messages, in Danish and English. The texts live in `locales/da.toml` and
//! `locales/en.toml` at the workspace root; the build turns each key into a method on [`Texts`]
//! (`lang.texts().nav_privacy()`), so a text missing in one language fails the build, and so
//! does a mistyped key.

pub use passme_policy::Lang;

include!(concat!(env!("OUT_DIR"), "/texts.rs"));

impl Texts {
    pub fn lang(self) -> Lang {
        self.0
    }
}

/// The texts of a language.
pub trait TextsOf {
    fn texts(self) -> Texts;
}

impl TextsOf for Lang {
    fn texts(self) -> Texts {
        Texts(self)
    }
}

#[cfg(test)]
mod catalogue;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_come_in_the_asked_language_with_their_values() {
        assert_eq!(Lang::Da.texts().site_privacy(), "Privatlivspolitik");
        assert_eq!(Lang::En.texts().site_privacy(), "Privacy policy");
        assert_eq!(Lang::En.texts().consent_chosen("Statistics", "abc"), "Your choice: Statistics. Consent id: abc");
        assert_eq!(Lang::Da.texts().error("not_found"), Some("Siden eller ressourcen findes ikke."));
        assert_eq!(Lang::Da.texts().error("no_such_code"), None);
    }
}
