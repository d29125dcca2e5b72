//! Interface preferences: theme, language and text size. On the account for signed-in users; in
//! the `__Host-prefs` cookie (with preference consent) for signed-out visitors. Only allow-listed
//! values exist, and preferences never decide what anyone may do.

use passme_policy::Lang;

pub const COOKIE: &str = "__Host-prefs";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Prefs {
    pub theme: Theme,
    pub lang: Option<Lang>,
    pub text: TextSize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Theme {
    #[default]
    Light,
    Dark,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TextSize {
    #[default]
    Normal,
    Large,
}

impl Theme {
    pub fn id(self) -> &'static str {
        match self {
            Theme::Light => "light",
            Theme::Dark => "dark",
        }
    }

    pub fn parse(s: &str) -> Option<Theme> {
        match s {
            "light" => Some(Theme::Light),
            "dark" => Some(Theme::Dark),
            _ => None,
        }
    }
}

impl TextSize {
    pub fn id(self) -> &'static str {
        match self {
            TextSize::Normal => "normal",
            TextSize::Large => "large",
        }
    }

    pub fn parse(s: &str) -> Option<TextSize> {
        match s {
            "normal" => Some(TextSize::Normal),
            "large" => Some(TextSize::Large),
            _ => None,
        }
    }
}

impl Prefs {
    /// From stored values; anything not on the allow-list falls back to the default.
    pub fn from_parts(theme: Option<&str>, lang: Option<&str>, text: Option<&str>) -> Prefs {
        Prefs {
            theme: theme.and_then(Theme::parse).unwrap_or_default(),
            lang: lang.and_then(Lang::parse),
            text: text.and_then(TextSize::parse).unwrap_or_default(),
        }
    }

    /// `dark.en.large`: three allow-listed words, nothing else.
    pub fn encode(&self) -> String {
        format!("{}.{}.{}", self.theme.id(), self.lang.map_or("auto", Lang::code), self.text.id())
    }

    /// Strict: the whole value must be three allow-listed words, else `None` (defaults apply).
    pub fn parse_cookie(value: &str) -> Option<Prefs> {
        let mut parts = value.split('.');
        let (Some(theme), Some(lang), Some(text), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else { return None };
        let lang = match lang {
            "auto" => None,
            code => Some(Lang::parse(code)?),
        };
        Some(Prefs { theme: Theme::parse(theme)?, lang, text: TextSize::parse(text)? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_round_trip_and_anything_else_is_ignored() {
        let prefs = Prefs { theme: Theme::Dark, lang: Some(Lang::En), text: TextSize::Large };
        assert_eq!(Prefs::parse_cookie(&prefs.encode()), Some(prefs));
        assert_eq!(Prefs::parse_cookie("light.auto.normal"), Some(Prefs::default()));
        for bad in [
            "",
            "dark",
            "dark.en",
            "dark.en.large.admin",
            "neon.en.large",
            "dark.fr.large",
            "dark.en.huge",
            "dark.en.large\0",
            "<script>.en.large",
        ] {
            assert_eq!(Prefs::parse_cookie(bad), None, "{bad:?}");
        }
    }
}
