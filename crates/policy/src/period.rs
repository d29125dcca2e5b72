//! Retention periods and cookie lifetimes as ISO 8601 durations (`P5Y`, `P13M`, `P30D`, `PT48H`).
//! Calendar units stay calendar units: "5 years" is rendered and applied as years, never as days.

use std::fmt;

use serde::Serialize;

use crate::model::Lang;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Period {
    pub years: u32,
    pub months: u32,
    pub days: u32,
    pub hours: u32,
    pub minutes: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodError(pub String);

impl fmt::Display for PeriodError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Period {
    /// Parses the subset of ISO 8601 durations we publish: `PnYnMnWnDTnHnM`, at least one part,
    /// no fractions, no seconds (a retention period that short would be a bug).
    pub fn parse(text: &str) -> Result<Period, PeriodError> {
        let bad = |why: &str| PeriodError(format!("invalid period {text:?}: {why} (expected ISO 8601 such as P30D, P5Y, PT48H)"));
        let rest = text.strip_prefix('P').ok_or_else(|| bad("must start with P"))?;
        let mut period = Period::default();
        let mut in_time = false;
        let mut digits = String::new();
        let mut any = false;
        for ch in rest.chars() {
            match ch {
                '0'..='9' => digits.push(ch),
                'T' if !in_time && digits.is_empty() => in_time = true,
                unit => {
                    let n: u32 = digits.parse().map_err(|_| bad("a number must precede each unit"))?;
                    digits.clear();
                    any = true;
                    match (in_time, unit) {
                        (false, 'Y') => period.years += n,
                        (false, 'M') => period.months += n,
                        (false, 'W') => period.days += n * 7,
                        (false, 'D') => period.days += n,
                        (true, 'H') => period.hours += n,
                        (true, 'M') => period.minutes += n,
                        _ => return Err(bad(&format!("unknown unit {unit:?}"))),
                    }
                }
            }
        }
        if !digits.is_empty() {
            return Err(bad("number without unit"));
        }
        if !any || period == Period::default() {
            return Err(bad("a period must be longer than zero"));
        }
        Ok(period)
    }

    /// The ISO 8601 form, as declared (weeks written as days): `P30D`, `PT48H`, `P1Y6M`.
    pub fn iso(&self) -> String {
        let mut out = String::from("P");
        for (n, unit) in [(self.years, 'Y'), (self.months, 'M'), (self.days, 'D')] {
            if n > 0 {
                out.push_str(&format!("{n}{unit}"));
            }
        }
        if self.hours > 0 || self.minutes > 0 {
            out.push('T');
            for (n, unit) in [(self.hours, 'H'), (self.minutes, 'M')] {
                if n > 0 {
                    out.push_str(&format!("{n}{unit}"));
                }
            }
        }
        out
    }

    /// Upper bound of the period in milliseconds (months as 31 days, years as 366 days), for
    /// comparisons where a calendar is not at hand.
    pub fn max_millis(&self) -> i64 {
        let days = i64::from(self.years) * 366 + i64::from(self.months) * 31 + i64::from(self.days);
        let minutes = days * 24 * 60 + i64::from(self.hours) * 60 + i64::from(self.minutes);
        minutes * 60_000
    }

    /// Human text such as "5 år" or "48 hours".
    pub fn describe(&self, lang: Lang) -> String {
        let units: [(u32, &str, &str, &str, &str); 5] = [
            (self.years, "år", "år", "year", "years"),
            (self.months, "måned", "måneder", "month", "months"),
            (self.days, "dag", "dage", "day", "days"),
            (self.hours, "time", "timer", "hour", "hours"),
            (self.minutes, "minut", "minutter", "minute", "minutes"),
        ];
        let parts: Vec<String> = units
            .iter()
            .filter(|(n, ..)| *n > 0)
            .map(|&(n, da1, da_n, en1, en_n)| {
                let unit = match (lang, n == 1) {
                    (Lang::Da, true) => da1,
                    (Lang::Da, false) => da_n,
                    (Lang::En, true) => en1,
                    (Lang::En, false) => en_n,
                };
                format!("{n} {unit}")
            })
            .collect();
        let and = match lang {
            Lang::Da => " og ",
            Lang::En => " and ",
        };
        parts.join(and)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_iso_form_reads_back_as_the_same_period() {
        for text in ["P30D", "PT48H", "P1Y6M", "P5Y", "P1DT12H30M", "P13M"] {
            assert_eq!(Period::parse(text).map(|p| p.iso()).as_deref(), Ok(text));
        }
        assert_eq!(Period::parse("P2W").map(|p| p.iso()).as_deref(), Ok("P14D"));
    }

    #[test]
    fn parses_the_published_forms() {
        assert_eq!(Period::parse("P5Y").map(|p| p.years), Ok(5));
        assert_eq!(Period::parse("P2W").map(|p| p.days), Ok(14));
        let mixed = Period::parse("P1Y2M3DT4H5M").expect("valid");
        assert_eq!((mixed.years, mixed.months, mixed.days, mixed.hours, mixed.minutes), (1, 2, 3, 4, 5));
        assert_eq!(Period::parse("PT48H").map(|p| p.describe(Lang::Da)), Ok("48 timer".to_string()));
        assert_eq!(Period::parse("P1Y").map(|p| p.describe(Lang::En)), Ok("1 year".to_string()));
    }

    #[test]
    fn rejects_malformed_periods() {
        for bad in ["", "5Y", "P", "PT", "P0D", "P5", "P5X", "PT5D", "P1.5Y", "P-1D", "PT1S"] {
            assert!(Period::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
