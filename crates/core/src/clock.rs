//! Time as unix milliseconds, behind a trait so that tests can move it (lease expiry, backoff,
//! retention) without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now_ms(&self) -> i64;
}

#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        jiff::Timestamp::now().as_millisecond()
    }
}

/// A clock that only moves when told to.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn at(ms: i64) -> ManualClock {
        ManualClock(Arc::new(AtomicI64::new(ms)))
    }

    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

pub type SharedClock = Arc<dyn Clock>;

pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// The instant a retention period counted back from `now` began, in calendar terms (5 years back
/// is 5 calendar years, leap days included).
pub fn period_before(now_ms: i64, period: &passme_policy::Period) -> i64 {
    let span = jiff::Span::new()
        .years(i64::from(period.years))
        .months(i64::from(period.months))
        .days(i64::from(period.days))
        .hours(i64::from(period.hours))
        .minutes(i64::from(period.minutes));
    jiff::Timestamp::from_millisecond(now_ms)
        .ok()
        .map(|t| t.to_zoned_datetime(jiff::tz::TimeZone::UTC))
        .and_then(|z| z.checked_sub(span).ok())
        .map_or(i64::MIN, |z| z.timestamp().as_millisecond())
}

/// The start (1 January, 00:00 UTC) of the financial year holding `ms`. PassMe's financial year
/// is the calendar year, the Danish default. A record of year Y is kept until its year's end plus
/// the period: it may go once `financial_year_start(period_before(now, period))` has passed it.
pub fn financial_year_start(ms: i64) -> i64 {
    jiff::Timestamp::from_millisecond(ms)
        .ok()
        .map(|t| t.to_zoned_datetime(jiff::tz::TimeZone::UTC))
        .and_then(|z| jiff::civil::date(z.year(), 1, 1).to_zoned_datetime(jiff::tz::TimeZone::UTC).ok())
        .map_or(i64::MIN, |z| z.timestamp().as_millisecond())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_kept_five_years_after_its_financial_year_ends() {
        let ms = |s: &str| s.parse::<jiff::Timestamp>().expect("timestamp").as_millisecond();
        let five = passme_policy::Period::parse("P5Y").expect("period");
        // An invoice of 3 March 2026 belongs to the year ending 31 December 2026: kept until the
        // end of 2031, gone from 1 January 2032.
        let invoice = ms("2026-03-03T12:00:00Z");
        let cutoff = |now: &str| financial_year_start(period_before(ms(now), &five));
        assert!(invoice >= cutoff("2031-12-31T23:59:59Z"), "still kept on the last day of 2031");
        assert!(invoice < cutoff("2032-01-01T00:00:00Z"), "deletable from 2032");
        assert_eq!(financial_year_start(ms("2026-07-01T00:00:00Z")), ms("2026-01-01T00:00:00Z"));
    }

    #[test]
    fn periods_count_back_in_calendar_units() {
        let now = jiff::Timestamp::from_second(1_772_323_200).expect("2026-03-01T00:00:00Z").as_millisecond();
        let one_year = passme_policy::Period::parse("P1Y").expect("period");
        let back = jiff::Timestamp::from_millisecond(period_before(now, &one_year)).expect("ts");
        assert_eq!(back.to_string(), "2025-03-01T00:00:00Z");
        let two_days = passme_policy::Period::parse("PT48H").expect("period");
        assert_eq!(now - period_before(now, &two_days), 48 * 3_600_000);
    }
}
