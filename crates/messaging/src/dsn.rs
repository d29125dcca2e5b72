//! Delivery reports from the mail relay: a bounce (RFC 3464 `multipart/report;
//! report-type=delivery-status` with `Action: failed` and a 5.x.x status) or a complaint (RFC
//! 5965 `report-type=feedback-report`). Both suppress the address. Delays (4.x.x) and anything
//! unrecognised change nothing.

/// What a report says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// These addresses cannot be delivered to, for good.
    Bounced(Vec<String>),
    /// These recipients marked our mail as spam.
    Complained(Vec<String>),
    /// A delay or a report about nothing we act on.
    Nothing,
}

/// Reports are a few kilobytes; anything far bigger is not one.
pub const MAX_REPORT: usize = 256 * 1024;

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let (key, value) = line.split_once(':')?;
    key.trim().eq_ignore_ascii_case(name).then_some(value.trim())
}

/// The address of an `rfc822; address` value.
fn address(value: &str) -> Option<String> {
    let address = value.split_once(';').map_or(value, |(_, a)| a).trim().trim_matches(['<', '>']);
    (address.contains('@') && address.len() <= 254 && !address.chars().any(|c| c.is_control() || c.is_whitespace()))
        .then(|| address.to_string())
}

/// Reads a report; `None` when the text is not a delivery or feedback report at all.
pub fn parse(raw: &str) -> Option<Report> {
    let lower = raw.to_ascii_lowercase();
    if lower.contains("report-type=feedback-report") || lower.contains("report-type=\"feedback-report\"") {
        let recipients: Vec<String> = raw.lines().filter_map(|l| field(l, "Original-Rcpt-To")).filter_map(address).collect();
        return Some(if recipients.is_empty() { Report::Nothing } else { Report::Complained(recipients) });
    }
    if !(lower.contains("report-type=delivery-status") || lower.contains("report-type=\"delivery-status\"")) {
        return None;
    }
    // Per-recipient groups: a Final-Recipient, then its Action and Status.
    let mut bounced = Vec::new();
    let mut current: Option<String> = None;
    let mut failed = false;
    let mut permanent = false;
    let mut flush = |current: &mut Option<String>, failed: &mut bool, permanent: &mut bool| {
        if let Some(a) = current.take()
            && *failed
            && *permanent
        {
            bounced.push(a);
        }
        *failed = false;
        *permanent = false;
    };
    for line in raw.lines() {
        if let Some(v) = field(line, "Final-Recipient") {
            flush(&mut current, &mut failed, &mut permanent);
            current = address(v);
        } else if let Some(v) = field(line, "Action") {
            failed = v.eq_ignore_ascii_case("failed");
        } else if let Some(v) = field(line, "Status") {
            permanent = v.starts_with('5');
        }
    }
    flush(&mut current, &mut failed, &mut permanent);
    Some(if bounced.is_empty() { Report::Nothing } else { Report::Bounced(bounced) })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNCE: &str = "From: MAILER-DAEMON@relay.example\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; relay.example\r\n\r\nFinal-Recipient: rfc822; gone@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\nFinal-Recipient: rfc822; slow@example.com\r\nAction: delayed\r\nStatus: 4.4.1\r\n--b--\r\n";

    #[test]
    fn a_bounce_names_only_the_permanently_failed_recipients() {
        assert_eq!(parse(BOUNCE), Some(Report::Bounced(vec!["gone@example.com".into()])));
        assert_eq!(parse(&BOUNCE.replace("5.1.1", "4.2.2")), Some(Report::Nothing), "a temporary failure suppresses nothing");
    }

    #[test]
    fn a_complaint_names_its_recipient_and_other_mail_is_not_a_report() {
        let arf = "Content-Type: multipart/report; report-type=feedback-report; boundary=x\n\n--x\nContent-Type: message/feedback-report\n\nFeedback-Type: abuse\nOriginal-Rcpt-To: <angry@example.com>\n--x--\n";
        assert_eq!(parse(arf), Some(Report::Complained(vec!["angry@example.com".into()])));
        assert_eq!(parse("Subject: hello\n\nFinal-Recipient: rfc822; x@example.com\nAction: failed\nStatus: 5.1.1\n"), None);
        let injected = BOUNCE.replace("gone@example.com", "a@example.com\u{0}b");
        assert_eq!(parse(&injected), Some(Report::Nothing), "a malformed address is ignored");
    }
}
